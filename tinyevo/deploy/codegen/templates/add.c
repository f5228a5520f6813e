/* ${COMMENT} */
static void ${SYMBOL}(const int8_t *input1, const int8_t *input2, int8_t *output)
{
    enum { SIZE = ${SIZE}, LEFT_SHIFT = ${LEFT_SHIFT} };
    for (int32_t i = 0; i < SIZE; ++i) {
        const int32_t shifted1 = (input1[i] + ${INPUT1_OFFSET}) * (1 << LEFT_SHIFT);
        const int32_t shifted2 = (input2[i] + ${INPUT2_OFFSET}) * (1 << LEFT_SHIFT);
        const int32_t sum = tinyevo_requantize(shifted1, ${INPUT1_MULTIPLIER}, ${INPUT1_SHIFT})
                          + tinyevo_requantize(shifted2, ${INPUT2_MULTIPLIER}, ${INPUT2_SHIFT});
        output[i] = tinyevo_output(sum, ${OUTPUT_MULTIPLIER}, ${OUTPUT_SHIFT}, ${OUTPUT_OFFSET}, ${ACT_MIN}, ${ACT_MAX});
    }
}
