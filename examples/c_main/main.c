/* Example firmware entry for a library written by `tinyevo export RUN --format c --out model_c/`.
 *
 * Build on a PC:     cc -std=c99 -O2 -I model_c model_c/tinyevo_model.c main.c -lm -o classify
 * Run:               ./classify < image.f32   (TINYEVO_INPUT_BYTES float32 pixels, NHWC, as the
 *                                              model was trained on them: e.g. 0..1)
 * On a board, replace read_input() by your sensor or camera code and print_class() by your UART.
 *
 * The library needs no heap and no OS: tinyevo_model_run() works in one static arena of
 * TINYEVO_ARENA_BYTES. Inputs and outputs are int8; the header gives the scale and zero point
 * that map them to real values (real = scale * (q - zero_point)). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "tinyevo_model.h"

static int8_t input[TINYEVO_INPUT_BYTES];
static int8_t output[TINYEVO_OUTPUT_BYTES];

/* One float in, the int8 the model reads: q = round(x / scale) + zero_point, clamped. */
static int8_t quantize(float x) {
    long q = lroundf(x / TINYEVO_INPUT_SCALE) + TINYEVO_INPUT_ZERO_POINT;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

static int read_input(void) {
    for (int i = 0; i < TINYEVO_INPUT_BYTES; i++) {
        float x;
        if (fread(&x, sizeof x, 1, stdin) != 1) return -1;
        input[i] = quantize(x);
    }
    return 0;
}

/* The class of highest score, and that score as a real value (a logit). */
static void print_class(void) {
    int best = 0;
    for (int i = 1; i < TINYEVO_OUTPUT_BYTES; i++) {
        if (output[i] > output[best]) best = i;
    }
    float score = TINYEVO_OUTPUT_SCALE * (float)(output[best] - TINYEVO_OUTPUT_ZERO_POINT);
    printf("class %d (score %.3f)\n", best, score);
}

int main(void) {
    if (read_input() != 0) {
        fprintf(stderr, "expected %d float32 values on stdin\n", TINYEVO_INPUT_BYTES);
        return 2;
    }
    tinyevo_model_run(input, output);
    print_class();
    return 0;
}
