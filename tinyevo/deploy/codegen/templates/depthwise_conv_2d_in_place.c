/* ${COMMENT}
 * In place: channel by channel, the input channel is copied to the scratch buffer (height x
 * width bytes) and the output channel written over it; channels never mix. Per channel the
 * weights are read once into int32 and the requantization constants split once; in the interior
 * (output rows OY_LO..OY_HI - 1, columns OX_LO..OX_HI - 1: every kernel position inside the
 * input) the input offset is folded into the bias (bias + offset * sum of the weights, the same
 * integer) and the taps run without bounds checks, two output pixels per step sharing the weight
 * loads. REQUANT: 2 tinyevo_output_scaled, 1 tinyevo_output_lean, 0 tinyevo_output. */
static void ${FUNCTION}(const int8_t *input, int8_t *output, int8_t *scratch, const tinyevo_conv_params *p)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, CHANNELS = ${OUT_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W}, TAPS = K_H * K_W };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { OY_LO = ${OY_LO}, OY_HI = ${OY_HI}, OX_LO = ${OX_LO}, OX_HI = ${OX_HI} };
    enum { REQUANT = ${REQUANT}, FULL_RANGE = ${FULL_RANGE} };
    TINYEVO_CONV_LOCALS(p);
    for (int32_t c = 0; c < CHANNELS; ++c) {
        for (int32_t i = 0; i < IN_H * IN_W; ++i) {
            scratch[i] = input[i * CHANNELS + c];
        }
        int32_t w[TAPS], sum = 0;
        for (int32_t t = 0; t < TAPS; ++t) {
            w[t] = weights[t * CHANNELS + c];
            sum += w[t];
        }
        const int32_t folded = bias[c] + input_offset * sum;
        const tinyevo_channel_scale scale = tinyevo_channel_scale_of(multiplier[c], shift[c], output_offset,
                                                                     REQUANT);
        for (int32_t oy = 0; oy < OUT_H; ++oy) {
            int8_t *out = output + oy * OUT_W * CHANNELS + c;
            int32_t ox = 0;
            if (oy >= OY_LO && oy < OY_HI) {
                const int32_t top = (oy * STRIDE_H - PAD_TOP) * IN_W - PAD_LEFT;
                for (ox = OX_LO; ox + 1 < OX_HI; ox += 2) {
                    const int8_t *a = scratch + top + ox * STRIDE_W, *b = a + STRIDE_W;
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
                            acc_a += a[at] * w[ky * K_W + kx];
                            acc_b += b[at] * w[ky * K_W + kx];
                        }
                    }
                    out[ox * CHANNELS] = tinyevo_output_mode(acc_a, scale, output_offset, act_min, act_max, REQUANT,
                                                             FULL_RANGE);
                    out[(ox + 1) * CHANNELS] = tinyevo_output_mode(acc_b, scale, output_offset, act_min, act_max,
                                                                   REQUANT, FULL_RANGE);
                }
            }
            /* the border (and an odd interior pixel at the end of a row): bounds checked */
            for (int32_t bx = 0; bx < OUT_W; ++bx) {
                if (oy >= OY_LO && oy < OY_HI && bx >= OX_LO && bx < ox) {
                    bx = ox - 1;
                    continue;
                }
                int32_t acc = bias[c];
                for (int32_t ky = 0; ky < K_H; ++ky) {
                    const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
                    if (iy < 0 || iy >= IN_H) {
                        continue;
                    }
                    for (int32_t kx = 0; kx < K_W; ++kx) {
                        const int32_t ix = bx * STRIDE_W - PAD_LEFT + kx * DILATION_W;
                        if (ix >= 0 && ix < IN_W) {
                            acc += (scratch[iy * IN_W + ix] + input_offset) * w[ky * K_W + kx];
                        }
                    }
                }
                out[bx * CHANNELS] = tinyevo_output_mode(acc, scale, output_offset, act_min, act_max, REQUANT,
                                                         FULL_RANGE);
            }
        }
    }
}
