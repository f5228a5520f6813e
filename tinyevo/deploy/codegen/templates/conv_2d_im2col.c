/* ${COMMENT}
 * Two output pixels x two output channels per inner loop (as CMSIS-NN and TinyEngine do): the
 * receptive fields of two pixels are expanded once into int16 im2col patches, the input offset
 * applied and the padding as zeros, so that each weight load feeds two pixels and each patch load
 * two channels. The patches live on the stack: ${COL_BYTES} bytes. */
static void ${FUNCTION}_patch(const int8_t *input, int32_t pixel, int32_t input_offset, int16_t *col)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, IN_C = ${IN_C}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { ROW = K_W * IN_C, WIDE = IN_C % 4 == 0, ROW_WIDE = ROW % 4 == 0 };
    const int32_t oy = pixel / OUT_W, ox = pixel % OUT_W;
    const int32_t ix0 = ox * STRIDE_W - PAD_LEFT;
    for (int32_t ky = 0; ky < K_H; ++ky) {
        const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
        const int32_t inside = iy >= 0 && iy < IN_H;
        if (ROW_WIDE && !inside) {
            memset(col + ky * ROW, 0, ROW * sizeof(int16_t));
            continue;
        }
        if (ROW_WIDE && DILATION_W == 1 && ix0 >= 0 && ix0 + K_W <= IN_W) {
            /* the kernel row lies inside the image: ROW contiguous bytes */
            tinyevo_widen(input + (${IN_Y} * IN_W + ix0) * IN_C, ROW, input_offset, col + ky * ROW);
            continue;
        }
        if (ROW_WIDE && !WIDE) {
            /* a row partly in the padding, fewer than four channels: gathered into whole words first,
             * the padding as the input zero point (so zero once the offset is added) */
            int8_t row[ROW];
            for (int32_t kx = 0; kx < K_W; ++kx) {
                const int32_t ix = ix0 + kx * DILATION_W;
                if (ix < 0 || ix >= IN_W) {
                    memset(row + kx * IN_C, -input_offset, IN_C);
                } else {
                    memcpy(row + kx * IN_C, input + (${IN_Y} * IN_W + ix) * IN_C, IN_C);
                }
            }
            tinyevo_widen(row, ROW, input_offset, col + ky * ROW);
            continue;
        }
        for (int32_t kx = 0; kx < K_W; ++kx) {
            const int32_t ix = ix0 + kx * DILATION_W, f = ky * ROW + kx * IN_C;
            const int32_t valid = inside && ix >= 0 && ix < IN_W;
            const int8_t *x = input + (valid ? (${IN_Y} * IN_W + ix) * IN_C : 0);
            if (WIDE && !valid) {
                memset(col + f, 0, IN_C * sizeof(int16_t));
            } else if (WIDE) {
                tinyevo_widen(x, IN_C, input_offset, col + f);
            } else {
                /* fewer than four channels: value by value */
                for (int32_t c = 0; c < IN_C; ++c) {
                    col[tinyevo_patch_index(f + c)] = (int16_t)(valid ? x[c] + input_offset : 0);
                }
            }
        }
    }
}

static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_conv_params *p${ROW_PARAM})
{
    enum { PIXELS = ${OUT_H} * ${OUT_W}, OUT_C = ${OUT_C}, FILTER = ${K_H} * ${K_W} * ${IN_C} };
    TINYEVO_CONV_LOCALS(p);
    union {
        int32_t align;
        int16_t values[2][FILTER];
    } col;
    for (int32_t i = ${PIXEL_FIRST}; i < ${PIXEL_END}; i += 2) {
        const int32_t pair = i + 1 < ${PIXEL_END}; /* 0: the last pixel, alone */
        ${FUNCTION}_patch(input, i, input_offset, col.values[0]);
        ${FUNCTION}_patch(input, pair ? i + 1 : i, input_offset, col.values[1]);
        int8_t *out = output + ${OUT_PIXEL} * OUT_C;
        for (int32_t oc = 0; oc < OUT_C; oc += 2) {
            int32_t acc[4] = {bias[oc], bias[oc], bias[oc + 1], bias[oc + 1]};
            tinyevo_dot2x2(col.values[0], col.values[1], weights + oc * FILTER, FILTER, FILTER, acc);
            tinyevo_output_pair(out + oc, OUT_C, pair, acc[0], acc[1], multiplier[oc], shift[oc],
                                output_offset, act_min, act_max);
            tinyevo_output_pair(out + oc + 1, OUT_C, pair, acc[2], acc[3], multiplier[oc + 1], shift[oc + 1],
                                output_offset, act_min, act_max);
        }
    }
}
