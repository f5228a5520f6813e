/* ${COMMENT}
 * In place, two pixels x two output channels per inner loop: two input pixels are expanded into
 * int16 patches (input offset applied, on the stack: ${COL_BYTES} bytes) before their outputs are
 * written, and with no more output than input channels those outputs end before the next unread
 * input pixel starts, so the scratch buffer is not needed. */
static void ${FUNCTION}(const int8_t *input, int8_t *output, int8_t *scratch, const tinyevo_conv_channels_params *p)
{
    enum { PIXELS = ${PIXELS}, IN_C = ${IN_C}, OUT_C = ${OUT_C} };
    enum { SCALED = ${SCALED}, FULL_RANGE = ${FULL_RANGE}, WIDE = ${WIDE} };
    /* read once: int8 stores may alias anything */
    const int8_t *const weights = (const int8_t *)p->weights;
    const int32_t *const channels = p->channels;
    const int32_t input_offset = p->input_offset, output_offset = p->output_offset;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    union {
        int32_t align;
        int16_t values[2 * IN_C]; /* the two patches (TINYEVO_PATCH_B) */
    } col;
    (void)scratch;
    for (int32_t i = 0; i < PIXELS; i += 2) {
        const int32_t pair = i + 1 < PIXELS; /* 0: the last pixel, alone (its b is a again) */
        tinyevo_widen(input + i * IN_C, IN_C, input_offset, col.values);
        tinyevo_widen(input + (pair ? i + 1 : i) * IN_C, IN_C, input_offset,
                      col.values + TINYEVO_PATCH_B(IN_C));
        int8_t *out_a = output + i * OUT_C, *out_b = out_a + (pair ? OUT_C : 0);
        const int8_t *w = weights; /* channel pairs (tinyevo_dot2x2, int16: tinyevo_dot2x2_wide) */
        const int32_t *q = channels;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${UNROLL}
#endif
        for (int32_t oc = 0; oc < OUT_C; oc += 2, w += 2 * IN_C * (WIDE ? 2 : 1), q += 8) {
            int32_t acc[4] = {q[0], q[0], q[4], q[4]};
            if (WIDE) {
                tinyevo_dot2x2_wide(col.values, (const int16_t *)(const void *)w, IN_C, acc);
            } else {
                tinyevo_dot2x2(col.values, w, IN_C, acc);
            }
            tinyevo_output_pair(out_a + oc, out_b + oc, acc[0], acc[1], q, output_offset, act_min, act_max,
                                SCALED, FULL_RANGE);
            tinyevo_output_pair(out_a + oc + 1, out_b + oc + 1, acc[2], acc[3], q + 4, output_offset, act_min,
                                act_max, SCALED, FULL_RANGE);
        }
    }
}
