/* Shared by the tinyevo MCU runner's startup code and harness (Cortex-M, semihosting). */
#ifndef TINYEVO_MCU_H
#define TINYEVO_MCU_H

#include <stdint.h>

/* A semihosting call (BKPT 0xAB): r0 = operation, r1 = argument; returns r0. */
uint32_t tinyevo_semihost(uint32_t operation, const void *argument);
/* SYS_EXIT: the emulator exits with 0 when status is 0, with 1 otherwise. */
void tinyevo_mcu_exit(int status) __attribute__((noreturn));
/* SysTick wraps since it was started (incremented by the SysTick interrupt). */
extern volatile uint32_t tinyevo_mcu_systick_wraps;

#endif /* TINYEVO_MCU_H */
