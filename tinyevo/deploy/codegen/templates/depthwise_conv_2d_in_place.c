/* ${COMMENT}
 * In place: channel by channel, the input channel is copied to the scratch buffer (height x
 * width bytes) and the output channel written over it; channels never mix. Per channel the
 * weights are read once into int32 and the requantization constants split once. In the interior
 * (output rows OY_LO..OY_HI - 1, columns OX_LO..OX_HI - 1: every kernel position inside the
 * input) the input offset is folded into the bias (bias + offset * sum of the weights, the same
 * integer) and the taps run without bounds checks, two output pixels per step sharing the weight
 * loads; at the border only the kernel positions inside are summed (TFLM skips the padding).
 * REQUANT: 2 tinyevo_output_scaled, 1 tinyevo_output_lean, 0 tinyevo_output. */
static TINYEVO_INLINE int32_t ${FUNCTION}_edge(const int8_t *scratch, const int32_t *w, int32_t acc,
                                               int32_t input_offset, int32_t oy, int32_t ox, int32_t rows_inside)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    /* the kernel positions inside: rows ky0..ky1 - 1, columns kx0..kx1 - 1 */
    const int32_t iy0 = oy * STRIDE_H - PAD_TOP, ix0 = ox * STRIDE_W - PAD_LEFT;
    int32_t ky0 = 0, ky1 = K_H, kx0 = 0, kx1 = K_W;
    while (!rows_inside && ky0 < K_H && iy0 + ky0 * DILATION_H < 0) {
        ++ky0;
    }
    while (!rows_inside && ky1 > ky0 && iy0 + (ky1 - 1) * DILATION_H >= IN_H) {
        --ky1;
    }
    while (kx0 < K_W && ix0 + kx0 * DILATION_W < 0) {
        ++kx0;
    }
    while (kx1 > kx0 && ix0 + (kx1 - 1) * DILATION_W >= IN_W) {
        --kx1;
    }
    for (int32_t ky = ky0; ky < ky1; ++ky) {
        const int8_t *x = scratch + (iy0 + ky * DILATION_H) * IN_W;
        for (int32_t kx = kx0; kx < kx1; ++kx) {
            acc += (x[ix0 + kx * DILATION_W] + input_offset) * w[ky * K_W + kx];
        }
    }
    return acc;
}

/* Output pixels first..end - 1 of one row, every kernel position inside: x the input value of the
 * first pixel's first position, rows ROW_STRIDE bytes apart; acc starts at the folded bias. */
static TINYEVO_INLINE void ${FUNCTION}_run(const int8_t *x, int8_t *out, const int32_t *weights,
                                           const int32_t *pairs, int32_t folded,
                                           tinyevo_channel_scale scale, int32_t output_offset, int32_t act_min,
                                           int32_t act_max, int32_t first, int32_t end, int32_t row_stride)
{
    enum { CHANNELS = ${OUT_C}, K_H = ${K_H}, K_W = ${K_W}, STRIDE_W = ${STRIDE_W} };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, REQUANT = ${REQUANT}, FULL_RANGE = ${FULL_RANGE} };
    enum { PAIRS = ${PAIRS}, PAIR_TAIL = ${PAIR_TAIL} }; /* PAIR_TAIL: an odd last pixel (PAIRS: end is OUT_W) */
    const int32_t *const w = weights;
    int32_t ox = first;
#if TINYEVO_DSP
    if (PAIRS) {
        /* stride 1: two pixels per step from k_w + 1 bytes per kernel row (kernels.pair_row_source);
         * pair[t]: the weights t and t + 2 of a row as a halfword pair */
        for (; ox + 1 < end; ox += 2, x += 2) {
            int32_t acc_a = folded, acc_b = folded;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
            for (int32_t ky = 0; ky < K_H; ++ky) {
                const int8_t *r = x + ky * row_stride;
                const int32_t *pair = pairs + ky * K_W, *w = weights + ky * K_W;
${PAIR_ROW}
            }
            out[ox * CHANNELS] = tinyevo_output_mode(acc_a, scale, output_offset, act_min, act_max, REQUANT,
                                                     FULL_RANGE);
            out[(ox + 1) * CHANNELS] = tinyevo_output_mode(acc_b, scale, output_offset, act_min, act_max,
                                                           REQUANT, FULL_RANGE);
        }
        if (PAIR_TAIL && ox < end) {
            /* the row's last, odd pixel: the first pixel of the pair path alone */
            int32_t acc_a = folded;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
            for (int32_t ky = 0; ky < K_H; ++ky) {
                const int8_t *r = x + ky * row_stride;
                const int32_t *pair = pairs + ky * K_W, *w = weights + ky * K_W;
${PAIR_ROW_ONE}
            }
            out[ox * CHANNELS] = tinyevo_output_mode(acc_a, scale, output_offset, act_min, act_max, REQUANT,
                                                     FULL_RANGE);
            ++ox;
        }
    }
#else
    (void)pairs;
#endif
    for (; ox + 1 < end; ox += 2, x += 2 * STRIDE_W) {
        int32_t acc_a = folded, acc_b = folded;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
        for (int32_t ky = 0; ky < K_H; ++ky) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_W}
#endif
            for (int32_t kx = 0; kx < K_W; ++kx) {
                const int32_t at = ky * DILATION_H * row_stride + kx * DILATION_W;
                acc_a += x[at] * w[ky * K_W + kx];
                acc_b += x[at + STRIDE_W] * w[ky * K_W + kx];
            }
        }
        out[ox * CHANNELS] = tinyevo_output_mode(acc_a, scale, output_offset, act_min, act_max, REQUANT, FULL_RANGE);
        out[(ox + 1) * CHANNELS] = tinyevo_output_mode(acc_b, scale, output_offset, act_min, act_max, REQUANT,
                                                       FULL_RANGE);
    }
    if (ox < end) {
        int32_t acc = folded;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_H}
#endif
        for (int32_t ky = 0; ky < K_H; ++ky) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll ${K_W}
#endif
            for (int32_t kx = 0; kx < K_W; ++kx) {
                acc += x[ky * DILATION_H * row_stride + kx * DILATION_W] * w[ky * K_W + kx];
            }
        }
        out[ox * CHANNELS] = tinyevo_output_mode(acc, scale, output_offset, act_min, act_max, REQUANT, FULL_RANGE);
    }
}

static void ${FUNCTION}(const int8_t *input, int8_t *output, int8_t *scratch, const tinyevo_conv_params *p)
{
    enum { IN_H = ${IN_H}, IN_W = ${IN_W}, CHANNELS = ${OUT_C}, OUT_H = ${OUT_H}, OUT_W = ${OUT_W} };
    enum { K_H = ${K_H}, K_W = ${K_W}, STRIDE_H = ${STRIDE_H}, STRIDE_W = ${STRIDE_W}, TAPS = K_H * K_W };
    enum { DILATION_H = ${DILATION_H}, DILATION_W = ${DILATION_W}, PAD_TOP = ${PAD_TOP}, PAD_LEFT = ${PAD_LEFT} };
    enum { OY_LO = ${OY_LO}, OY_HI = ${OY_HI}, OX_LO = ${OX_LO}, OX_HI = ${OX_HI} };
    enum { REQUANT = ${REQUANT}, FULL_RANGE = ${FULL_RANGE} };
    enum { PADDED = ${PADDED}, PLANE_H = ${PLANE_H}, PLANE_W = ${PLANE_W} };
    TINYEVO_CONV_LOCALS(p);
    if (PADDED) {
        /* the channel, padded with the input zero point (so that its taps add zero, as TFLM's
         * skipped ones), on the stack: every output pixel is an interior one */
        union {
            int32_t align;
            int8_t values[PADDED ? PLANE_H * PLANE_W + 4 : 1]; /* 4: the word loads' overreach */
        } plane;
        (void)scratch;
        memset(plane.values, -input_offset, sizeof plane.values);
        for (int32_t c = 0; c < CHANNELS; ++c) {
            const int8_t *from = input + c;
            for (int32_t y = 0; y < IN_H; ++y) {
                int8_t *to = plane.values + (y + PAD_TOP) * PLANE_W + PAD_LEFT;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
                for (int32_t x = 0; x < IN_W; ++x) {
                    to[x] = from[(y * IN_W + x) * CHANNELS];
                }
            }
            int32_t w[TAPS], sum = 0;
#if defined(__GNUC__) && !defined(__clang__) && TINYEVO_DSP
#pragma GCC unroll 49
#endif
            for (int32_t t = 0; t < TAPS; ++t) {
                w[t] = weights[t * CHANNELS + c];
                sum += w[t];
            }
            int32_t pairs[TAPS];
#if defined(__GNUC__) && !defined(__clang__) && TINYEVO_DSP
#pragma GCC unroll 49
#endif
            for (int32_t t = 0; t + 2 < TAPS; ++t) {
                pairs[t] = (int32_t)(((uint32_t)w[t] & 0xFFFFu) | ((uint32_t)w[t + 2] << 16));
            }
            const int32_t folded = bias[c] + input_offset * sum;
            const tinyevo_channel_scale scale = tinyevo_channel_scale_of(multiplier[c], shift[c], output_offset,
                                                                         REQUANT);
            for (int32_t oy = 0; oy < OUT_H; ++oy) {
                ${FUNCTION}_run(plane.values + oy * STRIDE_H * PLANE_W, output + oy * OUT_W * CHANNELS + c, w,
                                pairs, folded, scale, output_offset, act_min, act_max, 0, OUT_W, PLANE_W);
            }
        }
        return;
    }
    for (int32_t c = 0; c < CHANNELS; ++c) {
        const int8_t *from = input + c;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
        for (int32_t i = 0; i < IN_H * IN_W; ++i) {
            scratch[i] = from[i * CHANNELS];
        }
        int32_t w[TAPS], sum = 0;
#if defined(__GNUC__) && !defined(__clang__) && (TINYEVO_DSP || ${K_H} * ${K_W} > 9)
#pragma GCC unroll 49
#endif
        for (int32_t t = 0; t < TAPS; ++t) {
            w[t] = weights[t * CHANNELS + c];
            sum += w[t];
        }
        const int32_t folded = bias[c] + input_offset * sum;
        const tinyevo_channel_scale scale = tinyevo_channel_scale_of(multiplier[c], shift[c], output_offset,
                                                                     REQUANT);
#define TINYEVO_DW_OUT(ox, acc) \
    out[(ox) * CHANNELS] = tinyevo_output_mode((acc), scale, output_offset, act_min, act_max, REQUANT, FULL_RANGE)
        for (int32_t oy = 0; oy < OUT_H; ++oy) {
            int8_t *out = output + oy * OUT_W * CHANNELS + c;
            if (oy < OY_LO || oy >= OY_HI) {
                for (int32_t ox = 0; ox < OUT_W; ++ox) {
                    TINYEVO_DW_OUT(ox, ${FUNCTION}_edge(scratch, w, bias[c], input_offset, oy, ox, 0));
                }
                continue;
            }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
            for (int32_t ox = 0; ox < OX_LO; ++ox) {
                TINYEVO_DW_OUT(ox, ${FUNCTION}_edge(scratch, w, bias[c], input_offset, oy, ox, 1));
            }
            ${FUNCTION}_run(scratch + (oy * STRIDE_H - PAD_TOP) * IN_W + (OX_LO * STRIDE_W - PAD_LEFT), out, w,
                            w, folded, scale, output_offset, act_min, act_max, OX_LO, OX_HI, IN_W);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 8
#endif
            for (int32_t bx = OX_HI; bx < OUT_W; ++bx) {
                TINYEVO_DW_OUT(bx, ${FUNCTION}_edge(scratch, w, bias[c], input_offset, oy, bx, 1));
            }
        }
#undef TINYEVO_DW_OUT
    }
}
