/* Host harness for a generated tinyevo model with its audio front-end: int16 clips from a file in,
 * the model's int8 outputs to a file out, through tinyevo_model_run_pcm (the front-end run inside
 * the model's arena).
 *
 *   ./model_pcm PCM.bin OUTPUTS.bin
 *
 * PCM.bin holds N clips of TINYEVO_FRONTEND_CLIP_SAMPLES int16 samples (native byte order). */
#include <stdio.h>

#include "tinyevo_frontend.h"
#include "tinyevo_model.h"

static int16_t pcm[TINYEVO_FRONTEND_CLIP_SAMPLES];
static int8_t output[TINYEVO_OUTPUT_BYTES];

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PCM.bin OUTPUTS.bin\n", argv[0]);
        return 2;
    }
    FILE *source = fopen(argv[1], "rb");
    FILE *target = fopen(argv[2], "wb");
    if (source == NULL || target == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    long clips = 0;
    while (fread(pcm, sizeof pcm[0], TINYEVO_FRONTEND_CLIP_SAMPLES, source) == TINYEVO_FRONTEND_CLIP_SAMPLES) {
        tinyevo_model_run_pcm(pcm, output);
        fwrite(output, 1, TINYEVO_OUTPUT_BYTES, target);
        ++clips;
    }
    fclose(source);
    fclose(target);
    printf("clips %ld\n", clips);
    return 0;
}
