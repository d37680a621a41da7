/*
 * rcompute: the replay's real compute (sim/real/replay.h), one token's
 * operations as models/compute.h counts them, at the model's shape, in fp32
 * through OpenBLAS (cblas_sgemv: the kernel `lifsim calibrate --compute`
 * measures and the compute model is costed with):
 *   per token  begin: the embedding row(s) copied into x (token row, and a
 *              position row when the model has learned positions);
 *              end: the output head, vocab x d_model;
 *   per layer  two layer norms (weight and bias, d_model each); the q, k, v
 *              and o projections (q_dim x d_model, kv_dim x d_model); the
 *              attention over a KV cache of `ctx` tokens (per head: scores
 *              q.K over the cache, a softmax, the weighted sum of V); the
 *              predictor's two low-rank products (d_model x r, r x d_ffn)
 *              when the layer has one; the FFN over the first `rows` rows of
 *              the preallocated matrix (fp32 bundles: [gate,] up, down):
 *              a = act(up . x) (SwiGLU: silu(gate . x) * (up . x)), then
 *              y += down^T a.
 * The weights are synthetic (their values do not matter to the time). The
 * KV cache of every layer is its own buffer. The dense weights (attention
 * projections, norms, predictor) of `pool` layers are distinct buffers and
 * layer l uses set l % pool: at the model's shape one layer's projections
 * are far larger than any CPU cache (OPT-6.7B: 256 MiB at fp32), so cycling
 * through a few sets streams from DRAM exactly as distinct layers do, and a
 * full-scale replay fits in DRAM beside the FFN matrix. pool is the number of
 * sets that fit in dense_bytes (at least 2, at most layers).
 */
#ifndef LIFSIM_RCOMPUTE_H
#define LIFSIM_RCOMPUTE_H

#include <stdint.h>

#include "models/llm.h"
#include "sim/base/err.h"

struct rcompute;

/* A compute state for model m (the model as held in DRAM; its dtype must be
 * fp32), a KV cache of up to max_ctx tokens per layer, predictor ranks
 * pred_rank[l] (NULL: none), dense weights of at most dense_bytes (0: 1 GiB)
 * before sets are cycled. NULL on failure (err set). */
struct rcompute *rcompute_new(const struct llm_desc *m, int64_t max_ctx, const int *pred_rank,
			      int64_t dense_bytes, struct lif_err *err);
void rcompute_free(struct rcompute *c);

/* Distinct dense weight sets (see above). */
int rcompute_pool(const struct rcompute *c);

/* A token: its embedding rows into x (begin), the head over x (end). */
void rcompute_begin(struct rcompute *c, int64_t tok);
void rcompute_end(struct rcompute *c);

/* Layer `layer`'s operations with a KV cache of ctx tokens (clamped to
 * max_ctx) and the FFN over the first rows rows of matrix (fp32 bundles of
 * the model, ffn_matrices x d_model floats each). */
void rcompute_layer(struct rcompute *c, int layer, int64_t ctx, const float *matrix, int32_t rows);

/* The FFN over rows rows of matrix (fp32 bundles of nm = 2 or 3 pieces of d
 * floats: [gate,] up, down): a = act(up . h) (nm = 3: silu(gate . h) *
 * (up . h)), y = down^T a. a and u hold rows floats. */
void rcompute_ffn(int d, int nm, const float *matrix, int32_t rows, const float *h, float *a,
		  float *u, float *y);

#endif
