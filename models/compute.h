/*
 * compute: time per token of the model's arithmetic on a device.
 *
 * Batch-1 decoding reads every weight it uses once per token, so each part is
 * costed with a roofline, max(flops / flops_per_s, bytes / mem_bytes_per_s):
 *   - attention, per layer: the layer's projection weights and norms (from
 *     llm_desc.attn_bytes) plus reading the KV cache of `context_tokens`
 *     earlier tokens; flops = 2 per weight + 4 * context * d_model;
 *   - embeddings and head: one embedding row (+ one position row) and the
 *     vocab x d_model output projection; flops = 2 per head weight;
 *   - the sparse FFN, per layer, over the `rows` neurons the caller says are
 *     computed (for the paper's memory manager: the used rows of the
 *     preallocated matrix); bytes = rows * ffn_matrices * d_model weights.
 * The dense parts (attention, embeddings, head) may instead take a measured
 * `dense_ms_per_token`, which replaces their roofline.
 *
 * Per operation (issue 14): a token's compute is the sum of its operations,
 * each one kernel (or a few of one shape) costed on its own:
 *   per layer  two norms (weight and bias, 2 x d_model each), the q, k, v and
 *              o projections (heads x head_dim, kv_heads x head_dim rows,
 *              d_model wide), attention over the context (scores and values:
 *              two kernels reading the K and V cache), the FFN's matrices over
 *              the rows in use (ffn_matrices kernels) and, when the point has
 *              one, the predictor's two low-rank products (d_model x r and
 *              r x d_ffn, in DRAM's dtype; compute_pred_layer_ns);
 *   per token  the embedding row(s) and the output head.
 * An operation of `flops` arithmetic reading `bytes` takes
 *   max(flops / flops_per_s, bytes / B(bytes, dtype)) + kernel_overhead_us
 * where B is the device's achieved streaming rate: the measured GEMV table
 * (gemv_bytes, gemv_bytes_per_s: fp32 sgemv by matrix size, `lifsim
 * calibrate --compute`), interpolated in log-log and clamped at its ends,
 * or the flat mem_bytes_per_s when the profile has no table. Both are rates
 * of bytes streamed: another dtype is assumed to stream its (fewer) bytes at
 * the same rate [assumption: Debian's OpenBLAS has no fp16/bf16 GEMV to
 * measure]. kernel_overhead_us is a
 * GPU's per-kernel dispatch cost (0 on a CPU). With no table and no overhead
 * the sum equals one roofline over all bytes whenever every operation is
 * memory bound, as batch-1 decoding is.
 *
 * Low-bit weights (T-MAC, arXiv 2407.00088): when the model description has
 * weight_bits b in 1..4 (models/llm.h; bytes follow models/gemv/gemv.h's format),
 * the linear layers (attention projections, FFN rows) are costed with the
 * measured speed of a GEMV kernel instead of the roofline: time = weights /
 * rate, rate = lut_weights_per_s[b-1] or dequant_weights_per_s[b-1] (weights
 * of the matrix multiplied per second, measured by `lifsim bench-gemv
 * --profile` at the model's FFN shape; the kernel in use is `kernel`, which
 * the simulator sets per point from [sim] kernel). The KV-cache part of
 * attention and the embeddings and head keep their roofline. With b = 0 the
 * tables are not used.
 */
#ifndef LIFSIM_COMPUTE_H
#define LIFSIM_COMPUTE_H

#include <stdint.h>

#include "models/llm.h"
#include "sim/base/err.h"

#define COMPUTE_MAX_BITS 4
#define COMPUTE_MAX_GEMV 16
enum compute_kernel { COMPUTE_LUT = 0, COMPUTE_DEQUANT = 1 };
/* The name of kernel i, or NULL past the last (a conf_names_fn). */
const char *compute_kernel_choice(int i);

/* Compute side of a device: a plain value. */
struct compute_model {
	double flops_per_s;        /* > 0: arithmetic ceiling */
	double mem_bytes_per_s;    /* > 0: bandwidth for reading weights */
	double dense_ms_per_token; /* > 0: measured dense parts per token; 0 = roofline */
	/* measured low-bit GEMV speed, weights per second, index bits - 1 */
	double lut_weights_per_s[COMPUTE_MAX_BITS];
	double dequant_weights_per_s[COMPUTE_MAX_BITS];
	int n_lut, n_dequant;      /* values given: 0 (not measured) or COMPUTE_MAX_BITS */
	double kernel_overhead_us; /* >= 0: dispatch cost per kernel (GPU), 0 on a CPU */
	/* measured GEMV streaming rate by matrix bytes (optional; increasing bytes) */
	double gemv_bytes[COMPUTE_MAX_GEMV];
	double gemv_bytes_per_s[COMPUTE_MAX_GEMV]; /* fp32 (sgemv) */
	int n_gemv_bytes, n_gemv_rate;
	/* the CPU as a resource (issue 14, overlap = pipelined): cores it has
	 * and threads the compute's kernels run on (0 = all cores, OpenBLAS's
	 * default); 0 cores = not given. When the kernels take every core, work
	 * of the reader thread (the stored-to-held conversion) stalls them
	 * (compute_cpu_contended, sim/core/timeline.h). */
	int cores, threads;
	int batch;                 /* positions computed in one pass (speculative
				    * verification); <= 1: one. Multiplies the flops,
				    * not the bytes: weights and KV cache are read once
				    * (per run, not a key) */
	int kernel;                /* enum compute_kernel for low-bit models (per run, not a key) */
};

/* One token's compute time by part. */
struct compute_cost {
	double attn_ns;  /* all layers' attention (0 when dense_ms_per_token is used):
			  * proj_ns + ctx_ns + norm_ns */
	double proj_ns;  /* q, k, v, o projections */
	double ctx_ns;   /* attention over the KV cache */
	double norm_ns;  /* the layers' norms */
	double pred_ns;  /* the predictors' low-rank products, all layers */
	double kernels;  /* operations (kernel dispatches) per token */
	double head_ns;  /* embeddings and output head (0 when dense_ms_per_token is used) */
	double dense_ns; /* attn_ns + head_ns, or the measured override */
	double ffn_ns;   /* sparse FFN over the given rows, all layers */
	double total_ns; /* dense_ns + ffn_ns + pred_ns */
};

/* Check the fields; on failure err reads "[compute] KEY: problem" and *key
 * is the offending INI key. */
int compute_check(const struct compute_model *m, const char **key, struct lif_err *err);

/* Bytes per linear (attention / FFN) weight: the dtype's, or the low-bit
 * format's (codes plus per-group scales: d->row_bytes / d_model). */
double compute_bytes_per_weight(const struct llm_desc *d);

/* The measured rate (weights/s) of m->kernel at `bits` (1..4), or 0 when the
 * profile has no such table. */
double compute_lowbit_weights_per_s(const struct compute_model *m, int bits);

/* 0 when m can cost the model d (always for weight_bits = 0); else ERR_INVAL
 * with "[compute] lut_weights_per_s: missing ..." naming what to measure. */
int compute_check_model(const struct compute_model *m, const struct llm_desc *d,
			struct lif_err *err);

/* Time in ns of `weights` linear weights of d: the measured low-bit kernel
 * rate when d->weight_bits > 0, else a roofline at the dtype. */
double compute_linear_ns(const struct compute_model *m, const struct llm_desc *d, double weights);

/* Achieved streaming rate (bytes/s) for one kernel reading `bytes` of
 * weights of dtype (enum llm_dtype): the GEMV table when the profile has one,
 * else mem_bytes_per_s. */
double compute_stream_bytes_per_s(const struct compute_model *m, int dtype, double bytes);

/* One operation: max(flops / flops_per_s, bytes / stream rate) + the kernel
 * overhead, in ns. */
double compute_op_ns(const struct compute_model *m, int dtype, double flops, double bytes);

/* Time in ns of one layer's sparse FFN over `rows` neurons (0 <= rows). */
double compute_ffn_layer_ns(const struct compute_model *m, const struct llm_desc *d, int64_t rows);

/* Time in ns of one layer's low-rank predictor of rank r (0: none): two
 * products, d_model x r and r x d_ffn, weights in d's dtype. */
double compute_pred_layer_ns(const struct compute_model *m, const struct llm_desc *d, int rank);

/* Time in ns of the dense parts of one token; attn_ns and head_ns (either may
 * be NULL) receive the split (0 when the measured override is used). */
double compute_dense_ns(const struct compute_model *m, const struct llm_desc *d,
			int64_t context_tokens, double *attn_ns, double *head_ns);

/* The same, with the split by operation in *out (attn_ns, proj_ns, ctx_ns,
 * norm_ns, head_ns, dense_ns, kernels; the other fields untouched). */
void compute_dense_cost(const struct compute_model *m, const struct llm_desc *d,
			int64_t context_tokens, struct compute_cost *out);

/* One token: the dense parts plus the FFN of every layer, ffn_rows[l] rows
 * in layer l (n_layers must equal d->layers; 0 <= rows <= d_ffn), plus the
 * predictor of rank pred_rank[l] in layer l (pred_rank may be NULL: no
 * predictor). Fails as compute_check_model does when a low-bit model has no
 * measured rate. */
int compute_token_cost(const struct compute_model *m, const struct llm_desc *d,
		       const int64_t *ffn_rows, const int *pred_rank, int n_layers,
		       int64_t context_tokens, struct compute_cost *out, struct lif_err *err);

/* 1 when a reader thread's CPU work finds no free core beside the compute's
 * kernels: cores given and threads (0 = cores) >= cores. */
int compute_cpu_contended(const struct compute_model *m);

#endif
