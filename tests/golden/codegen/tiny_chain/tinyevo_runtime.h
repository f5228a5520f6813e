/* tinyevo runtime: the integer arithmetic of TFLite Micro's int8 reference kernels, and the
 * multiply-accumulate loops the generated kernels share. Static inline, C99, no allocation.
 *
 * On Cortex-M cores with the DSP extension (__ARM_FEATURE_DSP, e.g. -mcpu=cortex-m4) the dot
 * products use dual 16-bit multiply-accumulates (SMLAD), four int8 products per two instructions;
 * define TINYEVO_NO_DSP to force the portable C loops. Both give the same integers. */
#ifndef TINYEVO_RUNTIME_H
#define TINYEVO_RUNTIME_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TINYEVO_NO_DSP)
#define TINYEVO_DSP 1
#include <arm_acle.h>
#else
#define TINYEVO_DSP 0
#endif

/* The per-layer constants of a kernel (flash); kernels are shared by layers of the same shape. */
typedef struct {
    const int8_t *weights;
    const int32_t *bias;
    const int32_t *multiplier; /* per output channel (one value for a fully connected layer) */
    const int32_t *shift;
    int32_t input_offset, output_offset, act_min, act_max;
} tinyevo_conv_params;

/* The constants of an im2col convolution: four int32 per output channel, so that they are two
 * loads away: bias, multiplier, then either shift and 0 (tinyevo_output_lean) or, for a layer that
 * takes tinyevo_output_scaled, rounding and right shift. */
typedef struct {
    const void *weights; /* channel pairs interleaved: int8_t (tinyevo_dot2x2), or int16_t (_wide) */
    const int32_t *channels;
    int32_t input_offset, output_offset, act_min, act_max;
} tinyevo_conv_channels_params;

/* Word alignment for the int16 weights that tinyevo_dot2x2_wide loads two words at a time. */
#if defined(__GNUC__)
#define TINYEVO_ALIGN4 __attribute__((aligned(4)))
#else
#define TINYEVO_ALIGN4
#endif

/* A helper the compiler must inline (so that its constant arguments specialize it). */
#if defined(__GNUC__)
#define TINYEVO_INLINE inline __attribute__((always_inline))
#else
#define TINYEVO_INLINE inline
#endif

/* RELU and QUANTIZE: (x + input_offset) requantized, plus output_offset, clamped. */
typedef struct {
    int32_t input_offset, multiplier, shift, output_offset, act_min, act_max;
} tinyevo_requantize_params;

/* ADD: TFLM's int8 ADD parameters. */
typedef struct {
    int32_t left_shift, input1_offset, input1_multiplier, input1_shift;
    int32_t input2_offset, input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift, output_offset, act_min, act_max;
} tinyevo_add_params;

/* The parameters as locals: int8 stores may alias anything, so reading them once up front lets
 * the compiler keep them in registers. */
#define TINYEVO_CONV_LOCALS(p) \
    const int8_t *const weights = (p)->weights; \
    const int32_t *const bias = (p)->bias; \
    const int32_t *const multiplier = (p)->multiplier; \
    const int32_t *const shift = (p)->shift; \
    const int32_t input_offset = (p)->input_offset, output_offset = (p)->output_offset; \
    const int32_t act_min = (p)->act_min, act_max = (p)->act_max

/* gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits of 2*a*b, rounded half away
 * from zero. Written as (a*b + 2^30) >> 31 (one SMLAL on Cortex-M), which equals gemmlowp's
 * sign-dependent nudge and truncating division for every product: for p < 0,
 * trunc((p + 1 - 2^30) / 2^31) = floor((p + 2^30) / 2^31). Arithmetic right shift of a negative
 * value is implementation-defined in C99; every compiler for these targets shifts arithmetically
 * (TFLM relies on it too). */
static inline int32_t tinyevo_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp's RoundingDivideByPOT: x / 2^exponent, rounded half away from zero. */
static inline int32_t tinyevo_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite's MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), double rounding.
 * The left shift wraps like the int32 arithmetic of the reference kernels. */
static inline int32_t tinyevo_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return tinyevo_divide_by_pot(tinyevo_high_mul(shifted, multiplier), right);
}

static inline int32_t tinyevo_min(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static inline int32_t tinyevo_max(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static inline int8_t tinyevo_clamp(int32_t value, int32_t low, int32_t high)
{
    return (int8_t)(value < low ? low : (value > high ? high : value));
}

/* An accumulator to an int8 output: requantize, add the output zero point, clamp. */
static inline int8_t tinyevo_output(int32_t acc, int32_t multiplier, int32_t shift, int32_t offset,
                                    int32_t low, int32_t high)
{
    return tinyevo_clamp(tinyevo_requantize(acc, multiplier, shift) + offset, low, high);
}

/* tinyevo_output for a multiplier that is not INT32_MIN (TFLite's lie in [2^30, 2^31), or 0), so
 * the product never saturates; the left and right shifts are split once per output channel. */
static inline int8_t tinyevo_output_lean(int32_t acc, int32_t multiplier, int32_t left, int32_t right,
                                         int32_t offset, int32_t low, int32_t high)
{
    const int32_t x = (int32_t)((uint32_t)acc << left);
    const int32_t h = (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)h >> 31);
    const int32_t value = (h >> right) + ((h & mask) > threshold ? 1 : 0) + offset;
    return (int8_t)(value < low ? low : (value > high ? high : value));
}

/* tinyevo_requantize plus the output offset in one rounding step, for the layers the generator
 * proves it exact for (kernels.Conv2D.scaled_requantization): multiplier >= 0, right = -shift in
 * [1, 22] (no left shift) and |acc| < 2^30 for every input. With h =
 * SaturatingRoundingDoublingHighMul(acc, multiplier), RoundingDivideByPOT(h, right) + offset =
 * (h + rounding - (h < 0)) >> right, rounding = 2^(right - 1) + offset * 2^right (no overflow:
 * |h| <= 2^30, |offset| <= 128, right <= 22); h < 0 only when acc < 0, and where acc < 0 but h = 0
 * the -1 changes nothing. With the DSP extension h + rounding is one SMMLAR of 2 * acc, since
 * (2 * acc * multiplier + 2^31) >> 32 = (acc * multiplier + 2^30) >> 31. */
static inline int32_t tinyevo_scale(int32_t acc, int32_t multiplier, int32_t rounding, int32_t right)
{
#if TINYEVO_DSP
    int32_t value;
    __asm__("smmlar %0, %1, %2, %3"
            : "=r"(value)
            : "r"(acc * 2), "r"(multiplier), "r"(rounding + (acc >> 31)));
    return value >> right;
#else
    const int32_t h = (int32_t)(((int64_t)acc * multiplier + ((int64_t)1 << 30)) >> 31);
    return (h + rounding + (acc >> 31)) >> right;
#endif
}

/* SaturatingRoundingDoublingHighMul(acc, multiplier) for |acc| < 2^30 and a multiplier that is
 * not INT32_MIN (never saturates): one SMMLAR of 2 * acc with the DSP extension. */
static inline int32_t tinyevo_high_mul_lean(int32_t acc, int32_t multiplier)
{
#if TINYEVO_DSP
    int32_t value;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(value) : "r"(acc * 2), "r"(multiplier), "r"(0));
    return value;
#else
    return (int32_t)(((int64_t)acc * multiplier + ((int64_t)1 << 30)) >> 31);
#endif
}

/* An accumulator to an int8 output through tinyevo_scale; full: the clamp is [-128, 127] (one
 * SSAT with the DSP extension). */
static inline int8_t tinyevo_output_scaled(int32_t acc, int32_t multiplier, int32_t rounding, int32_t right,
                                           int32_t low, int32_t high, int32_t full)
{
    const int32_t value = tinyevo_scale(acc, multiplier, rounding, right);
#if TINYEVO_DSP
    if (full) {
        return (int8_t)__ssat(value, 8);
    }
#else
    (void)full;
#endif
    return tinyevo_clamp(value, low, high);
}

/* One output channel at two pixels: accumulators a, b to *out_a, *out_b (the same byte for a lone
 * pixel, whose b is a), q the channel's four constants (tinyevo_conv_channels_params). scaled: the
 * layer takes tinyevo_output_scaled, full: its clamp is [-128, 127]; both are compile-time
 * constants of the kernel. */
static inline void tinyevo_output_pair(int8_t *out_a, int8_t *out_b, int32_t a, int32_t b, const int32_t *q,
                                       int32_t offset, int32_t low, int32_t high, int32_t scaled,
                                       int32_t full)
{
#if TINYEVO_DSP && defined(__OPTIMIZE__)
    if (scaled && full) {
        /* tinyevo_output_scaled written out (compiled, the registers get shuffled): the channel's
         * constants in two loads, then per output LSL, ADD, SMMLAR, ASR, SSAT, STRB */
        int32_t m, rounding, right, t, u;
        __asm__ volatile("ldrd %[m], %[rounding], [%[q], #4]\n\t"
                         "ldr %[right], [%[q], #12]\n\t"
                         "lsl %[t], %[a], #1\n\t"
                         "add %[u], %[rounding], %[a], asr #31\n\t"
                         "smmlar %[u], %[t], %[m], %[u]\n\t"
                         "asr %[u], %[u], %[right]\n\t"
                         "ssat %[u], #8, %[u]\n\t"
                         "strb %[u], %[out_a]\n\t"
                         "lsl %[t], %[b], #1\n\t"
                         "add %[u], %[rounding], %[b], asr #31\n\t"
                         "smmlar %[u], %[t], %[m], %[u]\n\t"
                         "asr %[u], %[u], %[right]\n\t"
                         "ssat %[u], #8, %[u]\n\t"
                         "strb %[u], %[out_b]\n\t"
                         : [m] "=&r"(m), [rounding] "=&r"(rounding), [right] "=&r"(right), [t] "=&r"(t),
                           [u] "=&r"(u), [out_a] "=m"(*out_a), [out_b] "=m"(*out_b)
                         : [q] "r"(q), [a] "r"(a), [b] "r"(b));
        return;
    }
#endif
    if (scaled) {
        *out_a = tinyevo_output_scaled(a, q[1], q[2], q[3], low, high, full);
        *out_b = tinyevo_output_scaled(b, q[1], q[2], q[3], low, high, full);
    } else {
        const int32_t shift = q[2];
        const int32_t left = shift & ~(shift >> 31), right = left - shift; /* max(shift, 0), max(-shift, 0) */
        *out_a = tinyevo_output_lean(a, q[1], left, right, offset, low, high);
        *out_b = tinyevo_output_lean(b, q[1], left, right, offset, low, high);
    }
}

#if TINYEVO_DSP
static inline int32_t tinyevo_load4(const int8_t *p)
{
    int32_t value;
    memcpy(&value, p, 4);
    return value;
}

/* Bytes 1 and 3 of v sign-extended to two halfwords, plus a (SXTAB16 with ROR #8). */
static inline int32_t tinyevo_sxtab16_ror8(int32_t a, int32_t v)
{
    int32_t result;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(result) : "r"(a), "r"(v));
    return result;
}

static inline int32_t tinyevo_sxtb16_ror8(int32_t v)
{
    int32_t result;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(result) : "r"(v));
    return result;
}

/* acc += the dot product of the four int8 weights at w with the halfword pairs (even, odd). */
static inline int32_t tinyevo_mac4(int32_t acc, int32_t even, int32_t odd, const int8_t *w)
{
    const int32_t weights = tinyevo_load4(w);
    acc = __smlad(even, __sxtb16(weights), acc);
    return __smlad(odd, tinyevo_sxtb16_ror8(weights), acc);
}
#endif

/* acc[j] += sum over i < n of (x[i] + offset) * w[j * stride + i], for j < 1, 2 or 4: the
 * output channels of a block share each load of x. */
static inline void tinyevo_dot1(const int8_t *x, const int8_t *w, int32_t stride, int32_t n,
                                int32_t offset, int32_t *acc)
{
    int32_t i = 0, a0 = acc[0];
    (void)stride;
#if TINYEVO_DSP
    const int32_t offsets = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
    for (; i + 4 <= n; i += 4) {
        const int32_t v = tinyevo_load4(x + i);
        const int32_t even = __sxtab16(offsets, v), odd = tinyevo_sxtab16_ror8(offsets, v);
        a0 = tinyevo_mac4(a0, even, odd, w + i);
    }
#endif
    for (; i < n; ++i) {
        a0 += (x[i] + offset) * w[i];
    }
    acc[0] = a0;
}

static inline void tinyevo_dot2(const int8_t *x, const int8_t *w, int32_t stride, int32_t n,
                                int32_t offset, int32_t *acc)
{
    int32_t i = 0, a0 = acc[0], a1 = acc[1];
#if TINYEVO_DSP
    const int32_t offsets = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
    for (; i + 4 <= n; i += 4) {
        const int32_t v = tinyevo_load4(x + i);
        const int32_t even = __sxtab16(offsets, v), odd = tinyevo_sxtab16_ror8(offsets, v);
        a0 = tinyevo_mac4(a0, even, odd, w + i);
        a1 = tinyevo_mac4(a1, even, odd, w + stride + i);
    }
#endif
    for (; i < n; ++i) {
        const int32_t xi = x[i] + offset;
        a0 += xi * w[i];
        a1 += xi * w[stride + i];
    }
    acc[0] = a0;
    acc[1] = a1;
}

static inline void tinyevo_dot4(const int8_t *x, const int8_t *w, int32_t stride, int32_t n,
                                int32_t offset, int32_t *acc)
{
    int32_t i = 0, a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if TINYEVO_DSP
    const int32_t offsets = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
    for (; i + 4 <= n; i += 4) {
        const int32_t v = tinyevo_load4(x + i);
        const int32_t even = __sxtab16(offsets, v), odd = tinyevo_sxtab16_ror8(offsets, v);
        a0 = tinyevo_mac4(a0, even, odd, w + i);
        a1 = tinyevo_mac4(a1, even, odd, w + stride + i);
        a2 = tinyevo_mac4(a2, even, odd, w + 2 * stride + i);
        a3 = tinyevo_mac4(a3, even, odd, w + 3 * stride + i);
    }
#endif
    for (; i < n; ++i) {
        const int32_t xi = x[i] + offset;
        a0 += xi * w[i];
        a1 += xi * w[stride + i];
        a2 += xi * w[2 * stride + i];
        a3 += xi * w[3 * stride + i];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* The two im2col patches of tinyevo_dot2x2 share one buffer. With the DSP extension they are
 * interleaved four values at a time (group k of the first at 8k, of the second at 8k + 4: one
 * pointer walks both), and each group is stored as the halfword pairs (0, 2), (1, 3) that SXTB16
 * makes of a weight word; without, the second follows the first (n values each), in plain order,
 * so that compilers vectorize the dot products. TINYEVO_PATCH_AT(f): where value f (f % 4 == 0)
 * of a patch starts; TINYEVO_PATCH_B(n): where the second patch starts. */
#if TINYEVO_DSP
#define TINYEVO_PATCH_AT(f) (2 * (f))
#define TINYEVO_PATCH_B(n) 4
#else
#define TINYEVO_PATCH_AT(f) (f)
#define TINYEVO_PATCH_B(n) (n)
#endif

/* An im2col patch: n int8 values plus offset as int16 (n % 4 == 0), at col (TINYEVO_PATCH_AT). */
static inline void tinyevo_widen(const int8_t *x, int32_t n, int32_t offset, int16_t *col)
{
#if TINYEVO_DSP && defined(__OPTIMIZE__)
    /* written out: compiled, the loop is not unrolled and its constant is rebuilt each time */
    const int32_t offsets = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
    int32_t v, e;
#define TINYEVO_WIDEN_STEP \
    "ldr %[v], [%[x]], #4\n\t" \
    "sxtab16 %[e], %[offsets], %[v]\n\t" \
    "sxtab16 %[v], %[offsets], %[v], ror #8\n\t" \
    "strd %[e], %[v], [%[col]], #16\n\t"
#define TINYEVO_WIDEN_ASM(steps) \
    __asm__ volatile(steps \
                     : [x] "+r"(x), [col] "+r"(col), [v] "=&r"(v), [e] "=&r"(e) \
                     : [offsets] "r"(offsets) \
                     : "memory")
    for (int32_t i = 0; i + 16 <= n; i += 16) {
        TINYEVO_WIDEN_ASM(TINYEVO_WIDEN_STEP TINYEVO_WIDEN_STEP TINYEVO_WIDEN_STEP TINYEVO_WIDEN_STEP);
    }
    if (n & 8) {
        TINYEVO_WIDEN_ASM(TINYEVO_WIDEN_STEP TINYEVO_WIDEN_STEP);
    }
    if (n & 4) {
        TINYEVO_WIDEN_ASM(TINYEVO_WIDEN_STEP);
    }
#elif TINYEVO_DSP
    const int32_t offsets = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
    for (int32_t i = 0; i < n; i += 4) {
        const int32_t v = tinyevo_load4(x + i);
        const int32_t halves[2] = {__sxtab16(offsets, v), tinyevo_sxtab16_ror8(offsets, v)};
        memcpy(col + 2 * i, halves, 8);
    }
#else
    for (int32_t i = 0; i < n; ++i) {
        col[i] = (int16_t)(x[i] + offset);
    }
#endif
}

/* n zeros (n % 4 == 0) of a patch at col (TINYEVO_PATCH_AT): the padding. */
static inline void tinyevo_zero(int16_t *col, int32_t n)
{
#if TINYEVO_DSP
    for (int32_t i = 0; i < n; i += 4) {
        memset(col + 2 * i, 0, 4 * sizeof(int16_t));
    }
#else
    memset(col, 0, (size_t)n * sizeof(int16_t));
#endif
}

#if TINYEVO_DSP
/* One step of tinyevo_dot2x2 in assembly: acc += four values of both patches at c times the
 * weight words of the two channels at w and v; the pointers advance. */
#define TINYEVO_DOT2X2_STEP \
    "ldrd %[xb0], %[xb1], [%[c], #8]\n\t" \
    "ldrd %[xa0], %[xa1], [%[c]], #16\n\t" \
    "ldr %[t0], [%[w]], #4\n\t" \
    "sxtb16 %[t1], %[t0]\n\t" \
    "sxtb16 %[t0], %[t0], ror #8\n\t" \
    "smlad %[a00], %[xa0], %[t1], %[a00]\n\t" \
    "smlad %[a01], %[xb0], %[t1], %[a01]\n\t" \
    "smlad %[a00], %[xa1], %[t0], %[a00]\n\t" \
    "smlad %[a01], %[xb1], %[t0], %[a01]\n\t" \
    "ldr %[t0], [%[v]], #4\n\t" \
    "sxtb16 %[t1], %[t0]\n\t" \
    "sxtb16 %[t0], %[t0], ror #8\n\t" \
    "smlad %[a10], %[xa0], %[t1], %[a10]\n\t" \
    "smlad %[a11], %[xb0], %[t1], %[a11]\n\t" \
    "smlad %[a10], %[xa1], %[t0], %[a10]\n\t" \
    "smlad %[a11], %[xb1], %[t0], %[a11]\n\t"

#define TINYEVO_DOT2X2_OPERANDS \
    [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [c] "+r"(c), [w] "+r"(w), \
    [xa0] "=&r"(xa0), [xa1] "=&r"(xa1), [xb0] "=&r"(xb0), [xb1] "=&r"(xb1), [t0] "=&r"(t0), [t1] "=&r"(t1)
#define TINYEVO_DOT2X2_ASM(steps) __asm__(steps : TINYEVO_DOT2X2_OPERANDS, [v] "+r"(v) : : "memory")
#define TINYEVO_DOT2X2_WIDE_ASM(steps) __asm__(steps : TINYEVO_DOT2X2_OPERANDS : : "memory")
#endif

/* Two pixels x two output channels: acc[2c + p] += patch p . weights of channel c, for the two
 * patches at c (TINYEVO_PATCH_B) of n values (n % 4 == 0) and the weights w, w + n of the two
 * channels. */
static inline void tinyevo_dot2x2(const int16_t *c, const int8_t *w, int32_t n, int32_t *acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
#if TINYEVO_DSP && defined(__OPTIMIZE__)
    /* Written out: compiled from the intrinsics, the loop runs out of registers and spills
     * accumulators. Each step: four values of both patches (LDRD: the patches are word aligned),
     * one weight word per channel, 16 MACs in 16 instructions; 13 registers. */
    const int8_t *v = w + n;
    int32_t xa0, xa1, xb0, xb1, t0, t1;
    for (int32_t i = 0; i + 16 <= n; i += 16) {
        TINYEVO_DOT2X2_ASM(TINYEVO_DOT2X2_STEP TINYEVO_DOT2X2_STEP TINYEVO_DOT2X2_STEP TINYEVO_DOT2X2_STEP);
    }
    if (n & 8) {
        TINYEVO_DOT2X2_ASM(TINYEVO_DOT2X2_STEP TINYEVO_DOT2X2_STEP);
    }
    if (n & 4) {
        TINYEVO_DOT2X2_ASM(TINYEVO_DOT2X2_STEP);
    }
#elif TINYEVO_DSP
    const int8_t *v = w + n;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
    for (int32_t i = 0; i < n; i += 4) {
        int32_t xa[2], xb[2];
        memcpy(xa, c + 2 * i, 8);
        memcpy(xb, c + 2 * i + 4, 8);
        const int32_t w0 = tinyevo_load4(w + i);
        const int32_t w0e = __sxtb16(w0);
        a00 = __smlad(xa[0], w0e, a00);
        a01 = __smlad(xb[0], w0e, a01);
        const int32_t w0o = tinyevo_sxtb16_ror8(w0);
        a00 = __smlad(xa[1], w0o, a00);
        a01 = __smlad(xb[1], w0o, a01);
        const int32_t w1 = tinyevo_load4(v + i);
        const int32_t w1e = __sxtb16(w1);
        a10 = __smlad(xa[0], w1e, a10);
        a11 = __smlad(xb[0], w1e, a11);
        const int32_t w1o = tinyevo_sxtb16_ror8(w1);
        a10 = __smlad(xa[1], w1o, a10);
        a11 = __smlad(xb[1], w1o, a11);
    }
#else
    const int16_t *cb = c + n;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t w0 = w[i], w1 = w[n + i];
        a00 += c[i] * w0;
        a01 += cb[i] * w0;
        a10 += c[i] * w1;
        a11 += cb[i] * w1;
    }
#endif
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

#if TINYEVO_DSP
/* One step of tinyevo_dot2x2_wide: four values of both patches at c times four int16 weights of
 * each channel at w; the pointers advance. */
#define TINYEVO_DOT2X2_WIDE_STEP \
    "ldrd %[xb0], %[xb1], [%[c], #8]\n\t" \
    "ldrd %[xa0], %[xa1], [%[c]], #16\n\t" \
    "ldrd %[t0], %[t1], [%[w]], #16\n\t" \
    "smlad %[a00], %[xa0], %[t0], %[a00]\n\t" \
    "smlad %[a01], %[xb0], %[t0], %[a01]\n\t" \
    "smlad %[a00], %[xa1], %[t1], %[a00]\n\t" \
    "smlad %[a01], %[xb1], %[t1], %[a01]\n\t" \
    "ldrd %[t0], %[t1], [%[w], #-8]\n\t" \
    "smlad %[a10], %[xa0], %[t0], %[a10]\n\t" \
    "smlad %[a11], %[xb0], %[t0], %[a11]\n\t" \
    "smlad %[a10], %[xa1], %[t1], %[a10]\n\t" \
    "smlad %[a11], %[xb1], %[t1], %[a11]\n\t"
#endif

/* tinyevo_dot2x2 with the weights already int16 (kernels.Conv2D.wide_weights: small filters, where
 * widening the weights at run time costs more than their flash): the 2n weights of the channel
 * pair interleaved four at a time (four of channel 0, the same four of channel 1, ...), each group
 * in the order (0, 2, 1, 3) of a DSP patch, word aligned; 16 MACs in 12 instructions. */
static inline void tinyevo_dot2x2_wide(const int16_t *c, const int16_t *w, int32_t n, int32_t *acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
#if TINYEVO_DSP && defined(__OPTIMIZE__)
    int32_t xa0, xa1, xb0, xb1, t0, t1;
    for (int32_t i = 0; i + 16 <= n; i += 16) {
        TINYEVO_DOT2X2_WIDE_ASM(TINYEVO_DOT2X2_WIDE_STEP TINYEVO_DOT2X2_WIDE_STEP TINYEVO_DOT2X2_WIDE_STEP
                                TINYEVO_DOT2X2_WIDE_STEP);
    }
    if (n & 8) {
        TINYEVO_DOT2X2_WIDE_ASM(TINYEVO_DOT2X2_WIDE_STEP TINYEVO_DOT2X2_WIDE_STEP);
    }
    if (n & 4) {
        TINYEVO_DOT2X2_WIDE_ASM(TINYEVO_DOT2X2_WIDE_STEP);
    }
#elif TINYEVO_DSP
    for (int32_t i = 0; i < n; i += 4) {
        int32_t xa[2], xb[2], w0[2], w1[2];
        memcpy(xa, c + 2 * i, 8);
        memcpy(xb, c + 2 * i + 4, 8);
        memcpy(w0, w + 2 * i, 8);
        memcpy(w1, w + 2 * i + 4, 8);
        a00 = __smlad(xa[1], w0[1], __smlad(xa[0], w0[0], a00));
        a01 = __smlad(xb[1], w0[1], __smlad(xb[0], w0[0], a01));
        a10 = __smlad(xa[1], w1[1], __smlad(xa[0], w1[0], a10));
        a11 = __smlad(xb[1], w1[1], __smlad(xb[0], w1[0], a11));
    }
#else
    /* the weights of each group of four in the order (0, 2, 1, 3) */
    const int16_t *cb = c + n;
    for (int32_t i = 0; i < n; i += 4) {
        const int16_t *u = w + 2 * i;
        a00 += c[i] * u[0] + c[i + 1] * u[2] + c[i + 2] * u[1] + c[i + 3] * u[3];
        a01 += cb[i] * u[0] + cb[i + 1] * u[2] + cb[i + 2] * u[1] + cb[i + 3] * u[3];
        a10 += c[i] * u[4] + c[i + 1] * u[6] + c[i + 2] * u[5] + c[i + 3] * u[7];
        a11 += cb[i] * u[4] + cb[i + 1] * u[6] + cb[i + 2] * u[5] + cb[i + 3] * u[7];
    }
#endif
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* Depthwise convolutions, four channels c..c+3 at a time: the four weights of one kernel
 * position widened to int16 in the order (c, c+2, c+1, c+3), the two halfword pairs SXTB16 makes
 * of four input bytes (so one LDRD loads them as two words; wide must be word aligned). */
static inline void tinyevo_dw_widen4(const int8_t *w, int16_t *wide)
{
    wide[0] = w[0];
    wide[1] = w[2];
    wide[2] = w[1];
    wide[3] = w[3];
}

/* acc[j] += x[j] * (weight of channel j), j < 4, the weights as tinyevo_dw_widen4 lays them out
 * (the input offset folded into the bias). With the DSP extension: LDR, two SXTB16, LDRD and four
 * 16 x 16 multiply-accumulates (SMLABB, SMLATT), four MACs in eight instructions. */
static inline void tinyevo_dw_mac4_raw(const int8_t *x, const int16_t *wide, int32_t *acc)
{
#if TINYEVO_DSP
    int32_t w[2];
    const int32_t v = tinyevo_load4(x);
    memcpy(w, wide, 8);
    const int32_t even = __sxtb16(v), odd = tinyevo_sxtb16_ror8(v);
    acc[0] = __smlabb(even, w[0], acc[0]);
    acc[2] = __smlatt(even, w[0], acc[2]);
    acc[1] = __smlabb(odd, w[1], acc[1]);
    acc[3] = __smlatt(odd, w[1], acc[3]);
#else
    acc[0] += x[0] * wide[0];
    acc[2] += x[2] * wide[1];
    acc[1] += x[1] * wide[2];
    acc[3] += x[3] * wide[3];
#endif
}

/* Pooling four channels at a time. tinyevo_pool_sum4: sums[0..1] += the four int8 at x as the
 * halfword pairs (0, 2), (1, 3) (two SXTAB16; the window's sums must fit int16: at most 255
 * elements). tinyevo_pool_max4: the bytewise signed maximum of *best and the four int8 at x
 * (SSUB8 sets a GE flag per byte, SEL picks: one asm statement, so nothing runs between them).
 * Both pooling templates use them (pool_2d_block4, and the four-channel words of max_pool_2d and
 * average_pool_2d). */
static inline void tinyevo_pool_sum4(const int8_t *x, int32_t *sums)
{
#if TINYEVO_DSP
    const int32_t v = tinyevo_load4(x);
    sums[0] = __sxtab16(sums[0], v);
    sums[1] = tinyevo_sxtab16_ror8(sums[1], v);
#else
    sums[0] += x[0];
    sums[1] += x[1];
    sums[2] += x[2];
    sums[3] += x[3];
#endif
}

static inline void tinyevo_pool_max4(const int8_t *x, int8_t *best)
{
#if TINYEVO_DSP
    int32_t b, v, d;
    memcpy(&b, best, 4);
    v = tinyevo_load4(x);
    __asm__("ssub8 %[d], %[v], %[b]\n\t"
            "sel %[b], %[v], %[b]"
            : [b] "+r"(b), [d] "=&r"(d)
            : [v] "r"(v)
            : "cc");
    memcpy(best, &b, 4);
#else
    for (int32_t j = 0; j < 4; ++j) {
        best[j] = x[j] > best[j] ? x[j] : best[j];
    }
#endif
}

/* The four sums of tinyevo_pool_sum4 as int32, channel order. */
static inline void tinyevo_pool_sums(const int32_t *sums, int32_t *out)
{
#if TINYEVO_DSP
    out[0] = (int16_t)sums[0];
    out[2] = sums[0] >> 16;
    out[1] = (int16_t)sums[1];
    out[3] = sums[1] >> 16;
#else
    for (int32_t j = 0; j < 4; ++j) {
        out[j] = sums[j];
    }
#endif
}

/* A channel's requantization constants, split once (kernels.requantization): mode 2
 * (tinyevo_output_scaled): multiplier, rounding, right shift; mode 1 (tinyevo_output_lean):
 * multiplier, left shift, right shift; mode 0 (tinyevo_output): multiplier and shift. */
typedef struct {
    int32_t multiplier, a, b;
} tinyevo_channel_scale;

static inline tinyevo_channel_scale tinyevo_channel_scale_of(int32_t multiplier, int32_t shift, int32_t offset,
                                                             int32_t mode)
{
    tinyevo_channel_scale s;
    s.multiplier = multiplier;
    if (mode == 2) {
        s.b = -shift;
        s.a = (int32_t)((1u << (s.b - 1)) + (uint32_t)offset * (1u << s.b));
    } else if (mode == 1) {
        s.a = shift > 0 ? shift : 0;
        s.b = shift > 0 ? 0 : -shift;
    } else {
        s.a = shift;
        s.b = 0;
    }
    return s;
}

static inline int8_t tinyevo_output_mode(int32_t acc, tinyevo_channel_scale s, int32_t offset, int32_t low,
                                         int32_t high, int32_t mode, int32_t full)
{
    if (mode == 2) {
        return tinyevo_output_scaled(acc, s.multiplier, s.a, s.b, low, high, full);
    }
    if (mode == 1) {
        return tinyevo_output_lean(acc, s.multiplier, s.a, s.b, offset, low, high);
    }
    return tinyevo_output(acc, s.multiplier, s.a, offset, low, high);
}

#endif /* TINYEVO_RUNTIME_H */
