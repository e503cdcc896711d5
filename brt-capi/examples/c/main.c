/* brt from C: reads a brt model file into memory, sizes and allocates the
   runner's memory with brt_memory_sizes, feeds a prompt (bytes of the official
   byte vocabulary: byte b is token b + 3) and prints greedy next tokens.

   usage: brt-example MODEL.gguf PROMPT STEPS [TOKENS_OUT LOGITS_OUT]

   With TOKENS_OUT and LOGITS_OUT it writes every token fed (u32) and the logits
   after the prompt and after each generated token (f32, one row of brt_vocab
   values per step), both raw little-endian, for brt-capi/check.sh to compare
   with the host's `brt logits`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brt.h"

/* Tokens per call: the activations of this many tokens are in memory at once;
   brt_feed takes any number and splits them. */
enum { TOKENS_PER_CALL = 16, BYTE_OFFSET = 3 };

static int fail(const char *what, int32_t code) {
    fprintf(stderr, "%s: %s (code %d)\n", what, brt_error_message(code), (int)code);
    return 1;
}

/* The whole file, at an address aligned to 32 bytes (the weights are used in
   place and must be aligned for their type). */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *bytes = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size > 0 && fseek(f, 0, SEEK_SET) == 0) {
        size_t rounded = ((size_t)size + 31) / 32 * 32;
        bytes = aligned_alloc(32, rounded);
        if (bytes && fread(bytes, 1, (size_t)size, f) != (size_t)size) {
            free(bytes);
            bytes = NULL;
        }
    }
    fclose(f);
    *len = (size_t)size;
    return bytes;
}

static uint32_t argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (uint32_t)best;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT STEPS [TOKENS_OUT LOGITS_OUT]\n", argv[0]);
        return 2;
    }
    const char *prompt = argv[2];
    int steps = atoi(argv[3]);
    size_t prompt_len = strlen(prompt);
    if (steps < 0 || prompt_len == 0) {
        fprintf(stderr, "the prompt must not be empty and STEPS not negative\n");
        return 2;
    }

    size_t model_len = 0;
    uint8_t *model = read_file(argv[1], &model_len);
    if (!model) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }

    brt_sizes sizes;
    int32_t rc = brt_memory_sizes(model, model_len, TOKENS_PER_CALL, &sizes);
    if (rc != BRT_OK) return fail("brt_memory_sizes", rc);
    /* One region for everything but the model: exactly what brt asks for. */
    void *memory = aligned_alloc(sizes.align, sizes.bytes);
    if (!memory) return 1;
    printf("model: %zu bytes (weights used in place)\n", model_len);
    printf("brt_memory_sizes: %zu bytes, aligned to %zu = runner %zu + 4 x (%zu f32 + %zu u32), "
           "rounded up to the alignment\n",
           sizes.bytes, sizes.align, sizes.runner_bytes, sizes.f32s, sizes.u32s);
    printf("allocated: %zu bytes at %p\n", sizes.bytes, memory);

    brt_runner *runner = NULL;
    /* One byte less is refused (and nothing is written). */
    if (brt_open(model, model_len, TOKENS_PER_CALL, memory, sizes.bytes - 1, &runner) != BRT_ERROR_MEMORY_TOO_SMALL ||
        runner != NULL) {
        fprintf(stderr, "a region one byte too small was not refused\n");
        return 1;
    }
    rc = brt_open(model, model_len, TOKENS_PER_CALL, memory, sizes.bytes, &runner);
    if (rc != BRT_OK) return fail("brt_open", rc);
    size_t vocab = brt_vocab(runner);
    if (vocab < BYTE_OFFSET + 256) {
        fprintf(stderr, "the model's vocabulary (%zu) is not the byte vocabulary\n", vocab);
        return 1;
    }

    size_t total = prompt_len + (size_t)steps;
    uint32_t *tokens = malloc(total * sizeof(uint32_t));
    float *logits = malloc(((size_t)steps + 1) * vocab * sizeof(float));
    if (!tokens || !logits) return 1;
    for (size_t i = 0; i < prompt_len; i++) tokens[i] = (uint32_t)(unsigned char)prompt[i] + BYTE_OFFSET;

    rc = brt_feed(runner, tokens, prompt_len);
    if (rc != BRT_OK) return fail("brt_feed", rc);
    rc = brt_logits(runner, logits, vocab);
    if (rc != BRT_OK) return fail("brt_logits", rc);
    printf("%s", prompt);
    for (int s = 0; s < steps; s++) {
        uint32_t next = argmax(logits + (size_t)s * vocab, vocab);
        tokens[prompt_len + (size_t)s] = next;
        if (next >= BYTE_OFFSET + 32 && next < BYTE_OFFSET + 127) /* printable ASCII */
            putchar((int)(next - BYTE_OFFSET));
        else
            printf("<%u>", (unsigned)next);
        rc = brt_feed(runner, &next, 1);
        if (rc != BRT_OK) return fail("brt_feed", rc);
        rc = brt_logits(runner, logits + (size_t)(s + 1) * vocab, vocab);
        if (rc != BRT_OK) return fail("brt_logits", rc);
    }
    printf("\n%llu tokens fed in calls of at most %d\n", (unsigned long long)brt_position(runner), TOKENS_PER_CALL);

    /* A new document: the prompt gives the same logits again. */
    rc = brt_reset(runner);
    if (rc != BRT_OK) return fail("brt_reset", rc);
    float *again = malloc(vocab * sizeof(float));
    if (!again) return 1;
    if ((rc = brt_feed(runner, tokens, prompt_len)) != BRT_OK) return fail("brt_feed", rc);
    if ((rc = brt_logits(runner, again, vocab)) != BRT_OK) return fail("brt_logits", rc);
    if (memcmp(again, logits, vocab * sizeof(float)) != 0) {
        fprintf(stderr, "after brt_reset the prompt gave other logits\n");
        return 1;
    }
    printf("after brt_reset the prompt gives the same logits\n");

    if (argc == 6) {
        FILE *t = fopen(argv[4], "wb"), *l = fopen(argv[5], "wb");
        int ok = t && l && fwrite(tokens, sizeof(uint32_t), total, t) == total &&
                 fwrite(logits, sizeof(float), ((size_t)steps + 1) * vocab, l) == ((size_t)steps + 1) * vocab;
        if (t) ok = (fclose(t) == 0) && ok;
        if (l) ok = (fclose(l) == 0) && ok;
        if (!ok) {
            fprintf(stderr, "cannot write %s or %s\n", argv[4], argv[5]);
            return 1;
        }
    }

    brt_close(runner);
    free(again);
    free(logits);
    free(tokens);
    free(memory);
    free(model);
    return 0;
}
