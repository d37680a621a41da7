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
 * Low-bit hook (to be filled by the T-MAC issue, arXiv 2407.00088): when
 * `lowbit_bits` > 0 the linear weights of attention and FFN take that many
 * bits each instead of the model's dtype (embeddings and head keep the
 * dtype), and `lowbit_flops_per_s` > 0 replaces flops_per_s as the compute
 * ceiling of those parts (a LUT kernel's effective rate, counted as 2 flops
 * per weight). Today these only change bytes and the ceiling; a later issue
 * decides the kernel's real speed by bit width.
 */
#ifndef LIFSIM_COMPUTE_H
#define LIFSIM_COMPUTE_H

#include <stdint.h>

#include "models/llm.h"
#include "sim/err.h"

/* Compute side of a device: a plain value. */
struct compute_model {
	double flops_per_s;        /* > 0: arithmetic ceiling */
	double mem_bytes_per_s;    /* > 0: bandwidth for reading weights */
	double dense_ms_per_token; /* > 0: measured dense parts per token; 0 = roofline */
	double lowbit_bits;        /* 0 = the model's dtype; else bits per linear weight, (0, 32] */
	double lowbit_flops_per_s; /* 0 = flops_per_s; else the low-bit kernel's ceiling */
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

/* Bytes per linear (attention / FFN) weight: the dtype's, or lowbit_bits/8. */
double compute_bytes_per_weight(const struct compute_model *m, const struct llm_desc *d);

/* Time in ns of one layer's sparse FFN over `rows` neurons (0 <= rows). */
double compute_ffn_layer_ns(const struct compute_model *m, const struct llm_desc *d, int64_t rows);

/* Time in ns of the dense parts of one token; attn_ns and head_ns (either may
 * be NULL) receive the split (0 when the measured override is used). */
double compute_dense_ns(const struct compute_model *m, const struct llm_desc *d,
			int64_t context_tokens, double *attn_ns, double *head_ns);

/* One token: the dense parts plus the FFN of every layer, ffn_rows[l] rows
 * in layer l (n_layers must equal d->layers; 0 <= rows <= d_ffn). */
int compute_token_cost(const struct compute_model *m, const struct llm_desc *d,
		       const int64_t *ffn_rows, int n_layers, int64_t context_tokens,
		       struct compute_cost *out, struct lif_err *err);

#endif
