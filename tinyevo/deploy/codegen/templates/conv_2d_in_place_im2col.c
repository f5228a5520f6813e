/* ${COMMENT}
 * In place, two pixels x two output channels per inner loop: two input pixels are expanded into
 * int16 patches (input offset applied, on the stack: ${COL_BYTES} bytes) before their outputs are
 * written, and with no more output than input channels those outputs end before the next unread
 * input pixel starts, so the scratch buffer is not needed. */
static void ${FUNCTION}(const int8_t *input, int8_t *output, int8_t *scratch, const tinyevo_conv_params *p)
{
    enum { PIXELS = ${PIXELS}, IN_C = ${IN_C}, OUT_C = ${OUT_C} };
    TINYEVO_CONV_LOCALS(p);
    union {
        int32_t align;
        int16_t values[2][IN_C];
    } col;
    (void)scratch;
    for (int32_t i = 0; i < PIXELS; i += 2) {
        const int32_t pair = i + 1 < PIXELS; /* 0: the last pixel, alone */
        tinyevo_widen(input + i * IN_C, IN_C, input_offset, col.values[0]);
        tinyevo_widen(input + (pair ? i + 1 : i) * IN_C, IN_C, input_offset, col.values[1]);
        int8_t *out = output + i * OUT_C;
        for (int32_t oc = 0; oc < OUT_C; oc += 2) {
            int32_t acc[4] = {bias[oc], bias[oc], bias[oc + 1], bias[oc + 1]};
            tinyevo_dot2x2(col.values[0], col.values[1], weights + oc * IN_C, IN_C, IN_C, acc);
            tinyevo_output_pair(out + oc, OUT_C, pair, acc[0], acc[1], multiplier[oc], shift[oc],
                                output_offset, act_min, act_max);
            tinyevo_output_pair(out + oc + 1, OUT_C, pair, acc[2], acc[3], multiplier[oc + 1], shift[oc + 1],
                                output_offset, act_min, act_max);
        }
    }
}
