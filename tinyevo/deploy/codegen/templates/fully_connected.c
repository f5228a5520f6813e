/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_conv_params *p)
{
    enum { FEATURES = ${FEATURES}, UNITS = ${UNITS} };
    TINYEVO_CONV_LOCALS(p);
    for (int32_t u = 0; u < UNITS; ++u) {
        int32_t acc[1];
        acc[0] = bias[u];
        tinyevo_dot1(input, weights + u * FEATURES, FEATURES, FEATURES, input_offset, acc);
        output[u] = tinyevo_output(acc[0], multiplier[0], shift[0], output_offset, act_min, act_max);
    }
}
