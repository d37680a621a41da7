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
	int kernel;                /* enum compute_kernel for low-bit models (per run, not a key) */
};

/* One token's compute time by part. */
struct compute_cost {
	double attn_ns;  /* all layers' attention (0 when dense_ms_per_token is used) */
	double head_ns;  /* embeddings and output head (0 when dense_ms_per_token is used) */
	double dense_ns; /* attn_ns + head_ns, or the measured override */
	double ffn_ns;   /* sparse FFN over the given rows, all layers */
	double total_ns; /* dense_ns + ffn_ns */
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

/* Time in ns of one layer's sparse FFN over `rows` neurons (0 <= rows). */
double compute_ffn_layer_ns(const struct compute_model *m, const struct llm_desc *d, int64_t rows);

/* Time in ns of the dense parts of one token; attn_ns and head_ns (either may
 * be NULL) receive the split (0 when the measured override is used). */
double compute_dense_ns(const struct compute_model *m, const struct llm_desc *d,
			int64_t context_tokens, double *attn_ns, double *head_ns);

/* One token: the dense parts plus the FFN of every layer, ffn_rows[l] rows
 * in layer l (n_layers must equal d->layers; 0 <= rows <= d_ffn). Fails
 * as compute_check_model does when a low-bit model has no measured rate. */
int compute_token_cost(const struct compute_model *m, const struct llm_desc *d,
		       const int64_t *ffn_rows, int n_layers, int64_t context_tokens,
		       struct compute_cost *out, struct lif_err *err);

#endif
