/* ${COMMENT} */
static void ${FUNCTION}(const int8_t *input1, const int8_t *input2, int8_t *output, const tinyevo_add_params *p)
{
    enum { SIZE = ${SIZE} };
    const tinyevo_add_params q = *p;
    for (int32_t i = 0; i < SIZE; ++i) {
        const int32_t shifted1 = (input1[i] + q.input1_offset) * (1 << q.left_shift);
        const int32_t shifted2 = (input2[i] + q.input2_offset) * (1 << q.left_shift);
        const int32_t sum = tinyevo_requantize(shifted1, q.input1_multiplier, q.input1_shift)
                          + tinyevo_requantize(shifted2, q.input2_multiplier, q.input2_shift);
        output[i] = tinyevo_output(sum, q.output_multiplier, q.output_shift, q.output_offset, q.act_min, q.act_max);
    }
}
