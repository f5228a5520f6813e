/* ${COMMENT}
 * In place: channel by channel, the input channel is copied to the scratch buffer (height x
 * width bytes) and the output channel written over it; channels never mix. */
static void ${FUNCTION}(const int8_t *input, int8_t *output, int8_t *scratch, const tinyevo_conv_params *p)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, CHANNELS = ${OUT_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    TINYEVO_CONV_LOCALS(p);
    for (int32_t c = 0; c < CHANNELS; ++c) {
        for (int32_t i = 0; i < IN_H * IN_W; ++i) {
            scratch[i] = input[i * CHANNELS + c];
        }
        for (int32_t oy = 0; oy < OUT_H; ++oy) {
            for (int32_t ox = 0; ox < OUT_W; ++ox) {
                int32_t acc = bias[c];
                for (int32_t ky = 0; ky < K_H; ++ky) {
                    const int32_t iy = oy * STRIDE_H - PAD_TOP + ky * DILATION_H;
                    if (iy < 0 || iy >= IN_H) {
                        continue;
                    }
                    for (int32_t kx = 0; kx < K_W; ++kx) {
                        const int32_t ix = ox * STRIDE_W - PAD_LEFT + kx * DILATION_W;
                        if (ix >= 0 && ix < IN_W) {
                            acc += (scratch[iy * IN_W + ix] + input_offset) * weights[(ky * K_W + kx) * CHANNELS + c];
                        }
                    }
                }
                output[(oy * OUT_W + ox) * CHANNELS + c] = tinyevo_output(
                    acc, multiplier[c], shift[c], output_offset, act_min, act_max);
            }
        }
    }
}
