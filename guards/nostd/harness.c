/* Links the guard's static library into a plain C program (no Rust runtime) and
   checks that a forward runs and gives finite logits. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

size_t brt_guard_f32_len(size_t tokens);
int brt_guard_forward(float *memory, size_t memory_len, uint32_t *ids, size_t ids_len,
                      const uint32_t *tokens, size_t n, float *logits);
int brt_guard_forward_cpu(float *memory, size_t memory_len, uint32_t *ids, size_t ids_len,
                          const uint32_t *tokens, size_t n, float *logits);

int main(void) {
    enum { N = 11, V = 260 };
    uint32_t tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = 3 + (uint32_t)(i * 37 % 256);
    size_t len = brt_guard_f32_len(N);
    float *memory = malloc(len * sizeof(float));
    uint32_t ids[N];
    float *logits = malloc(N * V * sizeof(float));
    if (!memory || !logits || len == 0) return 2;
    if (brt_guard_forward(memory, len, ids, N, tokens, N, logits) != 0) { puts("forward failed"); return 1; }
    if (brt_guard_forward(memory, 64, ids, N, tokens, N, logits) == 0) { puts("too little memory was accepted"); return 1; }
    if (brt_guard_forward_cpu(memory, 64, ids, N, tokens, N, logits) == 0) { puts("too little memory was accepted (CPU)"); return 1; }
    double sum = 0;
    for (int i = 0; i < N * V; i++) {
        if (!isfinite(logits[i])) { puts("non-finite logit"); return 1; }
        sum += fabs(logits[i]);
    }
    if (sum == 0) { puts("all logits are zero"); return 1; }
    float *cpu = malloc(N * V * sizeof(float));
    if (!cpu) return 2;
    if (brt_guard_forward_cpu(memory, len, ids, N, tokens, N, cpu) != 0) { puts("CPU forward failed"); return 1; }
    double worst = 0;
    for (int i = 0; i < N * V; i++) {
        double d = fabs((double)cpu[i] - (double)logits[i]);
        if (!(d <= worst)) worst = d; /* also catches NaN */
    }
    if (!(worst <= 1e-4)) { printf("CPU backend differs from the reference by %g\n", worst); return 1; }
    printf("no_std guard: forward of %d tokens on caller memory (%zu f32), mean |logit| %.4f; "
           "CPU backend agrees to %.1e\n", N, len, sum / (N * V), worst);
    free(memory);
    free(logits);
    free(cpu);
    return 0;
}
