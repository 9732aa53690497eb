/* The floor of an overlap-add on this machine: the loops of skpatch's kernel
 * written in plain C (no Python, no checks, a warm canvas), against memcpy of
 * the same patches in the same run. Where these loops alone take longer than
 * a target of bench_engine.py allows, no kernel of that design meets it here.
 *
 *   cc -O3 benchmarks/floor_overlap_add.c -o /tmp/floor && /tmp/floor
 *
 * (a) subset: 10% of the 8x8 patches of a 512x512 float64 image at random
 *     origins (sorted), added into a canvas; with and without the weight canvas.
 * (c) 128^3 float32 volume, 8^3 patches, step 4, added into a float64 canvas.
 * Best of 30 (a) and 10 (c) rounds, three times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef long long index_t;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

__attribute__((noinline)) static void copy(void *target, const void *source,
                                           size_t n_bytes) {
    memcpy(target, source, n_bytes);
}

/* 8x8 float64 patches at canvas offsets `origins`, rows `stride` apart. */
__attribute__((noinline)) static void add_subset(
    double *restrict sums, double *restrict weights, const double *restrict values,
    const index_t *origins, index_t n, index_t stride) {
    for (index_t o = 0; o < n; o++) {
        double *target = sums + origins[o];
        double *weight = weights ? weights + origins[o] : NULL;
        for (int r = 0; r < 8; r++, values += 8, target += stride) {
            for (int k = 0; k < 8; k++) target[k] += values[k];
            if (weight) {
                for (int k = 0; k < 8; k++) weight[k] += 1.0;
                weight += stride;
            }
        }
    }
}

/* The full grid of 8^3 float32 patches with step 4 on a g^3 grid. */
__attribute__((noinline)) static void add_volume(
    double *restrict sums, const float *restrict values, index_t g, index_t plane,
    index_t row) {
    for (index_t i = 0; i < g; i++)
        for (index_t j = 0; j < g; j++)
            for (index_t k = 0; k < g; k++) {
                double *corner = sums + 4 * (i * plane + j * row + k);
                for (int a = 0; a < 8; a++)
                    for (int b = 0; b < 8; b++, values += 8) {
                        double *target = corner + a * plane + b * row;
                        for (int q = 0; q < 8; q++) target[q] += values[q];
                    }
            }
}

static void subset_floor(void) {
    const index_t side = 512, stride = 516, n_max = 505 * 505 / 10 + 1000;
    double *values = malloc(n_max * 64 * sizeof(double));
    double *copied = malloc(n_max * 64 * sizeof(double));
    double *sums = calloc(side * stride, sizeof(double));
    double *weights = calloc(side * stride, sizeof(double));
    index_t *origins = malloc(n_max * sizeof(index_t)), n = 0;
    srand(0);
    for (index_t y = 0; y < 505; y++)
        for (index_t x = 0; x < 505; x++)
            if (rand() % 10 == 0 && n < n_max) origins[n++] = y * stride + x;
    for (index_t i = 0; i < n * 64; i++) values[i] = 1e-3 * (double)(i % 1000);
    for (int run = 0; run < 3; run++) {
        double best[3] = {1e9, 1e9, 1e9}, t;
        for (int round = 0; round < 30; round++) {
            t = now(); copy(copied, values, n * 64 * sizeof(double));
            t = now() - t; if (t < best[0]) best[0] = t;
            t = now(); add_subset(sums, NULL, values, origins, n, stride);
            t = now() - t; if (t < best[1]) best[1] = t;
            t = now(); add_subset(sums, weights, values, origins, n, stride);
            t = now() - t; if (t < best[2]) best[2] = t;
        }
        printf("(a) subset of %lld patches: copy %.3f ms | values %.3f ms = %.2fx "
               "subset copy | values + weights %.3f ms = %.2fx\n", n, 1e3 * best[0],
               1e3 * best[1], best[1] / best[0], 1e3 * best[2], best[2] / best[0]);
    }
}

static void volume_floor(void) {
    const index_t g = 31, row = 132, plane = 132 * 131;
    const size_t n_values = (size_t)g * g * g * 512;
    float *values = malloc(n_values * sizeof(float));
    float *copied = malloc(n_values * sizeof(float));
    double *sums = calloc(128 * plane + 64, sizeof(double));
    for (size_t i = 0; i < n_values; i++) values[i] = (float)(i % 97);
    for (int run = 0; run < 3; run++) {
        double best[2] = {1e9, 1e9}, t;
        for (int round = 0; round < 10; round++) {
            t = now(); copy(copied, values, n_values * sizeof(float));
            t = now() - t; if (t < best[0]) best[0] = t;
            t = now(); add_volume(sums, values, g, plane, row);
            t = now() - t; if (t < best[1]) best[1] = t;
        }
        printf("(c) 128^3 float32, 8^3 step 4: copy %.2f ms | overlap-add %.2f ms = "
               "%.2fx copy (warm canvas, no division)\n", 1e3 * best[0],
               1e3 * best[1], best[1] / best[0]);
    }
}

int main(void) {
    subset_floor();
    volume_floor();
    return 0;
}
