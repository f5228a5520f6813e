/* Host harness for a generated tinyevo model: int8 samples from a file in, int8 outputs to a
 * file out, and optionally the time per inference.
 *
 *   ./model INPUTS.bin OUTPUTS.bin [REPEATS]
 *
 * INPUTS.bin holds N samples of TINYEVO_INPUT_BYTES each; OUTPUTS.bin receives N outputs of
 * TINYEVO_OUTPUT_BYTES. With REPEATS, the first sample is run REPEATS more times and the mean
 * wall time per inference is printed as "ns_per_inference <value>". */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tinyevo_model.h"

static int8_t input[TINYEVO_INPUT_BYTES];
static int8_t output[TINYEVO_OUTPUT_BYTES];

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s INPUTS.bin OUTPUTS.bin [REPEATS]\n", argv[0]);
        return 2;
    }
    FILE *source = fopen(argv[1], "rb");
    FILE *target = fopen(argv[2], "wb");
    if (source == NULL || target == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    long samples = 0;
    while (fread(input, 1, TINYEVO_INPUT_BYTES, source) == TINYEVO_INPUT_BYTES) {
        tinyevo_model_run(input, output);
        fwrite(output, 1, TINYEVO_OUTPUT_BYTES, target);
        ++samples;
    }
    fclose(source);
    fclose(target);
    long repeats = argc > 3 ? strtol(argv[3], NULL, 10) : 0;
    if (repeats > 0 && samples > 0) {
        const double start = now_ns();
        for (long i = 0; i < repeats; ++i) {
            tinyevo_model_run(input, output);
        }
        printf("ns_per_inference %.1f\n", (now_ns() - start) / (double)repeats);
    }
    printf("samples %ld\n", samples);
    return 0;
}
