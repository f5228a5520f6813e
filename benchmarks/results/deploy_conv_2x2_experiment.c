/* Experiment behind the kernel proposal in the issue-7 report (not built by anything).
 *
 * ResNet-8 layer 1 (3x3 conv, 32x32x16 -> 32x32x16, 2,359,296 MACs) on the emulated Cortex-M4:
 * conv_2d_1 as generated (one pixel x four channels, SMLAD on int8 loads, per-tap bounds checks)
 * against conv_fast (TinyEngine / CMSIS-NN style: the 3x3x16 patch of two output pixels expanded
 * once into an int16 im2col buffer with the input offset applied and the padding as zeros, then
 * two pixels x two channels per inner loop, so each unpacked weight word feeds two pixels) and
 * conv_fast2 (the same, inner loop unrolled by 4, and a requantization without the INT32_MIN case).
 * Measured 2026-11-29 23:05 UTC (QEMU mps2-an386, -icount shift=0, 40 instructions per SysTick tick):
 *   baseline 142311 ticks = 5.69 M instructions = 2.41 / MAC
 *   conv_fast 115072 ticks = 4.60 M = 1.95 / MAC, outputs identical
 *   conv_fast2 110736 ticks = 4.43 M = 1.88 / MAC, outputs identical
 *   tinyevo_output alone: about 54 instructions per output (with the loop)
 * Build: include a generated resnet8 tinyevo_model.c (generate_c, examples/resnet8.json) and link
 * with runtime_c/cortex_m/startup.c and tinyevo_mcu.ld, as tinyevo.deploy.codegen.mcu does. */
#include "tinyevo_model.c"
#include "tinyevo_mcu.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint32_t now(void) { return 0xFFFFFFu - SYST_CVR; }

enum { IN_H = 32, IN_W = 32, IN_C = 16, OUT_H = 32, OUT_W = 32, OUT_C = 16, K = 3, FILTER = 9 * IN_C };
static int8_t in[IN_H * IN_W * IN_C], ref[OUT_H * OUT_W * OUT_C], got[OUT_H * OUT_W * OUT_C];
static int32_t col[2][FILTER / 2];

static void im2col(const int8_t *input, int32_t *c, int32_t oy, int32_t ox, int32_t offsets)
{
    for (int32_t ky = 0; ky < K; ++ky) {
        const int32_t iy = oy - 1 + ky;
        for (int32_t kx = 0; kx < K; ++kx) {
            const int32_t ix = ox - 1 + kx;
            if (iy < 0 || iy >= IN_H || ix < 0 || ix >= IN_W) {
                for (int32_t i = 0; i < IN_C / 2; ++i) *c++ = 0;
                continue;
            }
            const int8_t *x = input + (iy * IN_W + ix) * IN_C;
            for (int32_t i = 0; i < IN_C; i += 4) {
                const int32_t v = tinyevo_load4(x + i);
                *c++ = __sxtab16(offsets, v);
                *c++ = tinyevo_sxtab16_ror8(offsets, v);
            }
        }
    }
}

/* 2 output pixels x 2 output channels per inner loop, q15 im2col (CMSIS-NN / TinyEngine style) */
static void conv_fast(const int8_t *input, int8_t *output, const tinyevo_conv_params *p)
{
    TINYEVO_CONV_LOCALS(p);
    const int32_t offsets = (int32_t)(((uint32_t)input_offset & 0xFFFFu) * 0x10001u);
    for (int32_t oy = 0; oy < OUT_H; ++oy) {
        for (int32_t ox = 0; ox < OUT_W; ox += 2) {
            im2col(input, col[0], oy, ox, offsets);
            im2col(input, col[1], oy, ox + 1, offsets);
            int8_t *out = output + (oy * OUT_W + ox) * OUT_C;
            for (int32_t oc = 0; oc < OUT_C; oc += 2) {
                int32_t a00 = bias[oc], a01 = bias[oc], a10 = bias[oc + 1], a11 = bias[oc + 1];
                const int8_t *w = weights + oc * FILTER;
                const int32_t *ca = col[0], *cb = col[1];
                for (int32_t i = 0; i < FILTER / 4; ++i) {
                    const int32_t w0 = tinyevo_load4(w), w1 = tinyevo_load4(w + FILTER);
                    w += 4;
                    const int32_t w0e = __sxtb16(w0), w0o = tinyevo_sxtb16_ror8(w0);
                    const int32_t w1e = __sxtb16(w1), w1o = tinyevo_sxtb16_ror8(w1);
                    const int32_t xae = ca[0], xao = ca[1], xbe = cb[0], xbo = cb[1];
                    ca += 2; cb += 2;
                    a00 = __smlad(xae, w0e, a00); a00 = __smlad(xao, w0o, a00);
                    a01 = __smlad(xbe, w0e, a01); a01 = __smlad(xbo, w0o, a01);
                    a10 = __smlad(xae, w1e, a10); a10 = __smlad(xao, w1o, a10);
                    a11 = __smlad(xbe, w1e, a11); a11 = __smlad(xbo, w1o, a11);
                }
                out[oc] = tinyevo_output(a00, multiplier[oc], shift[oc], output_offset, act_min, act_max);
                out[oc + 1] = tinyevo_output(a10, multiplier[oc + 1], shift[oc + 1], output_offset, act_min, act_max);
                out[OUT_C + oc] = tinyevo_output(a01, multiplier[oc], shift[oc], output_offset, act_min, act_max);
                out[OUT_C + oc + 1] = tinyevo_output(a11, multiplier[oc + 1], shift[oc + 1], output_offset, act_min, act_max);
            }
        }
    }
}


/* Same integers as tinyevo_output when multiplier > 0 (TFLite multipliers lie in [2^30, 2^31)):
 * no INT32_MIN case, the nudge follows the sign of x. */
static inline int8_t lean_output(int32_t x, int32_t multiplier, int32_t shift, int32_t offset, int32_t lo, int32_t hi)
{
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const int32_t v = (int32_t)((uint32_t)x << left);
    const int64_t product = (int64_t)v * multiplier + (v >= 0 ? (1 << 30) : (1 - (1 << 30)));
    int32_t high = (int32_t)(product >> 31);
    /* C division truncates toward zero; >> floors: fix up negative non-exact values */
    if (product < 0 && (product & 0x7FFFFFFF)) high += 1;
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t rem = high & mask, threshold = (mask >> 1) + (high < 0);
    int32_t r = (high >> right) + (rem > threshold) + offset;
    return (int8_t)(r < lo ? lo : (r > hi ? hi : r));
}

static void conv_fast2(const int8_t *input, int8_t *output, const tinyevo_conv_params *p)
{
    TINYEVO_CONV_LOCALS(p);
    const int32_t offsets = (int32_t)(((uint32_t)input_offset & 0xFFFFu) * 0x10001u);
    for (int32_t oy = 0; oy < OUT_H; ++oy) {
        for (int32_t ox = 0; ox < OUT_W; ox += 2) {
            im2col(input, col[0], oy, ox, offsets);
            im2col(input, col[1], oy, ox + 1, offsets);
            int8_t *out = output + (oy * OUT_W + ox) * OUT_C;
            for (int32_t oc = 0; oc < OUT_C; oc += 2) {
                int32_t a00 = bias[oc], a01 = bias[oc], a10 = bias[oc + 1], a11 = bias[oc + 1];
                const int8_t *w = weights + oc * FILTER;
                const int32_t *ca = col[0], *cb = col[1];
#pragma GCC unroll 4
                for (int32_t i = 0; i < FILTER / 4; ++i) {
                    const int32_t w0 = tinyevo_load4(w), w1 = tinyevo_load4(w + FILTER);
                    w += 4;
                    const int32_t w0e = __sxtb16(w0), w0o = tinyevo_sxtb16_ror8(w0);
                    const int32_t w1e = __sxtb16(w1), w1o = tinyevo_sxtb16_ror8(w1);
                    const int32_t xae = ca[0], xao = ca[1], xbe = cb[0], xbo = cb[1];
                    ca += 2; cb += 2;
                    a00 = __smlad(xae, w0e, a00); a00 = __smlad(xao, w0o, a00);
                    a01 = __smlad(xbe, w0e, a01); a01 = __smlad(xbo, w0o, a01);
                    a10 = __smlad(xae, w1e, a10); a10 = __smlad(xao, w1o, a10);
                    a11 = __smlad(xbe, w1e, a11); a11 = __smlad(xbo, w1o, a11);
                }
                out[oc] = lean_output(a00, multiplier[oc], shift[oc], output_offset, act_min, act_max);
                out[oc + 1] = lean_output(a10, multiplier[oc + 1], shift[oc + 1], output_offset, act_min, act_max);
                out[OUT_C + oc] = lean_output(a01, multiplier[oc], shift[oc], output_offset, act_min, act_max);
                out[OUT_C + oc + 1] = lean_output(a11, multiplier[oc + 1], shift[oc + 1], output_offset, act_min, act_max);
            }
        }
    }
}

static volatile int32_t sink;
static void requant_only(const tinyevo_conv_params *p)
{
    TINYEVO_CONV_LOCALS(p);
    (void)weights; (void)input_offset;
    for (int32_t i = 0; i < OUT_H * OUT_W * OUT_C; ++i) {
        got[i] = tinyevo_output(bias[i & 15] + i * 1237, multiplier[i & 15], shift[i & 15], output_offset, act_min, act_max);
    }
}

static char line[96];
static void say(const char *label, uint32_t v)
{
    char *q = line; while (*label) *q++ = *label++;
    char d[12]; int n = 0; do { d[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *q++ = d[--n];
    *q++ = '\n'; *q = 0; tinyevo_semihost(0x04, line);
}

int main(void)
{
    SYST_RVR = 0xFFFFFFu; SYST_CVR = 0; SYST_CSR = 5u; /* no interrupt: short runs */
    while (SYST_CVR == 0u) {}
    uint32_t s = 12345;
    for (uint32_t i = 0; i < sizeof in; ++i) { s = s * 1103515245u + 12345u; in[i] = (int8_t)(s >> 24); }
    uint32_t t0 = now(); conv_2d_1(in, ref, &layer1_params); uint32_t t1 = now();
    conv_fast(in, got, &layer1_params); uint32_t t2 = now();
    int same = 1; for (uint32_t i = 0; i < sizeof ref; ++i) same &= ref[i] == got[i];
    uint32_t t3 = now(); requant_only(&layer1_params); uint32_t t4 = now();
    static int8_t got2[sizeof ref];
    uint32_t t5 = now(); conv_fast2(in, got2, &layer1_params); uint32_t t6 = now();
    int same2 = 1; for (uint32_t i = 0; i < sizeof ref; ++i) same2 &= ref[i] == got2[i];
    say("fast2_ticks ", t6 - t5); say("same2 ", (uint32_t)same2);
    say("baseline_ticks ", t1 - t0); say("fast_ticks ", t2 - t1); say("same ", (uint32_t)same);
    say("requant_ticks_16k_outputs ", t4 - t3);
    (void)tinyevo_model_run;
    return 0;
}
