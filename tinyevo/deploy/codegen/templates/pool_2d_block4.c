/* ${COMMENT}
 * Four channels at a time (channels a multiple of four): per output pixel the window's rows and
 * columns inside the input are found once; windows wholly inside (output rows OY_LO..OY_HI - 1,
 * columns OX_LO..OX_HI - 1) have constant bounds. MAX: the bytewise maximum (tinyevo_pool_max4);
 * else the average, rounded half away from zero as TFLM's AveragePool (tinyevo_pool_sum4). */
static TINYEVO_INLINE void ${FUNCTION}_pixel(const int8_t *input, int8_t *out, int32_t oy, int32_t ox,
                                             int32_t inside)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, CHANNELS = ${OUT_C}, K_H = ${K_H}, K_W = ${K_W} };
    enum { STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { MAX = ${MAX}, ACT_MIN = ${ACT_MIN}, ACT_MAX = ${ACT_MAX} };
    const int32_t top = oy * STRIDE_H - PAD_TOP, left = ox * STRIDE_W - PAD_LEFT;
    const int32_t y0 = inside || top > 0 ? top : 0, y1 = inside || top + K_H < IN_H ? top + K_H : IN_H;
    const int32_t x0 = inside || left > 0 ? left : 0, x1 = inside || left + K_W < IN_W ? left + K_W : IN_W;
    const int32_t count = (y1 - y0) * (x1 - x0);
    for (int32_t c0 = 0; c0 < CHANNELS; c0 += 4) {
        int32_t sums[4] = {0, 0, 0, 0};
        union {
            int32_t align;
            int8_t values[4];
        } best = {(int32_t)0x80808080u};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
        for (int32_t iy = y0; iy < y1; ++iy) {
            const int8_t *row = input + ${IN_Y} * (IN_W * CHANNELS) + c0;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_W}
#endif
            for (int32_t ix = x0; ix < x1; ++ix) {
                if (MAX) {
                    tinyevo_pool_max4(row + ix * CHANNELS, best.values);
                } else {
                    tinyevo_pool_sum4(row + ix * CHANNELS, sums);
                }
            }
        }
        if (MAX) {
            for (int32_t j = 0; j < 4; ++j) {
                out[c0 + j] = tinyevo_clamp(best.values[j], ACT_MIN, ACT_MAX);
            }
        } else {
            int32_t sum[4];
            tinyevo_pool_sums(sums, sum);
            for (int32_t j = 0; j < 4; ++j) {
                const int32_t mean = sum[j] > 0 ? (sum[j] + count / 2) / count : (sum[j] - count / 2) / count;
                out[c0 + j] = tinyevo_clamp(mean, ACT_MIN, ACT_MAX);
            }
        }
    }
}

static void ${FUNCTION}(const int8_t *input, int8_t *output${ROW_PARAM})
{
    enum { OUT_H = ${OUT_H}, OUT_W = ${OUT_W}, CHANNELS = ${OUT_C} };
    enum { OY_LO = ${OY_LO}, OY_HI = ${OY_HI}, OX_LO = ${OX_LO}, OX_HI = ${OX_HI} };
    for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
        int8_t *out = output + ${OUT_Y} * (OUT_W * CHANNELS);
        const int32_t rows_inside = oy >= OY_LO && oy < OY_HI;
        for (int32_t ox = 0; ox < OUT_W; ++ox, out += CHANNELS) {
            if (rows_inside && ox >= OX_LO && ox < OX_HI) {
                ${FUNCTION}_pixel(input, out, oy, ox, 1);
            } else {
                ${FUNCTION}_pixel(input, out, oy, ox, 0);
            }
        }
    }
}
