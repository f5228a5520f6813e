/* ${COMMENT} */
static void ${SYMBOL}(const int8_t *input, int8_t *output)
{
    enum { FEATURES = ${FEATURES}, UNITS = ${UNITS} };
    for (int32_t u = 0; u < UNITS; ++u) {
        int32_t acc[1] = {${SYMBOL}_bias[u]};
        tinyevo_dot1(input, ${SYMBOL}_weights + u * FEATURES, FEATURES, FEATURES, ${INPUT_OFFSET}, acc);
        output[u] = tinyevo_output(acc[0], ${MULTIPLIER}, ${SHIFT}, ${OUTPUT_OFFSET}, ${ACT_MIN}, ${ACT_MAX});
    }
}
