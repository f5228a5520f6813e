/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output${ROW_PARAM})
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, CHANNELS = ${OUT_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    /* four channels a word (tinyevo_pool_sum4: two halfword sums per register, exact while
     * K_H * K_W * 128 fits 16 bits) */
    enum { PACKED = TINYEVO_DSP && K_H * K_W <= 255 ? CHANNELS / 4 * 4 : 0 };
    for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
        const int32_t y0 = oy * STRIDE_H - PAD_TOP;
        const int32_t ky_first = y0 < 0 ? -y0 : 0, ky_end = y0 + K_H > IN_H ? IN_H - y0 : K_H;
        for (int32_t ox = 0; ox < OUT_W; ++ox) {
            const int32_t x0 = ox * STRIDE_W - PAD_LEFT;
            const int32_t kx_first = x0 < 0 ? -x0 : 0, kx_end = x0 + K_W > IN_W ? IN_W - x0 : K_W;
            const int32_t count = (ky_end - ky_first) * (kx_end - kx_first);
            int8_t *out = output + (${OUT_Y} * OUT_W + ox) * CHANNELS;
            int32_t c = 0;
#if TINYEVO_DSP
            for (; c < PACKED; c += 4) {
                int32_t packed[4] = {0, 0, 0, 0}, sums[4];
                for (int32_t ky = ky_first; ky < ky_end; ++ky) {
                    const int32_t iy = y0 + ky;
                    const int8_t *in = input + (${IN_Y} * IN_W + x0 + kx_first) * CHANNELS + c;
                    for (int32_t kx = kx_first; kx < kx_end; ++kx, in += CHANNELS) {
                        tinyevo_pool_sum4(in, packed);
                    }
                }
                tinyevo_pool_sums(packed, sums);
                for (int32_t j = 0; j < 4; ++j) {
                    const int32_t sum = sums[j];
                    /* rounded half away from zero, as TFLM's AveragePool */
                    const int32_t mean = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    out[c + j] = tinyevo_clamp(mean, ${ACT_MIN}, ${ACT_MAX});
                }
            }
#endif
            for (; c < CHANNELS; ++c) {
                int32_t sum = 0;
                for (int32_t ky = ky_first; ky < ky_end; ++ky) {
                    const int32_t iy = y0 + ky;
                    const int8_t *in = input + (${IN_Y} * IN_W + x0 + kx_first) * CHANNELS + c;
                    for (int32_t kx = kx_first; kx < kx_end; ++kx, in += CHANNELS) {
                        sum += *in;
                    }
                }
                /* rounded half away from zero, as TFLM's AveragePool */
                const int32_t mean = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                out[c] = tinyevo_clamp(mean, ${ACT_MIN}, ${ACT_MAX});
            }
        }
    }
}
