/*
 * matmul: y = x W^T + b for the recorder's forward pass (traces/record/model.c),
 * through CBLAS, on a small thread pool, deterministically.
 *
 * W is a weight matrix in a checkpoint's dtype (F32, F16 or BF16). Its rows
 * are cut into fixed blocks of MATMUL_BLOCK_ROWS, each one single-threaded
 * CBLAS call (sgemv for one token, sgemm for a chunk of tokens); half
 * precision is widened to float32 a few rows at a time (MATMUL_HALF_ROWS,
 * MATMUL_HALF_ROWS_ONE for one token) into a per-thread scratch just before
 * its call. Every output is therefore summed
 * the same way whatever the thread count and whichever thread takes its
 * block (OpenBLAS's own threading splits by thread count and its kernels
 * treat tails differently, so its results change with the thread count; keep
 * OpenBLAS itself at one thread). The caller and the workers claim blocks
 * from a shared counter, so a worker the OS has not scheduled yet never holds
 * the caller up; idle workers sleep on a condition variable (machines are
 * often shared).
 *
 * A pool is used by one caller thread at a time.
 */
#ifndef LIFSIM_MATMUL_H
#define LIFSIM_MATMUL_H

#include <stddef.h>

#include "sim/base/err.h"

#define MATMUL_BLOCK_ROWS 128
#define MATMUL_HALF_ROWS 64     /* rows widened at a time for a chunk of tokens */
#define MATMUL_HALF_ROWS_ONE 4  /* ... and for one token (stays in L1: faster) */

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

struct matmul_pool;

/* A pool of `threads` threads (the caller counts as one) for matrices of at
 * most max_cols columns. */
struct matmul_pool *matmul_pool_new(int threads, int max_cols, struct lif_err *err);
void matmul_pool_free(struct matmul_pool *p);

/* y (n, W.rows) = x (n, W.cols) W^T + b (b: (W.rows) or NULL). */
void matmul(struct matmul_pool *p, int n, float *y, const struct matrix *W, const float *b,
	    const float *x);

/* Row `row` of W widened to float32 into dst (W.cols). */
void matmul_row(const struct matmul_pool *p, float *dst, const struct matrix *W, int row);

#endif
