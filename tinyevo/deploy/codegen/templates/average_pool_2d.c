/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output${ROW_PARAM})
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, CHANNELS = ${OUT_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
        for (int32_t ox = 0; ox < OUT_W; ++ox) {
            for (int32_t c = 0; c < CHANNELS; ++c) {
                int32_t sum = 0, count = 0;
                for (int32_t ky = 0; ky < K_H; ++ky) {
                    const int32_t iy = oy * STRIDE_H - PAD_TOP + ky;
                    for (int32_t kx = 0; kx < K_W; ++kx) {
                        const int32_t ix = ox * STRIDE_W - PAD_LEFT + kx;
                        if (iy >= 0 && iy < IN_H && ix >= 0 && ix < IN_W) {
                            sum += input[(${IN_Y} * IN_W + ix) * CHANNELS + c];
                            ++count;
                        }
                    }
                }
                /* rounded half away from zero, as TFLM's AveragePool */
                const int32_t mean = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                output[(${OUT_Y} * OUT_W + ox) * CHANNELS + c] = tinyevo_clamp(mean, ${ACT_MIN}, ${ACT_MAX});
            }
        }
    }
}
