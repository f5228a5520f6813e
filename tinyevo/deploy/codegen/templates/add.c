/* ${COMMENT}
 * SCALED: every requantization in one rounding step (tinyevo_scale, or for an input shift of 0
 * tinyevo_high_mul_lean: the generator proved them exact for this layer, kernels.Add.scaled);
 * else TFLM's steps as written. */
static void ${FUNCTION}(const int8_t *input1, const int8_t *input2, int8_t *output, const tinyevo_add_params *p)
{
    enum { SIZE = ${SIZE}, SCALED = ${SCALED}, FULL_RANGE = ${FULL_RANGE} };
    enum { RIGHT1 = ${RIGHT1}, RIGHT2 = ${RIGHT2} }; /* 0: that input's shift is 0 (no division) */
    const tinyevo_add_params q = *p;
    if (SCALED) {
        const int32_t right1 = -q.input1_shift, right2 = -q.input2_shift, right = -q.output_shift;
        const int32_t round1 = RIGHT1 ? 1 << (right1 - 1) : 0, round2 = RIGHT2 ? 1 << (right2 - 1) : 0;
        const int32_t rounding = (int32_t)((1u << (right - 1)) + (uint32_t)q.output_offset * (1u << right));
        const int32_t offset1 = q.input1_offset * (1 << q.left_shift), offset2 = q.input2_offset * (1 << q.left_shift);
        for (int32_t i = 0; i < SIZE; ++i) {
            const int32_t shifted1 = input1[i] * (1 << q.left_shift) + offset1;
            const int32_t shifted2 = input2[i] * (1 << q.left_shift) + offset2;
            const int32_t sum = (RIGHT1 ? tinyevo_scale(shifted1, q.input1_multiplier, round1, right1)
                                        : tinyevo_high_mul_lean(shifted1, q.input1_multiplier))
                              + (RIGHT2 ? tinyevo_scale(shifted2, q.input2_multiplier, round2, right2)
                                        : tinyevo_high_mul_lean(shifted2, q.input2_multiplier));
            output[i] = tinyevo_output_scaled(sum, q.output_multiplier, rounding, right, q.act_min, q.act_max,
                                              FULL_RANGE);
        }
        return;
    }
    for (int32_t i = 0; i < SIZE; ++i) {
        const int32_t shifted1 = (input1[i] + q.input1_offset) * (1 << q.left_shift);
        const int32_t shifted2 = (input2[i] + q.input2_offset) * (1 << q.left_shift);
        const int32_t sum = tinyevo_requantize(shifted1, q.input1_multiplier, q.input1_shift)
                          + tinyevo_requantize(shifted2, q.input2_multiplier, q.input2_shift);
        output[i] = tinyevo_output(sum, q.output_multiplier, q.output_shift, q.output_offset, q.act_min, q.act_max);
    }
}
