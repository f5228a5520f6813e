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

/* One output channel at two pixels a and b (b only when pair), stride bytes apart. */
static inline void tinyevo_output_pair(int8_t *out, int32_t stride, int32_t pair, int32_t a, int32_t b,
                                       int32_t multiplier, int32_t shift, int32_t offset, int32_t low,
                                       int32_t high)
{
    const int32_t left = shift & ~(shift >> 31), right = left - shift; /* max(shift, 0), max(-shift, 0) */
    out[0] = tinyevo_output_lean(a, multiplier, left, right, offset, low, high);
    if (pair) {
        out[stride] = tinyevo_output_lean(b, multiplier, left, right, offset, low, high);
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

/* An im2col patch: n int8 values plus offset as int16 (n % 4 == 0). With the DSP extension each
 * group of four is stored as the halfword pairs (0, 2), (1, 3) that SXTB16 makes of a weight word. */
static inline void tinyevo_widen(const int8_t *x, int32_t n, int32_t offset, int16_t *col)
{
#if TINYEVO_DSP
    const int32_t offsets = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
    for (int32_t i = 0; i < n; i += 4) {
        const int32_t v = tinyevo_load4(x + i);
        const int32_t even = __sxtab16(offsets, v), odd = tinyevo_sxtab16_ror8(offsets, v);
        memcpy(col + i, &even, 4);
        memcpy(col + i + 2, &odd, 4);
    }
#else
    for (int32_t i = 0; i < n; ++i) {
        col[i] = (int16_t)(x[i] + offset);
    }
#endif
}

/* Where tinyevo_widen puts value f of a patch (for patches built value by value). */
static inline int32_t tinyevo_patch_index(int32_t f)
{
#if TINYEVO_DSP
    return (f & ~3) | ((f & 1) << 1) | ((f >> 1) & 1);
#else
    return f;
#endif
}

#if TINYEVO_DSP
/* One step of tinyevo_dot2x2 in assembly: acc += four values of patches ca, cb times the weight
 * words at w and v; the pointers advance. */
#define TINYEVO_DOT2X2_STEP \
    "ldrd %[xa0], %[xa1], [%[ca]], #8\n\t" \
    "ldrd %[xb0], %[xb1], [%[cb]], #8\n\t" \
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

#define TINYEVO_DOT2X2_ASM(steps) \
    __asm__(steps \
            : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [ca] "+r"(ca), \
              [cb] "+r"(cb), [w] "+r"(w), [v] "+r"(v), [xa0] "=&r"(xa0), [xa1] "=&r"(xa1), \
              [xb0] "=&r"(xb0), [xb1] "=&r"(xb1), [t0] "=&r"(t0), [t1] "=&r"(t1) \
            : \
            : "memory")
#endif

/* Two pixels x two output channels: acc[2c + p] += patch p . weights of channel c, for patches
 * ca, cb (tinyevo_widen) of n values (n % 4 == 0) and weights w, w + stride. */
static inline void tinyevo_dot2x2(const int16_t *ca, const int16_t *cb, const int8_t *w, int32_t stride,
                                  int32_t n, int32_t *acc)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
#if TINYEVO_DSP && defined(__OPTIMIZE__)
    /* Written out: compiled from the intrinsics, the loop runs out of registers and spills
     * accumulators. Each step: four values of both patches (LDRD: the patches are word aligned),
     * one weight word per channel, 16 MACs in 16 instructions; 14 registers. */
    const int8_t *v = w + stride;
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
    const int8_t *v = w + stride;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
    for (int32_t i = 0; i < n; i += 4) {
        int32_t xa[2], xb[2];
        memcpy(xa, ca + i, 8);
        memcpy(xb, cb + i, 8);
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
    for (int32_t i = 0; i < n; ++i) {
        const int32_t w0 = w[i], w1 = w[stride + i];
        a00 += ca[i] * w0;
        a01 += cb[i] * w0;
        a10 += ca[i] * w1;
        a11 += cb[i] * w1;
    }
#endif
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

#endif /* TINYEVO_RUNTIME_H */
