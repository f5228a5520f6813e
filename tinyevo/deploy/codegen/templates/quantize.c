/* ${COMMENT} */
static void ${SYMBOL}(const int8_t *input, int8_t *output)
{
    enum { SIZE = ${SIZE} };
    for (int32_t i = 0; i < SIZE; ++i) {
        output[i] = tinyevo_output(input[i] + ${INPUT_OFFSET}, ${MULTIPLIER}, ${SHIFT}, ${OUTPUT_OFFSET}, -128, 127);
    }
}
