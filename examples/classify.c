/* Runs a LeNet-5 compiled by cnnc on one 28x28 image and prints the five most likely
 * classes and the time per run.
 *
 *   cnnc examples/lenet/model.onnx -o lenet.o --name lenet
 *   cc -O2 -I. examples/classify.c lenet.o -o classify
 *   ./classify examples/lenet/image.f32
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lenet.h"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGE.f32  (%d raw float32 values)\n", argv[0], lenet_INPUT_0_SIZE);
        return 2;
    }
    static float image[lenet_INPUT_0_SIZE];
    static float probabilities[lenet_OUTPUT_0_SIZE];
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(image, sizeof(float), lenet_INPUT_0_SIZE, f) != lenet_INPUT_0_SIZE) {
        fprintf(stderr, "cannot read %d floats from %s\n", lenet_INPUT_0_SIZE, argv[1]);
        return 1;
    }
    fclose(f);

    /* The workspace can also be a static buffer of lenet_WORKSPACE_SIZE bytes. */
    void *workspace = aligned_alloc(64, (lenet_workspace_size() + 63) / 64 * 64 + 64);
    const float *inputs[] = {image};
    float *outputs[] = {probabilities};

    const int runs = 1000;
    double start = now_ms();
    for (int i = 0; i < runs; i++) {
        if (lenet_run(inputs, outputs, workspace) != 0) {
            fprintf(stderr, "lenet_run failed\n");
            return 1;
        }
    }
    double per_run = (now_ms() - start) / runs;

    int order[lenet_OUTPUT_0_SIZE];
    for (int i = 0; i < lenet_OUTPUT_0_SIZE; i++) order[i] = i;
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < lenet_OUTPUT_0_SIZE; j++)
            if (probabilities[order[j]] > probabilities[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    printf("top-5 of %s:\n", lenet_OUTPUT_0_NAME);
    for (int i = 0; i < 5; i++) printf("  class %d: %.6f\n", order[i], probabilities[order[i]]);
    printf("%.4f ms per run (mean of %d)\n", per_run, runs);
    free(workspace);
    return 0;
}
