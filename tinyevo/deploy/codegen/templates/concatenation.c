/* ${COMMENT}
 * Per input: its channels, and whether (and how) it is requantized to the output's scale. */
static const int32_t ${SYMBOL}_channels[${COUNT}] = {${CHANNELS}};
static const int8_t ${SYMBOL}_requantize[${COUNT}] = {${REQUANTIZE}};
static const int32_t ${SYMBOL}_input_offset[${COUNT}] = {${INPUT_OFFSETS}};
static const int32_t ${SYMBOL}_multiplier[${COUNT}] = {${MULTIPLIERS}};
static const int32_t ${SYMBOL}_shift[${COUNT}] = {${SHIFTS}};

static void ${FUNCTION}(const int8_t *const inputs[${COUNT}], int8_t *output)
{
    enum { PIXELS = ${PIXELS}, OUT_C = ${OUT_C}, COUNT = ${COUNT} };
    for (int32_t p = 0; p < PIXELS; ++p) {
        int8_t *out = output + p * OUT_C;
        for (int32_t k = 0; k < COUNT; ++k) {
            const int32_t channels = ${SYMBOL}_channels[k];
            const int8_t *x = inputs[k] + p * channels;
            if (!${SYMBOL}_requantize[k]) {
                memcpy(out, x, (size_t)channels);
            } else {
                for (int32_t c = 0; c < channels; ++c) {
                    out[c] = tinyevo_output(x[c] + ${SYMBOL}_input_offset[k], ${SYMBOL}_multiplier[k],
                                            ${SYMBOL}_shift[k], ${OUTPUT_OFFSET}, -128, 127);
                }
            }
            out += channels;
        }
    }
}
