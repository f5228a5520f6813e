/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output)
{
    enum { SIZE = ${SIZE} };
    for (int32_t i = 0; i < SIZE; ++i) {
        output[i] = tinyevo_clamp(input[i], ${ACT_MIN}, ${ACT_MAX});
    }
}
