/* The front-end as the "model" of the tinyevo MCU harness (written by
 * tinyevo.deploy.codegen.frontend_mcu): the int16 clip comes in as bytes, the int8 features go
 * out, and the harness counts the instructions of tinyevo_model_run. */
#include <string.h>

#include "tinyevo_model.h"
#include "tinyevo_frontend.c"

static int16_t clip[TINYEVO_FRONTEND_CLIP_SAMPLES];
static float scratch[TINYEVO_FRONTEND_SCRATCH_FLOATS];

/* Cortex-M4F: the FPU is off after reset; give CP10 and CP11 full access (CPACR). */
__attribute__((noinline)) static void enable_fpu(void)
{
#ifdef __ARM_FP
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
}

int tinyevo_model_run(const int8_t *input, int8_t *output)
{
    enable_fpu();
    memcpy(clip, input, sizeof clip);
    return tinyevo_frontend_run(clip, output, scratch);
}
