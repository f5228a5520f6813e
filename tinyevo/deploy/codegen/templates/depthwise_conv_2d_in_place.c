/* ${COMMENT}
 * In place: channel by channel, the input channel is copied to the scratch buffer (height x
 * width bytes) and the output channel written over it; channels never mix. Per channel the
 * weights are read once into int32 and the requantization constants split once. In the interior
 * (output rows OY_LO..OY_HI - 1, columns OX_LO..OX_HI - 1: every kernel position inside the
 * input) the input offset is folded into the bias (bias + offset * sum of the weights, the same
 * integer) and the taps run without bounds checks, two output pixels per step sharing the weight
 * loads; at the border only the kernel positions inside are summed (TFLM skips the padding).
 * REQUANT: 2 tinyevo_output_scaled, 1 tinyevo_output_lean, 0 tinyevo_output. */
static TINYEVO_INLINE int32_t ${FUNCTION}_edge(const int8_t *scratch, const int32_t *w, int32_t acc,
                                               int32_t input_offset, int32_t oy, int32_t ox, int32_t rows_inside)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    /* the kernel positions inside: rows ky0..ky1 - 1, columns kx0..kx1 - 1 */
    const int32_t iy0 = oy * STRIDE_H - PAD_TOP, ix0 = ox * STRIDE_W - PAD_LEFT;
    int32_t ky0 = 0, ky1 = K_H, kx0 = 0, kx1 = K_W;
    while (!rows_inside && ky0 < K_H && iy0 + ky0 * DILATION_H < 0) {
        ++ky0;
    }
    while (!rows_inside && ky1 > ky0 && iy0 + (ky1 - 1) * DILATION_H >= IN_H) {
        --ky1;
    }
    while (kx0 < K_W && ix0 + kx0 * DILATION_W < 0) {
        ++kx0;
    }
    while (kx1 > kx0 && ix0 + (kx1 - 1) * DILATION_W >= IN_W) {
        --kx1;
    }
    for (int32_t ky = ky0; ky < ky1; ++ky) {
        const int8_t *x = scratch + (iy0 + ky * DILATION_H) * IN_W;
        for (int32_t kx = kx0; kx < kx1; ++kx) {
            acc += (x[ix0 + kx * DILATION_W] + input_offset) * w[ky * K_W + kx];
        }
    }
    return acc;
}

static void ${FUNCTION}(const int8_t *input, int8_t *output, int8_t *scratch, const tinyevo_conv_params *p)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, CHANNELS = ${OUT_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W}, TAPS = K_H * K_W };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { OY_LO = ${OY_LO}, OY_HI = ${OY_HI}, OX_LO = ${OX_LO}, OX_HI = ${OX_HI} };
    enum { REQUANT = ${REQUANT}, FULL_RANGE = ${FULL_RANGE} };
    TINYEVO_CONV_LOCALS(p);
    for (int32_t c = 0; c < CHANNELS; ++c) {
        const int8_t *from = input + c;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
        for (int32_t i = 0; i < IN_H * IN_W; ++i) {
            scratch[i] = from[i * CHANNELS];
        }
        int32_t w[TAPS], sum = 0;
        for (int32_t t = 0; t < TAPS; ++t) {
            w[t] = weights[t * CHANNELS + c];
            sum += w[t];
        }
        const int32_t folded = bias[c] + input_offset * sum;
        const tinyevo_channel_scale scale = tinyevo_channel_scale_of(multiplier[c], shift[c], output_offset,
                                                                     REQUANT);
#define TINYEVO_DW_OUT(ox, acc) \
    out[(ox) * CHANNELS] = tinyevo_output_mode((acc), scale, output_offset, act_min, act_max, REQUANT, FULL_RANGE)
        for (int32_t oy = 0; oy < OUT_H; ++oy) {
            int8_t *out = output + oy * OUT_W * CHANNELS + c;
            if (oy < OY_LO || oy >= OY_HI) {
                for (int32_t ox = 0; ox < OUT_W; ++ox) {
                    TINYEVO_DW_OUT(ox, ${FUNCTION}_edge(scratch, w, bias[c], input_offset, oy, ox, 0));
                }
                continue;
            }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
            for (int32_t ox = 0; ox < OX_LO; ++ox) {
                TINYEVO_DW_OUT(ox, ${FUNCTION}_edge(scratch, w, bias[c], input_offset, oy, ox, 1));
            }
            const int8_t *top = scratch + (oy * STRIDE_H - PAD_TOP) * IN_W + (OX_LO * STRIDE_W - PAD_LEFT);
            int32_t ox = OX_LO;
            for (; ox + 1 < OX_HI; ox += 2, top += 2 * STRIDE_W) {
                int32_t acc_a = folded, acc_b = folded;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
                for (int32_t ky = 0; ky < K_H; ++ky) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_W}
#endif
                    for (int32_t kx = 0; kx < K_W; ++kx) {
                        const int32_t at = ky * DILATION_H * IN_W + kx * DILATION_W;
                        acc_a += top[at] * w[ky * K_W + kx];
                        acc_b += top[at + STRIDE_W] * w[ky * K_W + kx];
                    }
                }
                TINYEVO_DW_OUT(ox, acc_a);
                TINYEVO_DW_OUT(ox + 1, acc_b);
            }
            if ((OX_HI - OX_LO) % 2) {
                int32_t acc = folded;
                for (int32_t ky = 0; ky < K_H; ++ky) {
                    for (int32_t kx = 0; kx < K_W; ++kx) {
                        acc += top[ky * DILATION_H * IN_W + kx * DILATION_W] * w[ky * K_W + kx];
                    }
                }
                TINYEVO_DW_OUT(OX_HI - 1, acc);
            }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
            for (int32_t bx = OX_HI; bx < OUT_W; ++bx) {
                TINYEVO_DW_OUT(bx, ${FUNCTION}_edge(scratch, w, bias[c], input_offset, oy, bx, 1));
            }
        }
#undef TINYEVO_DW_OUT
    }
}
