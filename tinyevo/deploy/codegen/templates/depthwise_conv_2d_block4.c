/* ${COMMENT}
 * Four channels at a time (depth multiplier 1, channels a multiple of four): each group's weights
 * are widened to int16 once per call (tinyevo_dw_widen4, on the stack: 8 bytes per kernel
 * position) and its requantization constants split once; each output pixel then takes four MACs
 * per load of four input bytes (tinyevo_dw_mac4_raw), the input offset folded into the bias. Not
 * padded on the stack (PADDED 0), the interior (output rows OY_LO..OY_HI - 1, columns
 * OX_LO..OX_HI - 1: every kernel position inside the input) runs without bounds checks, and at the
 * border a kernel position outside the input reads four zero points instead (their taps add zero,
 * as TFLM skips them). REQUANT: 2 tinyevo_output_scaled, 1 tinyevo_output_lean, 0 tinyevo_output. */
static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_conv_params *p${ROW_PARAM})
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, IN_C = ${IN_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W}, OUT_C = ${OUT_C} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W}, TAPS = K_H * K_W };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { OY_LO = ${OY_LO}, OY_HI = ${OY_HI}, OX_LO = ${OX_LO}, OX_HI = ${OX_HI} };
    enum { REQUANT = ${REQUANT}, FULL_RANGE = ${FULL_RANGE}, CONTIGUOUS = ${CONTIGUOUS} };
    TINYEVO_CONV_LOCALS(p);
    /* PADDED 1: the group's whole input padded on the stack; 2: the K_H input rows of each output
     * row; 0: neither fits (the border reads the zero points in pad) */
    enum { PADDED = ${PADDED}, PLANE_H = ${PLANE_H}, PLANE_W = ${PLANE_W} };
    enum { SLAB_ROWS = PADDED == 1 ? PLANE_H : K_H, ROW_STEP = PADDED == 1 ? DILATION_H : 1 };
    union {
        int32_t align;
        int8_t values[PADDED ? SLAB_ROWS * PLANE_W * 4 : 1];
    } slab;
    if (PADDED) {
        memset(slab.values, -input_offset, sizeof slab.values);
    }
    enum { ELEMENT_WISE = TAPS == 1 && PAD_TOP == 0 && PAD_LEFT == 0 && STRIDE_H == 1 && STRIDE_W == 1 &&
                          IN_H == OUT_H && IN_W == OUT_W };
    if (ELEMENT_WISE) {
        /* a 1x1 kernel over the same shape (a per-channel scale): channel by channel, the offset
         * folded into the bias and the requantization constants in registers; each output reads
         * only its own input value, so this may run in place */
        for (int32_t c = 0; c < OUT_C; ++c) {
            const int32_t w = weights[c], folded = bias[c] + input_offset * w;
            const tinyevo_channel_scale s = tinyevo_channel_scale_of(multiplier[c], shift[c], output_offset, REQUANT);
            for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
                const int32_t iy = oy;
                const int8_t *x = input + ${IN_Y} * (IN_W * IN_C) + c;
                int8_t *out = output + ${OUT_Y} * (OUT_W * OUT_C) + c;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 2
#endif
                for (int32_t ox = 0; ox < OUT_W; ++ox) {
                    out[ox * OUT_C] = tinyevo_output_mode(folded + x[ox * IN_C] * w, s, output_offset, act_min, act_max,
                                                          REQUANT, FULL_RANGE);
                }
            }
        }
        return;
    }
    for (int32_t c0 = 0; c0 < OUT_C; c0 += 4) {
        union {
            int32_t align;
            int16_t values[4 * TAPS];
        } wide;
        tinyevo_channel_scale scale[4];
        for (int32_t t = 0; t < TAPS; ++t) {
            tinyevo_dw_widen4(weights + t * OUT_C + c0, wide.values + 4 * t);
        }
        for (int32_t j = 0; j < 4; ++j) {
            scale[j] = tinyevo_channel_scale_of(multiplier[c0 + j], shift[c0 + j], output_offset, REQUANT);
        }
        /* the input offset folded into the bias (bias + offset * sum of the weights, the same
         * integer: in a padded plane the padding's zero points cancel their share) */
        int32_t folded[4];
        for (int32_t j = 0; j < 4; ++j) {
            folded[j] = bias[c0 + j];
            for (int32_t t = 0; t < TAPS; ++t) {
                folded[j] += input_offset * weights[t * OUT_C + c0 + j];
            }
        }
        if (PADDED) {
            /* the group's four channels, padded with the input zero point (so that its taps add
             * zero, as TFLM's skipped ones), on the stack: every output pixel is an interior one */
            for (int32_t y = 0; PADDED == 1 && y < IN_H; ++y) {
                const int8_t *from = input + y * (IN_W * IN_C) + c0;
                int8_t *to = slab.values + ((y + PAD_TOP) * PLANE_W + PAD_LEFT) * 4;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
                for (int32_t x = 0; x < IN_W; ++x) {
                    memcpy(to + 4 * x, from + x * IN_C, 4);
                }
            }
            for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
                for (int32_t ky = 0; PADDED == 2 && ky < K_H; ++ky) {
                    /* the window's row ky, its padding columns left as the zero point */
                    const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
                    int8_t *to = slab.values + (ky * PLANE_W + PAD_LEFT) * 4;
                    if (iy < 0 || iy >= IN_H) {
                        memset(to, -input_offset, IN_W * 4);
                        continue;
                    }
                    const int8_t *from = input + ${IN_Y} * (IN_W * IN_C) + c0;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
                    for (int32_t x = 0; x < IN_W; ++x) {
                        memcpy(to + 4 * x, from + x * IN_C, 4);
                    }
                }
                const int8_t *x = slab.values + (PADDED == 1 ? oy * STRIDE_H * (PLANE_W * 4) : 0);
                int8_t *out = output + ${OUT_Y} * (OUT_W * OUT_C) + c0;
                for (int32_t ox = 0; ox < OUT_W; ++ox, out += OUT_C, x += 4 * STRIDE_W) {
                    int32_t acc[4] = {folded[0], folded[1], folded[2], folded[3]};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
                    for (int32_t ky = 0; ky < K_H; ++ky) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_W}
#endif
                        for (int32_t kx = 0; kx < K_W; ++kx) {
                            tinyevo_dw_mac4_raw(x + (ky * ROW_STEP * PLANE_W + kx * DILATION_W) * 4,
                                                wide.values + 4 * (ky * K_W + kx), acc);
                        }
                    }
#if defined(__GNUC__) && !defined(__clang__) && TINYEVO_DSP
#pragma GCC unroll 4 /* (not the portable build: the longer requantization would spill) */
#endif
                    for (int32_t j = 0; j < 4; ++j) {
                        out[j] = tinyevo_output_mode(acc[j], scale[j], output_offset, act_min, act_max, REQUANT,
                                                     FULL_RANGE);
                    }
                }
            }
            continue;
        }
        /* the zero point in four bytes: a kernel position outside the input reads these, whose
         * taps add zero to the folded bias (as TFLM skips them) */
        union {
            int32_t align;
            int8_t values[4];
        } pad;
        memset(pad.values, -input_offset, sizeof pad.values);
        for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
            const int8_t *rows[K_H];
            for (int32_t ky = 0; ky < K_H; ++ky) {
                const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
                rows[ky] = iy >= 0 && iy < IN_H ? input + ${IN_Y} * (IN_W * IN_C) + c0 : 0;
            }
            const int32_t inside = oy >= OY_LO && oy < OY_HI;
            int8_t *out = output + ${OUT_Y} * (OUT_W * OUT_C) + c0;
            for (int32_t ox = 0; ox < OUT_W; ++ox, out += OUT_C) {
                int32_t acc[4] = {folded[0], folded[1], folded[2], folded[3]};
                const int32_t ix0 = ox * STRIDE_W - PAD_LEFT;
                if (inside && ox >= OX_LO && ox < OX_HI) {
                    /* every kernel position inside; CONTIGUOUS (not a streamed ring): the input's
                     * rows IN_W * IN_C bytes apart, so each at a constant offset from x */
                    const int8_t *x = CONTIGUOUS ? input + ((oy * STRIDE_H - PAD_TOP) * IN_W + ix0) * IN_C + c0 : 0;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
                    for (int32_t ky = 0; ky < K_H; ++ky) {
                        const int8_t *row = CONTIGUOUS ? x + ky * DILATION_H * (IN_W * IN_C) : rows[ky] + ix0 * IN_C;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_W}
#endif
                        for (int32_t kx = 0; kx < K_W; ++kx) {
                            tinyevo_dw_mac4_raw(row + kx * DILATION_W * IN_C, wide.values + 4 * (ky * K_W + kx), acc);
                        }
                    }
                } else {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
                    for (int32_t ky = 0; ky < K_H; ++ky) {
                        const int8_t *row = rows[ky];
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_W}
#endif
                        for (int32_t kx = 0; kx < K_W; ++kx) {
                            const int32_t ix = ix0 + kx * DILATION_W;
                            const int8_t *x = row && ix >= 0 && ix < IN_W ? row + ix * IN_C : pad.values;
                            tinyevo_dw_mac4_raw(x, wide.values + 4 * (ky * K_W + kx), acc);
                        }
                    }
                }
#if defined(__GNUC__) && !defined(__clang__) && TINYEVO_DSP
#pragma GCC unroll 4
#endif
                for (int32_t j = 0; j < 4; ++j) {
                    out[j] = tinyevo_output_mode(acc[j], scale[j], output_offset, act_min, act_max, REQUANT,
                                                 FULL_RANGE);
                }
            }
        }
    }
}
