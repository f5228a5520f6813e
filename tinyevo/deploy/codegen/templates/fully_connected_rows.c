/* ${COMMENT}
 * Streamed: called once per row of the flattened ${ROWS}-row map (ROW_FEATURES values each); every
 * unit's dot product is summed row by row in acc, and the outputs are written after the last row. */
static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_conv_params *p, int32_t *acc,
                        int32_t row)
{
    enum { FEATURES = ${FEATURES}, UNITS = ${UNITS}, ROW_FEATURES = ${ROW_FEATURES}, ROWS = ${ROWS} };
    enum { PER_CHANNEL = ${PER_CHANNEL} }; /* 1: a scale per unit (the 1x1 CONV_2D form) */
    TINYEVO_CONV_LOCALS(p);
    for (int32_t u = 0; u < UNITS; ++u) {
        int32_t sum[1];
        sum[0] = row == 0 ? bias[u] : acc[u];
        tinyevo_dot1(input, weights + u * FEATURES + row * ROW_FEATURES, FEATURES, ROW_FEATURES, input_offset, sum);
        acc[u] = sum[0];
        if (row == ROWS - 1) {
            output[u] = tinyevo_output(sum[0], multiplier[u * PER_CHANNEL], shift[u * PER_CHANNEL], output_offset, act_min, act_max);
        }
    }
}
