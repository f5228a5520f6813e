/* Cortex-M harness for a generated tinyevo model, run on QEMU (-M mps2-an385, mps2-an386 or
 * mps2-an505, -semihosting, -icount shift=0). The int8 samples are linked into the image
 * (tinyevo_mcu_inputs.c, written by tinyevo.deploy.codegen.mcu); every output goes to the host's
 * stdout as one line of hex:
 *
 *   calibration <ticks> <instructions>   SysTick ticks of a loop of known instruction count
 *   output <sample> <hex bytes>
 *   ticks <sample> <SysTick ticks spent in tinyevo_model_run>
 *   mark <index> <ticks since the run started>   (profiled builds, first sample only)
 *   stack <bytes> <window bytes>   stack high-water mark of the first sample's run
 *   done
 *
 * SysTick runs from the processor clock with the full 24-bit reload; its interrupt counts the
 * wraps, so long runs are measured exactly. With -icount the emulator's clock advances by
 * instructions, which makes SysTick ticks a count of executed instructions (the calibration
 * line gives the ratio).
 *
 * Stack: before the first sample, the words below the stack pointer (a window of
 * TINYEVO_MCU_STACK_WINDOW bytes, above the end of .bss) are painted with a pattern; after the run
 * the lowest word no longer holding it marks how deep tinyevo_model_run's calls (and the SysTick
 * interrupt's frame that may land on top) went: the stack the arena does not count. A run that
 * reaches the window's floor prints the window itself, so bytes == window means "at least". */
#include <stdint.h>

#include "tinyevo_mcu.h"
#include "tinyevo_model.h"

#ifndef TINYEVO_MCU_MARKS
#define TINYEVO_MCU_MARKS 1
#endif

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
/* SysTick reload value: the full 24 bits by default; smaller values test the wrap counting. */
#ifndef TINYEVO_MCU_RELOAD
#define TINYEVO_MCU_RELOAD 0x00FFFFFFu
#endif
#define RELOAD ((uint32_t)(TINYEVO_MCU_RELOAD))
#define CALIBRATION_LOOPS 100000u

#ifndef TINYEVO_MCU_STACK_WINDOW
#define TINYEVO_MCU_STACK_WINDOW 65536u
#endif
#define STACK_PAINT 0xC5A3E17Bu

extern const uint32_t tinyevo_mcu_sample_count;
extern uint32_t _ebss;
extern const int8_t tinyevo_mcu_inputs[];

static int8_t output[TINYEVO_OUTPUT_BYTES];
static uint64_t marks[TINYEVO_MCU_MARKS];
static volatile int marking;
static char line[64 + 2 * TINYEVO_OUTPUT_BYTES];

static uint64_t now_ticks(void)
{
    uint32_t wraps, current;
    do {
        wraps = tinyevo_mcu_systick_wraps;
        current = SYST_CVR;
    } while (wraps != tinyevo_mcu_systick_wraps);
    return (uint64_t)wraps * (RELOAD + 1u) + (RELOAD - current);
}

/* Called by a profiled model before op `index` and after the last op. */
void tinyevo_mcu_mark(int index)
{
    if (marking && index >= 0 && index < TINYEVO_MCU_MARKS) {
        marks[index] = now_ticks();
    }
}

static char *put_text(char *p, const char *text)
{
    while (*text) {
        *p++ = *text++;
    }
    return p;
}

static char *put_number(char *p, uint64_t value)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    while (n) {
        *p++ = digits[--n];
    }
    return p;
}

static void print_line(char *end)
{
    *end++ = '\n';
    *end = '\0';
    tinyevo_semihost(0x04, line); /* SYS_WRITE0 */
}

static void print_pair(const char *label, uint64_t a, uint64_t b)
{
    char *p = put_text(line, label);
    p = put_number(p, a);
    *p++ = ' ';
    print_line(put_number(p, b));
}

static void spin(uint32_t loops)
{
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(loops) : : "cc");
}

static uint32_t *stack_pointer(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* The lowest word of the painted window: TINYEVO_MCU_STACK_WINDOW bytes below `top`, not below .bss. */
static uint32_t *stack_floor(uint32_t *top)
{
    uint32_t *floor = top - TINYEVO_MCU_STACK_WINDOW / 4u;
    return floor < &_ebss ? &_ebss : floor;
}

/* Paints [floor, this function's own frame) with STACK_PAINT; noinline, so that its frame lies just
 * below the caller's stack pointer `top`, and everything below it is painted. */
__attribute__((noinline)) static void paint_stack(uint32_t *top)
{
    volatile uint32_t *word = stack_floor(top);
    uint32_t *own = stack_pointer() - 4;
    while ((uint32_t *)word < own) {
        *word++ = STACK_PAINT;
    }
}

/* Bytes between `top` and the lowest word below it that no longer holds STACK_PAINT. */
static uint32_t stack_used(uint32_t *top)
{
    const volatile uint32_t *word = stack_floor(top);
    while ((const uint32_t *)word < top && *word == STACK_PAINT) {
        ++word;
    }
    return (uint32_t)((const uint8_t *)top - (const uint8_t *)word);
}

int main(void)
{
    static const char hex[] = "0123456789abcdef";
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
    while (SYST_CVR == 0u) { /* until the first reload */
    }

    uint64_t start = now_ticks();
    spin(CALIBRATION_LOOPS);
    print_pair("calibration ", now_ticks() - start, 2u * CALIBRATION_LOOPS);

    uint32_t *top = stack_pointer();
    uint32_t stack = 0;
    for (uint32_t sample = 0; sample < tinyevo_mcu_sample_count; ++sample) {
        marking = sample == 0;
        if (sample == 0) {
            paint_stack(top);
        }
        start = now_ticks();
        tinyevo_model_run(tinyevo_mcu_inputs + sample * TINYEVO_INPUT_BYTES, output);
        const uint64_t ticks = now_ticks() - start;
        marking = 0;
        if (sample == 0) {
            stack = stack_used(top);
        }
        char *p = put_text(line, "output ");
        p = put_number(p, sample);
        *p++ = ' ';
        for (uint32_t i = 0; i < TINYEVO_OUTPUT_BYTES; ++i) {
            *p++ = hex[(uint8_t)output[i] >> 4];
            *p++ = hex[(uint8_t)output[i] & 15u];
        }
        print_line(p);
        print_pair("ticks ", sample, ticks);
        if (sample == 0 && TINYEVO_MCU_MARKS > 1) {
            for (uint32_t i = 0; i < TINYEVO_MCU_MARKS; ++i) {
                print_pair("mark ", i, marks[i] - start);
            }
        }
    }
    print_pair("stack ", stack, (uint32_t)((uint8_t *)top - (uint8_t *)stack_floor(top)));
    print_line(put_text(line, "done"));
    return 0;
}
