/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_conv_params *p${ROW_PARAM})
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, IN_C = ${IN_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W}, OUT_C = ${OUT_C} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { GROUP_IN = ${GROUP_IN}, GROUP_OUT = ${GROUP_OUT}, BLOCK = ${BLOCK}, FILTER = K_H * K_W * GROUP_IN };
    enum { ROW_DOT = ${ROW_DOT} }; /* 1: a kernel row inside the image is one contiguous dot product */
    TINYEVO_CONV_LOCALS(p);
    for (int32_t oy = ${OY_FIRST}; oy < ${OY_END}; ++oy) {
        for (int32_t ox = 0; ox < OUT_W; ++ox) {
            int8_t *out = output + (${OUT_Y} * OUT_W + ox) * OUT_C;
            for (int32_t oc = 0; oc < OUT_C; oc += BLOCK) {
                const int8_t *x = input + (oc / GROUP_OUT) * GROUP_IN;
                const int8_t *w = weights + oc * FILTER;
                int32_t acc[BLOCK];
                for (int32_t j = 0; j < BLOCK; ++j) {
                    acc[j] = bias[oc + j];
                }
                for (int32_t ky = 0; ky < K_H; ++ky) {
                    const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
                    if (iy < 0 || iy >= IN_H) {
                        continue;
                    }
                    const int32_t ix0 = ox * STRIDE_W - PAD_LEFT;
                    if (ROW_DOT && ix0 >= 0 && ix0 + K_W <= IN_W) {
                        /* the whole kernel row lies inside the image: one dot product over
                         * K_W * IN_C contiguous bytes (the weights are [out][ky][kx][in]) */
                        tinyevo_dot${BLOCK}(x + (${IN_Y} * IN_W + ix0) * IN_C, w + ky * K_W * GROUP_IN,
                                     FILTER, K_W * GROUP_IN, input_offset, acc);
                        continue;
                    }
                    for (int32_t kx = 0; kx < K_W; ++kx) {
                        const int32_t ix = ix0 + kx * DILATION_W;
                        if (ix < 0 || ix >= IN_W) {
                            continue;
                        }
                        tinyevo_dot${BLOCK}(x + (${IN_Y} * IN_W + ix) * IN_C, w + (ky * K_W + kx) * GROUP_IN,
                                     FILTER, GROUP_IN, input_offset, acc);
                    }
                }
                for (int32_t j = 0; j < BLOCK; ++j) {
                    out[oc + j] = tinyevo_output(acc[j], multiplier[oc + j], shift[oc + j], output_offset,
                                                 act_min, act_max);
                }
            }
        }
    }
}
