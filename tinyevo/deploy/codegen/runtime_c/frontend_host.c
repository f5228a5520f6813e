/* Host harness for a generated tinyevo front-end: int16 clips from a file in, float features and
 * int8 model inputs to two files out.
 *
 *   ./frontend PCM.bin FEATURES.bin INPUTS.bin
 *
 * PCM.bin holds N clips of TINYEVO_FRONTEND_CLIP_SAMPLES int16 samples (native byte order). */
#include <stdio.h>

#include "tinyevo_frontend.h"

static int16_t pcm[TINYEVO_FRONTEND_CLIP_SAMPLES];
static float features[TINYEVO_FRONTEND_FEATURES];
static int8_t input[TINYEVO_FRONTEND_FEATURES];
static float scratch[TINYEVO_FRONTEND_SCRATCH_FLOATS];

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PCM.bin FEATURES.bin INPUTS.bin\n", argv[0]);
        return 2;
    }
    FILE *source = fopen(argv[1], "rb");
    FILE *floats = fopen(argv[2], "wb");
    FILE *ints = fopen(argv[3], "wb");
    if (source == NULL || floats == NULL || ints == NULL) {
        fprintf(stderr, "cannot open %s, %s or %s\n", argv[1], argv[2], argv[3]);
        return 2;
    }
    long clips = 0;
    while (fread(pcm, sizeof pcm[0], TINYEVO_FRONTEND_CLIP_SAMPLES, source) == TINYEVO_FRONTEND_CLIP_SAMPLES) {
        tinyevo_frontend_features(pcm, features, scratch);
        tinyevo_frontend_run(pcm, input, scratch);
        fwrite(features, sizeof features[0], TINYEVO_FRONTEND_FEATURES, floats);
        fwrite(input, 1, TINYEVO_FRONTEND_FEATURES, ints);
        ++clips;
    }
    fclose(source);
    fclose(floats);
    fclose(ints);
    printf("clips %ld\n", clips);
    return 0;
}
