/* ${COMMENT}
 * In place: each output pixel depends on its own input pixel only, so it is computed into the
 * scratch buffer (one pixel) and then written over that input pixel. */
static void ${FUNCTION}(const int8_t *input, int8_t *output, int8_t *scratch, const tinyevo_conv_params *p)
{
    enum { PIXELS = ${PIXELS}, IN_C = ${IN_C}, OUT_C = ${OUT_C}, BLOCK = ${BLOCK} };
    TINYEVO_CONV_LOCALS(p);
    for (int32_t i = 0; i < PIXELS; ++i) {
        const int8_t *x = input + i * IN_C;
        for (int32_t oc = 0; oc < OUT_C; oc += BLOCK) {
            int32_t acc[BLOCK];
            for (int32_t j = 0; j < BLOCK; ++j) {
                acc[j] = bias[oc + j];
            }
            tinyevo_dot${BLOCK}(x, weights + oc * IN_C, IN_C, IN_C, input_offset, acc);
            for (int32_t j = 0; j < BLOCK; ++j) {
                scratch[oc + j] = tinyevo_output(acc[j], multiplier[oc + j], shift[oc + j], output_offset,
                                                 act_min, act_max);
            }
        }
        memcpy(output + i * OUT_C, scratch, OUT_C);
    }
}
