/*
 * llm: shape descriptions of large language models (models/llms/NAME.ini).
 *
 * A description gives the architecture (layers, widths, heads, vocabulary,
 * FFN kind), the stored weight dtype and the published activation sparsity a
 * trace generator needs. llm_load() parses one file and computes the derived
 * sizes the cost model uses (bytes per neuron bundle, FFN / attention /
 * embedding bytes); it rejects files whose numbers disagree with each other
 * (for instance a declared parameter count the shape does not give).
 *
 * File format: one [model] section, keys in llm_opts (see `lifsim synth
 * --help`, which prints the table). Example: models/llms/opt-6.7b.ini.
 *
 * Mixture of experts (keys named after the Hugging Face config.json fields
 * they come from; example: models/llms/mixtral-8x7b.ini):
 *   experts            routed experts per MoE layer (num_experts /
 *                      num_local_experts); 0 = a dense model
 *   experts_per_token  top-k (num_experts_per_tok / experts_per_token)
 *   d_expert           one routed expert's intermediate width
 *                      (moe_intermediate_size; Mixtral, OLMoE and gpt-oss
 *                      call it intermediate_size); experts are gated like
 *                      the dense FFN (`ffn`: SwiGLU = gated, three matrices)
 *   d_shared           intermediate width of the shared expert(s) every token
 *                      uses (shared_expert_intermediate_size; 0 = none)
 *   dense_layers       the first N decoder layers have a dense FFN of d_ffn
 *                      neurons instead of experts (first_k_dense_replace)
 *   head_dim           attention head width when it is not d_model / heads
 *                      (Qwen3, gpt-oss)
 * In an MoE model d_ffn is the dense layers' FFN width (config.json's
 * intermediate_size); it is unused when dense_layers = 0. The router
 * (d_model x experts per MoE layer), the dense layers' FFN and the shared
 * experts are the always-resident FFN part (resident_ffn_bytes); the routed
 * experts (expert_bytes each) are what an expert cache streams from flash.
 */
#ifndef LIFSIM_LLM_H
#define LIFSIM_LLM_H

#include <stdint.h>

#include "sim/base/conf.h"
#include "sim/base/err.h"

#define LLM_MAX_LAYERS 256

enum llm_ffn_kind {
	LLM_FFN_RELU2 = 0, /* up (d_model x d_ffn) -> activation -> down: two matrices */
	LLM_FFN_GATED3 = 1, /* act(gate x) * (up x) -> down: three matrices (SwiGLU) */
	LLM_FFN_GELU2 = 2   /* up -> GELU -> down: two matrices like relu, but GELU has no
			     * exact zeros: `sparsity` is then the share of neurons a
			     * threshold or a relufied variant leaves out (the file says which) */
};

enum llm_dtype { LLM_FP32 = 0, LLM_FP16 = 1, LLM_BF16 = 2, LLM_INT8 = 3, LLM_NDTYPES = 4 };

/* A model description: a plain value. Derived fields are filled by llm_load. */
struct llm_desc {
	char name[64];
	int layers;
	int d_model;
	int d_ffn;       /* FFN neurons per layer */
	int heads;
	int kv_heads;    /* grouped / multi-query attention; = heads for MHA */
	int vocab;
	int max_pos;     /* learned position embeddings (0 for rotary) */
	int ffn_kind;    /* enum llm_ffn_kind */
	int dtype;       /* enum llm_dtype: the stored weight type */
	int tied_embeddings;
	double params;   /* declared parameter count, checked against the shape */
	double sparsity; /* mean FFN activation sparsity: fraction of neurons inactive */
	double sparsity_first, sparsity_last; /* optional per-layer trend (0 = use sparsity) */
	int weight_bits;  /* 0 = linear weights at dtype; 1..4: attention and FFN linear
			   * weights in the low-bit GEMV format of models/gemv/gemv.h (embeddings,
			   * head and norms stay at dtype); set in memory, not a file key */
	int weight_group; /* weight_bits > 0: weights per scale group, 32 or 64 */
	int head_dim;     /* 0 = d_model / heads */
	/* mixture of experts (experts = 0: dense) */
	int experts;           /* routed experts per MoE layer */
	int experts_per_token; /* top-k */
	int d_expert;          /* one routed expert's intermediate width */
	int d_shared;          /* shared experts' intermediate width (0 = none) */
	int dense_layers;      /* leading layers with a dense FFN of d_ffn */

	/* derived by llm_load / llm_derive */
	int ffn_matrices;        /* 2 or 3 */
	int weight_bytes;        /* bytes per parameter of dtype */
	int64_t row_bytes;       /* one d_model-wide row of a linear matrix: d_model *
				  * weight_bytes, or gemv_bytes(1, d_model, bits, group) */
	int64_t bundle_bytes;    /* one neuron's weights in all FFN matrices: ffn_matrices
				  * rows (the down column is stored as a row) */
	int64_t ffn_bytes;       /* all layers' FFN weights */
	int64_t attn_bytes;      /* all layers' attention weights (+ norms) */
	int64_t embed_bytes;     /* token (+ position) embeddings and untied head */
	int64_t total_bytes;     /* ffn + attn + embed */
	double params_computed;  /* parameter count from the shape */
	/* derived, MoE models only (0 otherwise) */
	int moe_layers;              /* layers - dense_layers */
	int64_t expert_bytes;        /* one routed expert: ffn_matrices * d_expert rows */
	int64_t expert_matrix_bytes; /* one matrix of one expert: d_expert rows */
	int64_t experts_bytes;       /* all routed experts of all MoE layers */
	int64_t resident_ffn_bytes;  /* dense layers' FFN, shared experts and routers */
	double active_params;        /* parameters a token uses (top-k experts) */
};

/* Attention head width. */
static inline int llm_head_dim(const struct llm_desc *d)
{
	return d->head_dim ? d->head_dim : d->d_model / d->heads;
}

/* 1 when d describes a mixture-of-experts model. */
static inline int llm_is_moe(const struct llm_desc *d) { return d->experts > 0; }

extern const struct conf_opt llm_opts[];

/* Load and check a description. On error, err names the file, line and key. */
int llm_load(const char *path, struct llm_desc *out, struct lif_err *err);

/* Fill the derived fields and check consistency; used by llm_load and by code
 * that builds a description in memory (tests, recorder). */
int llm_derive(struct llm_desc *d, const char *what, struct lif_err *err);

/* Sparsity (fraction inactive) of layer l under the description's trend. */
double llm_layer_sparsity(const struct llm_desc *d, int layer);

/* Bytes per parameter of a dtype; 0 for an unknown one. */
int llm_dtype_bytes(int dtype);

const char *llm_dtype_name(int dtype);
/* The name of dtype i, or NULL past the last: the INI choices (a conf_names_fn). */
const char *llm_dtype_choice(int dtype);

#endif
