/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_conv_params *p${ROW_PARAM})
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, IN_C = ${IN_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W}, OUT_C = ${OUT_C} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { MULTIPLIER = ${MULTIPLIER}, BLOCK = ${BLOCK} };
    TINYEVO_CONV_LOCALS(p);
    for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
        for (int32_t ox = 0; ox < OUT_W; ++ox) {
            int8_t *out = output + (${OUT_Y} * OUT_W + ox) * OUT_C;
            for (int32_t c0 = 0; c0 < OUT_C; c0 += BLOCK) {
                const int32_t count = OUT_C - c0 < BLOCK ? OUT_C - c0 : BLOCK;
                int32_t acc[BLOCK];
                for (int32_t j = 0; j < count; ++j) {
                    acc[j] = bias[c0 + j];
                }
                for (int32_t ky = 0; ky < K_H; ++ky) {
                    const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
                    if (iy < 0 || iy >= IN_H) {
                        continue;
                    }
                    for (int32_t kx = 0; kx < K_W; ++kx) {
                        const int32_t ix = ox * STRIDE_W - PAD_LEFT + kx * DILATION_W;
                        if (ix < 0 || ix >= IN_W) {
                            continue;
                        }
                        const int8_t *x = input + (${IN_Y} * IN_W + ix) * IN_C;
                        const int8_t *w = weights + (ky * K_W + kx) * OUT_C + c0;
                        for (int32_t j = 0; j < count; ++j) {
                            acc[j] += (x[(c0 + j) / MULTIPLIER] + input_offset) * w[j];
                        }
                    }
                }
                for (int32_t j = 0; j < count; ++j) {
                    out[c0 + j] = tinyevo_output(acc[j], multiplier[c0 + j], shift[c0 + j], output_offset,
                                                 act_min, act_max);
                }
            }
        }
    }
}
