/*
 * matmul: y = x W^T + b for the recorder's forward pass (traces/record/model.c),
 * on a small thread pool, deterministically.
 *
 * W is a weight matrix in a checkpoint's dtype (F32, F16 or BF16).
 *  - One token (decode, n == 1): the project's own dot-product kernels read
 *    W once, straight from memory, and convert half precision in registers
 *    (F16C's vcvtph2ps for fp16, a 16-bit shift for bf16; never widened into
 *    a buffer). Kernels for AVX-512 (F+BW+VL), AVX2 (+FMA+F16C) and portable
 *    C are picked at run time (__builtin_cpu_supports). Each output row has
 *    its own accumulators and a fixed summation order, so a row's value does
 *    not depend on which rows are computed with it, which thread computes it
 *    or how many threads there are.
 *  - A prompt chunk (n > 1): W's rows are cut into blocks of
 *    MATMUL_BLOCK_ROWS. A float32 block is one single-threaded CBLAS sgemm
 *    over the chunk's n tokens. A half-precision block goes through the
 *    project's chunk kernels: each weight vector is read and converted in
 *    registers once for a tile of tokens (2 rows x 4 tokens with AVX-512,
 *    2 x 2 with AVX2), never widened into a buffer, and each (row, token) is
 *    summed exactly as the decode kernel sums it, so a token's products are
 *    the same whether it was decoded alone or in a chunk. Blocks are fixed
 *    by W's shape, so results do not depend on the thread count either
 *    (OpenBLAS's own threading splits by thread count and its kernels treat
 *    tails differently: keep OpenBLAS itself at one thread).
 * Work is handed out in blocks of rows from a shared counter; the caller
 * takes blocks too, so a worker the OS has not scheduled yet (machines are
 * often shared) never holds the caller up. Several products with the same
 * input can go in one hand-off (matmul_many: q, k, v; gate and up). Idle
 * workers spin briefly for the next job (the next product follows within
 * microseconds during a forward pass), then sleep on a condition variable.
 *
 * A pool is used by one caller thread at a time.
 */
#ifndef LIFSIM_MATMUL_H
#define LIFSIM_MATMUL_H

#include <stddef.h>

#include "sim/base/err.h"

#define MATMUL_BLOCK_ROWS 64   /* rows handed out at a time */
#define MATMUL_MAX_OPS 4       /* products in one matmul_many */

/* A weight matrix (rows, cols), row-major as HF stores nn.Linear weights
 * (out_features, in_features), in dtype enum st_dtype (F32, F16 or BF16);
 * data is borrowed. data == NULL: absent. */
struct matrix {
	const void *data;
	int dtype;
	int rows, cols;
};

/* Bytes per element of a matrix dtype (4 or 2). */
int matmul_dtype_bytes(int dtype);

/* Instruction sets of the decode kernels. */
enum matmul_isa { MATMUL_ISA_C = 0, MATMUL_ISA_AVX2 = 1, MATMUL_ISA_AVX512 = 2 };

/* The best the CPU supports. */
int matmul_isa_best(void);
const char *matmul_isa_name(int isa);

struct matmul_pool;

/* A pool of `threads` threads (the caller counts as one), using the best
 * kernels the CPU has. */
struct matmul_pool *matmul_pool_new(int threads, struct lif_err *err);
void matmul_pool_free(struct matmul_pool *p);

/* Use the kernels of `isa` (enum matmul_isa) instead; an error when the CPU
 * lacks it. For tests and benchmarks. */
int matmul_pool_set_isa(struct matmul_pool *p, int isa, struct lif_err *err);

/* One product: y (n, W.rows) = x (n, W.cols) W^T + b (b: (W.rows) or NULL). */
struct matmul_op {
	float *y;
	const struct matrix *W;
	const float *b;
	const float *x;
};

/* The nops (<= MATMUL_MAX_OPS) products, each over n tokens, in one hand-off. */
void matmul_many(struct matmul_pool *p, int n, const struct matmul_op *ops, int nops);

/* y (n, W.rows) = x (n, W.cols) W^T + b (b: (W.rows) or NULL). */
void matmul(struct matmul_pool *p, int n, float *y, const struct matrix *W, const float *b,
	    const float *x);

/* y[r] = W[r] . x for nr float32 rows of `cols` elements, row r at W + r *
 * ld, with the pool's decode kernel (one thread; the same sums as a
 * one-token product). */
void matmul_dot_rows(const struct matmul_pool *p, float *y, const float *W, size_t ld, const float *x,
		     int cols, int nr);

/* Row `row` of W widened to float32 into dst (W.cols). */
void matmul_row(const struct matmul_pool *p, float *dst, const struct matrix *W, int row);

/* Widen n elements of src (dtype) to float32 into dst, with the CPU's
 * conversion instructions when it has them (exact either way). */
void matmul_widen(float *dst, const void *src, int dtype, size_t n);

#endif
