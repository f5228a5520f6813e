/* ${COMMENT}
 * In place: each output pixel depends on its own input pixel only, so it is computed into the
 * scratch buffer (one pixel) and then written over that input pixel. */
static void ${SYMBOL}(const int8_t *input, int8_t *output, int8_t *scratch)
{
    enum { PIXELS = ${PIXELS}, IN_C = ${IN_C}, OUT_C = ${OUT_C}, BLOCK = ${BLOCK} };
    for (int32_t p = 0; p < PIXELS; ++p) {
        const int8_t *x = input + p * IN_C;
        for (int32_t oc = 0; oc < OUT_C; oc += BLOCK) {
            int32_t acc[BLOCK];
            for (int32_t j = 0; j < BLOCK; ++j) {
                acc[j] = ${SYMBOL}_bias[oc + j];
            }
            tinyevo_dot${BLOCK}(x, ${SYMBOL}_weights + oc * IN_C, IN_C, IN_C, ${INPUT_OFFSET}, acc);
            for (int32_t j = 0; j < BLOCK; ++j) {
                scratch[oc + j] = tinyevo_output(acc[j], ${SYMBOL}_multiplier[oc + j], ${SYMBOL}_shift[oc + j],
                                                 ${OUTPUT_OFFSET}, ${ACT_MIN}, ${ACT_MAX});
            }
        }
        memcpy(output + p * OUT_C, scratch, OUT_C);
    }
}
