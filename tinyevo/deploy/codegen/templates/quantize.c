/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input, int8_t *output, const tinyevo_requantize_params *p)
{
    enum { SIZE = ${SIZE} };
    const tinyevo_requantize_params q = *p;
    for (int32_t i = 0; i < SIZE; ++i) {
        output[i] = tinyevo_output(input[i] + q.input_offset, q.multiplier, q.shift, q.output_offset,
                                   q.act_min, q.act_max);
    }
}
