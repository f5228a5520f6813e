/* Minimal Cortex-M startup for the tinyevo MCU runner (QEMU -M mps2-an385, mps2-an386 or
 * mps2-an505, semihosting).
 *
 * The vector table sits at the start of the code memory, where the core reads its reset vector
 * (address 0 on the AN385/AN386, the AN505's secure VTOR 0x10000000); the reset handler copies
 * .data, clears .bss, calls main() and reports its result to the host with SYS_EXIT. SysTick
 * interrupts count wraps of the 24-bit counter (tinyevo_mcu_systick_wraps); a fault prints one
 * line and exits with failure. No C library start-up code is needed. */
#include <stdint.h>

#include "tinyevo_mcu.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_top;
extern int main(void);

volatile uint32_t tinyevo_mcu_systick_wraps;

void Reset_Handler(void);
void SysTick_Handler(void);
void Fault_Handler(void);

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    Fault_Handler, /* SecureFault (Armv8-M with the security extension; reserved before) */
    0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    SysTick_Handler,
};

uint32_t tinyevo_semihost(uint32_t operation, const void *argument)
{
    register uint32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void tinyevo_mcu_exit(int status)
{
    /* SYS_EXIT on 32-bit ARM: the reason code is the argument; QEMU exits 0 only for
     * ADP_Stopped_ApplicationExit. */
    tinyevo_semihost(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026u : 0x20024u));
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *source = &_sidata;
    for (uint32_t *target = &_sdata; target < &_edata;) {
        *target++ = *source++;
    }
    for (uint32_t *target = &_sbss; target < &_ebss;) {
        *target++ = 0;
    }
    tinyevo_mcu_exit(main());
}

void SysTick_Handler(void)
{
    tinyevo_mcu_systick_wraps = tinyevo_mcu_systick_wraps + 1;
}

void Fault_Handler(void)
{
    tinyevo_semihost(0x04, "tinyevo_mcu: fault (bad memory access or undefined instruction)\n");
    tinyevo_mcu_exit(1);
}
