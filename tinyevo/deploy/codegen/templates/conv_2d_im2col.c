/* ${COMMENT}
 * Two output pixels x two output channels per inner loop (as CMSIS-NN and TinyEngine do): the
 * receptive fields of two pixels are expanded once into int16 im2col patches, the input offset
 * applied and the padding as zeros, so that each weight load feeds two pixels and each patch load
 * two channels. A patch has ${FILTER} values (the filter rounded up to whole groups of four, the
 * extra weights zero); the two live on the stack: ${COL_BYTES} bytes. SCALED: the outputs are
 * requantized in one step (tinyevo_output_scaled); WIDE: the weights are int16. */
static inline void ${FUNCTION}_patch(const int8_t *input, int32_t pixel, int32_t input_offset, int16_t *col)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, IN_C = ${IN_C}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { ROW = K_W * IN_C, VALUES = K_H * ROW, FILTER = ${FILTER} };
    enum { WIDE = IN_C % 4 == 0, ROW_WIDE = ROW % 4 == 0 };
    enum { POINTWISE = K_H == 1 && K_W == 1 && PAD_TOP == 0 && PAD_LEFT == 0 };
    const int32_t oy = pixel / OUT_W, ox = pixel % OUT_W;
    const int32_t ix0 = ox * STRIDE_W - PAD_LEFT;
    if (POINTWISE && WIDE) {
        /* 1x1: the patch is the input pixel */
        const int32_t iy = oy * STRIDE_H;
        tinyevo_widen(input + (${IN_Y} * IN_W + ix0) * IN_C, IN_C, input_offset, col);
        return;
    }
    if (!ROW_WIDE) {
        /* kernel rows that are not whole groups of four values: the patch gathered in int8 first,
         * the padding and the values that round it up to FILTER as the input zero point (so zero
         * once the offset is added), then widened at once */
        union {
            int32_t align;
            int8_t values[FILTER];
        } gathered;
        int8_t *g = gathered.values;
        for (int32_t ky = 0; ky < K_H; ++ky) {
            const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
            if (iy < 0 || iy >= IN_H) {
                memset(g + ky * ROW, -input_offset, ROW);
            } else if (DILATION_W == 1 && ix0 >= 0 && ix0 + K_W <= IN_W) {
                memcpy(g + ky * ROW, input + (${IN_Y} * IN_W + ix0) * IN_C, ROW);
            } else {
                for (int32_t kx = 0; kx < K_W; ++kx) {
                    const int32_t ix = ix0 + kx * DILATION_W;
                    if (ix < 0 || ix >= IN_W) {
                        memset(g + ky * ROW + kx * IN_C, -input_offset, IN_C);
                    } else {
                        memcpy(g + ky * ROW + kx * IN_C, input + (${IN_Y} * IN_W + ix) * IN_C, IN_C);
                    }
                }
            }
        }
        memset(g + VALUES, -input_offset, FILTER - VALUES);
        tinyevo_widen(g, FILTER, input_offset, col);
        return;
    }
    for (int32_t ky = 0; ky < K_H; ++ky) {
        const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
        const int32_t inside = iy >= 0 && iy < IN_H;
        if (!inside) {
            tinyevo_zero(col + TINYEVO_PATCH_AT(ky * ROW), ROW);
            continue;
        }
        if (DILATION_W == 1 && ix0 >= 0 && ix0 + K_W <= IN_W) {
            /* the kernel row lies inside the image: ROW contiguous bytes */
            tinyevo_widen(input + (${IN_Y} * IN_W + ix0) * IN_C, ROW, input_offset,
                          col + TINYEVO_PATCH_AT(ky * ROW));
            continue;
        }
        if (!WIDE) {
            /* a row partly in the padding, fewer than four channels: gathered into whole words first,
             * the padding as the input zero point (so zero once the offset is added) */
            int8_t gathered[ROW];
            for (int32_t kx = 0; kx < K_W; ++kx) {
                const int32_t ix = ix0 + kx * DILATION_W;
                if (ix < 0 || ix >= IN_W) {
                    memset(gathered + kx * IN_C, -input_offset, IN_C);
                } else {
                    memcpy(gathered + kx * IN_C, input + (${IN_Y} * IN_W + ix) * IN_C, IN_C);
                }
            }
            tinyevo_widen(gathered, ROW, input_offset, col + TINYEVO_PATCH_AT(ky * ROW));
            continue;
        }
        for (int32_t kx = 0; kx < K_W; ++kx) {
            const int32_t ix = ix0 + kx * DILATION_W, f = ky * ROW + kx * IN_C;
            if (ix < 0 || ix >= IN_W) {
                tinyevo_zero(col + TINYEVO_PATCH_AT(f), IN_C);
            } else {
                tinyevo_widen(input + (${IN_Y} * IN_W + ix) * IN_C, IN_C, input_offset,
                              col + TINYEVO_PATCH_AT(f));
            }
        }
    }
}

static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_conv_channels_params *p${ROW_PARAM})
{
    enum { PIXELS = ${OUT_H} * ${OUT_W}, OUT_C = ${OUT_C}, FILTER = ${FILTER} };
    enum { SCALED = ${SCALED}, FULL_RANGE = ${FULL_RANGE}, WIDE = ${WIDE} };
    /* read once: int8 stores may alias anything */
    const int8_t *const weights = (const int8_t *)p->weights;
    const int32_t *const channels = p->channels;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    union {
        int32_t align;
        int16_t values[2 * FILTER]; /* the two patches (TINYEVO_PATCH_B) */
    } col;
    for (int32_t i = ${PIXEL_FIRST}; i < ${PIXEL_END}; i += 2) {
        const int32_t pair = i + 1 < ${PIXEL_END}; /* 0: the last pixel, alone (its b is a again) */
        ${FUNCTION}_patch(input, i, input_offset, col.values);
        ${FUNCTION}_patch(input, pair ? i + 1 : i, input_offset, col.values + TINYEVO_PATCH_B(FILTER));
        int8_t *out_a = output + ${OUT_PIXEL} * OUT_C, *out_b = out_a + (pair ? OUT_C : 0);
        const int8_t *w = weights; /* channel pairs (tinyevo_dot2x2, int16: tinyevo_dot2x2_wide) */
        const int32_t *q = channels;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${UNROLL}
#endif
        for (int32_t oc = 0; oc < OUT_C; oc += 2, w += 2 * FILTER * (WIDE ? 2 : 1), q += 8) {
            int32_t acc[4] = {q[0], q[0], q[4], q[4]};
            if (WIDE) {
                tinyevo_dot2x2_wide(col.values, (const int16_t *)(const void *)w, FILTER, acc);
            } else {
                tinyevo_dot2x2(col.values, w, FILTER, acc);
            }
            tinyevo_output_pair(out_a + oc, out_b + oc, acc[0], acc[1], q, output_offset, act_min, act_max,
                                SCALED, FULL_RANGE);
            tinyevo_output_pair(out_a + oc + 1, out_b + oc + 1, acc[2], acc[3], q + 4, output_offset, act_min,
                                act_max, SCALED, FULL_RANGE);
        }
    }
}
