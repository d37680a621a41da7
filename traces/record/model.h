/*
 * model: a decoder-only transformer on CPU, for recording activation traces.
 *
 * Loads a Hugging Face checkpoint directory (config.json + safetensors, see
 * traces/record/safetensors.h) of one of two families and runs it one token at a
 * time with a KV cache; matrix products go through CBLAS (OpenBLAS):
 *  - OPT ("model_type": "opt"): learned positions (row pos + 2, OPT's
 *    offset), pre- or post-LayerNorm per "do_layer_norm_before", ReLU FFN
 *    fc1/fc2, tied LM head (unless lm_head.weight is present), optional
 *    project_in/project_out when "word_embed_proj_dim" != "hidden_size";
 *  - Llama ("model_type": "llama"): RMSNorm, rotary positions (HF's
 *    rotate-half convention, "rope_theta"), grouped-query attention
 *    ("num_key_value_heads"), SwiGLU FFN down(silu(gate x) * up x);
 *  - mixture-of-experts decoders built on Llama's attention, every layer's
 *    FFN a sparse MoE block: a linear router (no bias) gives E logits,
 *    softmax (float32), the top_k experts by probability in descending
 *    order, their probabilities renormalized to sum 1 when the family or
 *    "norm_topk_prob" says so, and the output sum_j w_j expert_j(x) with
 *    SwiGLU experts:
 *    Mixtral ("model_type": "mixtral": block_sparse_moe.gate and
 *    experts.E.w1/w3/w2 = gate/up/down, "num_local_experts",
 *    "num_experts_per_tok", always renormalized);
 *    Qwen2-MoE ("qwen2_moe": q/k/v biases, mlp.gate, mlp.experts.E.{gate,
 *    up,down}_proj of "moe_intermediate_size", plus a shared expert of
 *    "shared_expert_intermediate_size" scaled by sigmoid(shared_expert_gate
 *    x), "norm_topk_prob");
 *    Qwen3-MoE ("qwen3_moe": as Qwen2-MoE without shared expert or q/k/v
 *    biases, and a per-head RMSNorm on q and k before the rotation,
 *    self_attn.q_norm / k_norm).
 *    Only MoE in every layer is supported ("decoder_sparse_step" 1, no
 *    "mlp_only_layers"), without sliding windows.
 * Weights: F32 matrices are used in place from the checkpoint's mmap; F16 and
 * BF16 ones are widened to float32 at load, or, with MODEL_HALF_WEIGHTS, kept
 * in their dtype (half the memory and bytes per token) and converted in
 * registers by the decode kernels (traces/record/matmul.h).
 * Matrix products run on the model's own `threads` threads in fixed row
 * blocks (keep OpenBLAS itself at one thread): results do not depend on the
 * thread count.
 *
 * What a forward step exposes for the trace, per layer: for an MoE model the
 * router's choices and gate weights; the FFN input (the
 * vector the up/gate projections multiply: post-attention, post-norm) and
 * the FFN activation value a neuron's activity is judged on: OPT: the fc1
 * pre-activation (active iff > 0); Llama: |silu(gate) * up| (active iff above
 * a per-layer threshold chosen by the caller).
 */
#ifndef LIFSIM_MODEL_H
#define LIFSIM_MODEL_H

#include <stdint.h>

#include "sim/base/err.h"

enum model_family { MODEL_OPT = 0, MODEL_LLAMA = 1, MODEL_MIXTRAL = 2, MODEL_QWEN2_MOE = 3,
		    MODEL_QWEN3_MOE = 4 };

/* Hyperparameters from config.json: a plain value. */
struct model_config {
	int family;       /* enum model_family */
	int vocab;        /* vocab_size */
	int d_model;      /* hidden_size */
	int d_embed;      /* OPT word_embed_proj_dim (= d_model when absent), Llama: d_model */
	int d_ffn;        /* ffn_dim / intermediate_size */
	int layers;       /* num_hidden_layers */
	int heads;        /* num_attention_heads */
	int kv_heads;     /* num_key_value_heads (OPT: heads) */
	int head_dim;     /* d_model / heads, or "head_dim" */
	int max_pos;      /* max_position_embeddings */
	int pre_norm;     /* OPT do_layer_norm_before (Llama: 1) */
	int final_norm;   /* a final norm before the head */
	int tied;         /* LM head = token embedding unless lm_head.weight exists
			     (OPT: always; Llama: "tie_word_embeddings") */
	int bias;         /* linear layers have biases (OPT enable_bias, Llama attention_bias) */
	int byte_tokenizer; /* "lifsim_tokenizer": "byte" */
	int bos_id;       /* "bos_token_id", or -1 */
	double norm_eps;  /* OPT 1e-5, Llama rms_norm_eps */
	double rope_theta;
	/* mixture of experts (experts == 0: a dense model) */
	int experts;      /* routed experts per layer E */
	int top_k;        /* experts per token and layer */
	int d_expert;     /* one routed expert's intermediate width (= d_ffn) */
	int d_shared;     /* the shared expert's intermediate width, or 0 */
	int norm_topk;    /* top-k probabilities renormalized to sum 1 */
	int qk_norm;      /* per-head RMSNorm on q and k (Qwen3) */
	int sliding_window; /* Mixtral "sliding_window" (0: none); runs must fit in it */
};

struct model;

/* Parse config.json text (path is only used in messages). Errors name the
 * key. */
int model_parse_config(const char *json, const char *path, struct model_config *cfg,
		       struct lif_err *err);

enum model_flags { MODEL_HALF_WEIGHTS = 1 };

/* Load a checkpoint directory with room for max_tokens positions in the KV
 * cache, computing with `threads` threads; flags: enum model_flags. Errors
 * name the file and the tensor or key. */
struct model *model_open(const char *dir, int max_tokens, int threads, int flags,
			 struct lif_err *err);
void model_free(struct model *m);

const struct model_config *model_get_config(const struct model *m);
/* config.json as read (owned by m). */
const char *model_config_json(const struct model *m);
/* Weight bytes one decode step reads, in the dtypes held in memory (every
 * matrix and vector the forward touches, plus one embedding row). */
int64_t model_weight_bytes_per_token(const struct model *m);

/* Largest n model_forward accepts: min(MODEL_MAX_BATCH, max_tokens). */
#define MODEL_MAX_BATCH 64
int model_batch(const struct model *m);

/* Outputs a caller can ask for, token-major (NULL fields are skipped). */
struct model_tap {
	float *ffn_in;  /* (n, layers, d_model) FFN inputs (MoE: the router's input) */
	float *ffn_act; /* (n, layers, d_ffn) activation values (see above; dense only) */
	int16_t *experts; /* (n, layers, top_k) MoE: selected experts, router order */
	float *gates;     /* (n, layers, top_k) MoE: their gate weights as applied */
};

/* Run n tokens (1 <= n <= model_batch) at positions pos..pos+n-1 (calls must
 * continue the sequence: pos is the number of tokens run so far, or any
 * smaller value to rewrite the cache from there) and return the logits
 * (n, vocab), valid until the next call. n > 1 (a prompt chunk) uses matrix
 * products instead of matrix-vector products: the same model, with float
 * sums in another order. */
const float *model_forward(struct model *m, const int32_t *tokens, int n, int pos,
			   const struct model_tap *tap);

#endif
