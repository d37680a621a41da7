#include "traces/record/model.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traces/record/matmul.h"
#include "traces/record/safetensors.h"

/* One decoder layer's weights. q_dim = heads * head_dim, kv_dim = kv_heads *
 * head_dim. Vectors are float32 copies; biases are NULL when absent. */
struct layer_weights {
	float *attn_norm_w, *attn_norm_b; /* (d_model) OPT self_attn_layer_norm, Llama input_layernorm */
	struct matrix wq; float *bq;      /* (q_dim, d_model), (q_dim) */
	struct matrix wk; float *bk;      /* (kv_dim, d_model), (kv_dim) */
	struct matrix wv; float *bv;      /* (kv_dim, d_model), (kv_dim) */
	struct matrix wo; float *bo;      /* (d_model, q_dim), (d_model) */
	float *ffn_norm_w, *ffn_norm_b;   /* (d_model) OPT final_layer_norm, Llama post_attention_layernorm */
	struct matrix w_up; float *b_up;  /* (d_ffn, d_model), (d_ffn) OPT fc1, Llama up_proj */
	struct matrix w_gate;             /* (d_ffn, d_model) Llama gate_proj; absent for OPT */
	struct matrix w_down; float *b_down; /* (d_model, d_ffn), (d_model) OPT fc2, Llama down_proj */
	/* mixture of experts */
	struct matrix router;             /* (experts, d_model) */
	struct matrix *ex;                /* (experts, 3): gate, up (d_expert, d_model), down (d_model, d_expert) */
	struct matrix sh_gate, sh_up, sh_down; /* the shared expert (d_shared), or absent */
	struct matrix sh_scale;           /* (1, d_model) Qwen2-MoE shared_expert_gate */
	float *q_norm, *k_norm;           /* (head_dim) Qwen3 */
};

struct model_weights {
	struct matrix tok_embed;            /* (vocab, d_embed) */
	float *pos_embed;                   /* (max_pos + 2, d_model) OPT only */
	struct matrix proj_in;              /* (d_model, d_embed) OPT project_in, or absent */
	struct matrix proj_out;             /* (d_embed, d_model) OPT project_out, or absent */
	float *final_norm_w, *final_norm_b; /* (d_model), or NULL */
	struct matrix lm_head;              /* (vocab, d_embed); tok_embed when tied */
	struct layer_weights *layer;        /* (layers) */
};

/* Activations of the current step (n <= batch tokens) and the KV cache. */
struct run_state {
	int batch;      /* most tokens per forward call: min(MODEL_MAX_BATCH, max_tokens) */
	float *x;       /* (batch, d_model) residual stream */
	float *xb;      /* (batch, d_model) normed input of a block */
	float *xb2;     /* (batch, d_model) block output */
	float *emb;     /* (batch, d_embed) token embedding / pre-head vector */
	float *q;       /* (batch, q_dim) */
	float *att_o;   /* (batch, q_dim) attention output before wo */
	float *att;     /* (max_tokens) scores of one head */
	float *hb;      /* (batch, d_ffn) up / fc1 */
	float *hb2;     /* (batch, d_ffn) gate */
	float *rl;      /* (batch, experts) router logits, then probabilities */
	float *eo;      /* (d_model) one expert's output */
	float *sg;      /* (batch) shared-expert gate logits */
	float *k_cache; /* (layers, max_tokens, kv_dim) */
	float *v_cache; /* (layers, max_tokens, kv_dim) */
	float *logits;  /* (batch, vocab) */
};

struct model {
	struct model_config cfg;
	char *config_json;
	int max_tokens;
	struct model_weights w;
	struct run_state s;
	struct matmul_pool *pool; /* matrix products */
	int flags;           /* enum model_flags */
	struct st_file *st;  /* the checkpoint, mapped: matrices point into it */
	float *allocs[64 * 1024]; /* owned tensors, freed at model_free */
	int nallocs;
};

/* ---------------------------------------------------------------- config */

static int json_int(const cJSON *j, const char *key, int dflt, int min, const char *path,
		    int *out, struct lif_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (!v || cJSON_IsNull(v)) {
		if (dflt < min)
			return err_set(err, ERR_FORMAT, "%s: missing key '%s'", path, key);
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < min ||
	    v->valuedouble > 1e9)
		return err_set(err, ERR_FORMAT, "%s: key '%s' must be an integer >= %d", path, key, min);
	*out = v->valueint;
	return 0;
}

static int json_double(const cJSON *j, const char *key, double dflt, const char *path, double *out,
		       struct lif_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (!v || cJSON_IsNull(v))
		return *out = dflt, 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble > 0))
		return err_set(err, ERR_FORMAT, "%s: key '%s' must be a positive number", path, key);
	*out = v->valuedouble;
	return 0;
}

static int json_bool(const cJSON *j, const char *key, int dflt, const char *path, int *out,
		     struct lif_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (!v || cJSON_IsNull(v))
		return *out = dflt, 0;
	if (!cJSON_IsBool(v))
		return err_set(err, ERR_FORMAT, "%s: key '%s' must be true or false", path, key);
	*out = cJSON_IsTrue(v);
	return 0;
}

static int json_str_is(const cJSON *j, const char *key, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

static int parse_opt(const cJSON *j, const char *p, struct model_config *c, struct lif_err *err)
{
	int rc = json_int(j, "ffn_dim", -1, 1, p, &c->d_ffn, err);
	rc = rc ? rc : json_int(j, "word_embed_proj_dim", c->d_model, 1, p, &c->d_embed, err);
	rc = rc ? rc : json_bool(j, "do_layer_norm_before", 1, p, &c->pre_norm, err);
	rc = rc ? rc : json_bool(j, "enable_bias", 1, p, &c->bias, err);
	int remove_final = 0, affine = 1;
	rc = rc ? rc : json_bool(j, "_remove_final_layer_norm", 0, p, &remove_final, err);
	rc = rc ? rc : json_bool(j, "layer_norm_elementwise_affine", 1, p, &affine, err);
	if (rc)
		return rc;
	if (!affine)
		return err_set(err, ERR_FORMAT, "%s: key 'layer_norm_elementwise_affine': false is not "
				"supported", p);
	if (!json_str_is(j, "activation_function", "relu") &&
	    cJSON_GetObjectItemCaseSensitive(j, "activation_function"))
		return err_set(err, ERR_FORMAT, "%s: key 'activation_function': only \"relu\" is "
				"supported for OPT", p);
	c->kv_heads = c->heads;
	c->tied = 1;
	c->final_norm = c->pre_norm && !remove_final;
	c->norm_eps = 1e-5;
	return 0;
}

static int parse_llama(const cJSON *j, const char *p, struct model_config *c, struct lif_err *err)
{
	int rc = json_int(j, "intermediate_size", -1, 1, p, &c->d_ffn, err);
	rc = rc ? rc : json_int(j, "num_key_value_heads", c->heads, 1, p, &c->kv_heads, err);
	rc = rc ? rc : json_int(j, "head_dim", c->d_model / c->heads, 1, p, &c->head_dim, err);
	rc = rc ? rc : json_double(j, "rms_norm_eps", 1e-6, p, &c->norm_eps, err);
	rc = rc ? rc : json_double(j, "rope_theta", c->family == MODEL_MIXTRAL ? 1e6 : 10000.0, p,
				   &c->rope_theta, err);
	rc = rc ? rc : json_bool(j, "attention_bias", 0, p, &c->bias, err);
	if (rc)
		return rc;
	int mlp_bias = 0;
	if (json_bool(j, "mlp_bias", 0, p, &mlp_bias, err))
		return err->code;
	if (mlp_bias)
		return err_set(err, ERR_FORMAT, "%s: key 'mlp_bias': true is not supported", p);
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
	if (rs && !cJSON_IsNull(rs))
		return err_set(err, ERR_FORMAT, "%s: key 'rope_scaling' is not supported", p);
	if (cJSON_GetObjectItemCaseSensitive(j, "hidden_act") && !json_str_is(j, "hidden_act", "silu"))
		return err_set(err, ERR_FORMAT, "%s: key 'hidden_act': only \"silu\" is supported", p);
	if (c->heads % c->kv_heads || c->head_dim % 2)
		return err_set(err, ERR_FORMAT, "%s: num_attention_heads must be a multiple of "
				"num_key_value_heads and head_dim even", p);
	rc = json_bool(j, "tie_word_embeddings", 0, p, &c->tied, err);
	c->d_embed = c->d_model;
	c->pre_norm = c->final_norm = 1;
	return rc;
}

/* The MoE keys of Mixtral, Qwen2-MoE and Qwen3-MoE (after parse_llama). */
static int parse_moe(const cJSON *j, const char *p, struct model_config *c, struct lif_err *err)
{
	int rc = 0, step = 1, sliding = 0;
	if (c->family == MODEL_MIXTRAL) {
		rc = json_int(j, "num_local_experts", -1, 1, p, &c->experts, err);
		c->d_expert = c->d_ffn;
		c->norm_topk = 1; /* MixtralSparseMoeBlock always renormalizes */
		const cJSON *sw = cJSON_GetObjectItemCaseSensitive(j, "sliding_window");
		if (!rc && sw && !cJSON_IsNull(sw))
			rc = json_int(j, "sliding_window", -1, 1, p, &c->sliding_window, err);
	} else {
		rc = json_int(j, "num_experts", -1, 1, p, &c->experts, err);
		rc = rc ? rc : json_int(j, "moe_intermediate_size", -1, 1, p, &c->d_expert, err);
		rc = rc ? rc : json_bool(j, "norm_topk_prob", 0, p, &c->norm_topk, err);
		rc = rc ? rc : json_int(j, "decoder_sparse_step", 1, 1, p, &step, err);
		rc = rc ? rc : json_bool(j, "use_sliding_window", 0, p, &sliding, err);
		if (!rc && c->family == MODEL_QWEN2_MOE) {
			rc = json_int(j, "shared_expert_intermediate_size", 0, 0, p, &c->d_shared, err);
			c->bias = 1; /* Qwen2MoeAttention: q, k, v always have biases */
		}
		c->qk_norm = c->family == MODEL_QWEN3_MOE;
		const cJSON *only = cJSON_GetObjectItemCaseSensitive(j, "mlp_only_layers");
		if (!rc && only && !cJSON_IsNull(only) && (!cJSON_IsArray(only) || cJSON_GetArraySize(only)))
			rc = err_set(err, ERR_FORMAT, "%s: key 'mlp_only_layers': dense layers among MoE "
				     "layers are not supported (only an empty list)", p);
		if (!rc && step != 1)
			rc = err_set(err, ERR_FORMAT, "%s: key 'decoder_sparse_step': only 1 (every layer "
				     "MoE) is supported", p);
		if (!rc && sliding)
			rc = err_set(err, ERR_FORMAT, "%s: key 'use_sliding_window': true is not supported", p);
	}
	rc = rc ? rc : json_int(j, "num_experts_per_tok", -1, 1, p, &c->top_k, err);
	if (!rc && (c->experts > 4096 || c->top_k > c->experts || c->top_k > 64))
		rc = err_set(err, ERR_FORMAT, "%s: num_experts_per_tok must be <= the experts (at most "
			     "4096) and <= 64", p);
	if (!rc && c->family != MODEL_MIXTRAL)
		c->d_ffn = c->d_expert; /* the dense intermediate_size is unused */
	return rc;
}

int model_parse_config(const char *json, const char *path, struct model_config *c,
		       struct lif_err *err)
{
	memset(c, 0, sizeof *c);
	cJSON *j = cJSON_Parse(json);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return err_set(err, ERR_FORMAT, "%s: not a JSON object", path);
	}
	int rc = 0;
	if (json_str_is(j, "model_type", "opt"))
		c->family = MODEL_OPT;
	else if (json_str_is(j, "model_type", "llama"))
		c->family = MODEL_LLAMA;
	else if (json_str_is(j, "model_type", "mixtral"))
		c->family = MODEL_MIXTRAL;
	else if (json_str_is(j, "model_type", "qwen2_moe"))
		c->family = MODEL_QWEN2_MOE;
	else if (json_str_is(j, "model_type", "qwen3_moe"))
		c->family = MODEL_QWEN3_MOE;
	else
		rc = err_set(err, ERR_FORMAT, "%s: key 'model_type' must be \"opt\", \"llama\", "
			     "\"mixtral\", \"qwen2_moe\" or \"qwen3_moe\"", path);
	rc = rc ? rc : json_int(j, "vocab_size", -1, 1, path, &c->vocab, err);
	rc = rc ? rc : json_int(j, "hidden_size", -1, 1, path, &c->d_model, err);
	rc = rc ? rc : json_int(j, "num_hidden_layers", -1, 1, path, &c->layers, err);
	rc = rc ? rc : json_int(j, "num_attention_heads", -1, 1, path, &c->heads, err);
	rc = rc ? rc : json_int(j, "max_position_embeddings", -1, 1, path, &c->max_pos, err);
	if (!rc && c->d_model % c->heads)
		rc = err_set(err, ERR_FORMAT, "%s: hidden_size is not a multiple of num_attention_heads", path);
	c->head_dim = c->heads ? c->d_model / c->heads : 0;
	if (!rc)
		rc = c->family == MODEL_OPT ? parse_opt(j, path, c, err) : parse_llama(j, path, c, err);
	if (!rc && c->family >= MODEL_MIXTRAL)
		rc = parse_moe(j, path, c, err);
	c->byte_tokenizer = json_str_is(j, "lifsim_tokenizer", "byte");
	rc = rc ? rc : json_int(j, "bos_token_id", -1, -1, path, &c->bos_id, err);
	if (!rc && c->bos_id >= c->vocab)
		rc = err_set(err, ERR_FORMAT, "%s: key 'bos_token_id' must be < vocab_size", path);
	if (!rc && c->byte_tokenizer && c->vocab < 256)
		rc = err_set(err, ERR_FORMAT, "%s: lifsim_tokenizer \"byte\" needs vocab_size >= 256", path);
	cJSON_Delete(j);
	return rc;
}

/* ---------------------------------------------------------------- weights */

/* Load tensor prefix+name of the given shape; NULL (err set) on failure. */
static float *load(struct model *m, const struct st_file *st, const char *prefix, const char *name,
		   int64_t rows, int64_t cols, struct lif_err *err)
{
	char full[256];
	snprintf(full, sizeof full, "%s%s", prefix, name);
	int64_t shape[2] = {rows, cols};
	if (m->nallocs == (int)(sizeof m->allocs / sizeof m->allocs[0])) {
		err_set(err, ERR_RANGE, "too many tensors");
		return NULL;
	}
	if (err->code) /* the first error wins; do not convert more tensors */
		return NULL;
	float *p = st_load_f32(st, full, cols ? 2 : 1, shape, err);
	if (p)
		m->allocs[m->nallocs++] = p;
	return p;
}

/* Matrix prefix+name of shape (rows, cols), in memory the model owns: F16 and
 * BF16 widened to float32 unless the model keeps half-precision weights
 * (MODEL_HALF_WEIGHTS), F32 and kept half precision copied as they are. Every
 * matrix is streamed once per decoded token, and streaming an anonymous copy
 * is faster than streaming the checkpoint's file mapping (OPT-1.3B shape,
 * --half-weights, side by side: 1.7-1.9 tokens/s against 0.35-0.53 on a
 * loaded machine; the mapping gave 64% of the DRAM bound on a quiet one); the
 * mapping's pages are released as each tensor is copied, so the page cache
 * they hold stays reclaimable. */
static struct matrix load_mat(struct model *m, const struct st_file *st, const char *prefix,
			      const char *name, int64_t rows, int64_t cols, struct lif_err *err)
{
	struct matrix w = {NULL, ST_F32, (int)rows, (int)cols};
	char full[256];
	snprintf(full, sizeof full, "%s%s", prefix, name);
	int64_t shape[2] = {rows, cols};
	const struct st_tensor *t = err->code ? NULL : st_get(st, full, 2, shape, err);
	if (!t)
		return w;
	if (t->dtype != ST_F32 && !(m->flags & MODEL_HALF_WEIGHTS)) {
		w.data = load(m, st, prefix, name, rows, cols, err);
		return w;
	}
	size_t eb = (size_t)matmul_dtype_bytes(t->dtype), bytes = (size_t)rows * cols * eb;
	void *copy = NULL;
	if (m->nallocs == (int)(sizeof m->allocs / sizeof m->allocs[0]) ||
	    posix_memalign(&copy, 64, bytes ? bytes : 1)) {
		err_set(err, ERR_NOMEM, "out of memory copying tensor '%s'", full);
		return w;
	}
	memcpy(copy, t->data, bytes);
	st_release(t);
	m->allocs[m->nallocs++] = copy;
	w.dtype = t->dtype;
	w.data = copy;
	return w;
}

/* Optional tensor: NULL without error when absent. */
static float *load_opt(struct model *m, const struct st_file *st, const char *prefix,
		       const char *name, int64_t rows, int64_t cols, struct lif_err *err)
{
	char full[256];
	snprintf(full, sizeof full, "%s%s", prefix, name);
	return st_find(st, full) ? load(m, st, prefix, name, rows, cols, err) : NULL;
}

static int load_opt_layer(struct model *m, const struct st_file *st, const char *pre,
			  struct layer_weights *L, struct lif_err *err)
{
	const struct model_config *c = &m->cfg;
	int64_t d = c->d_model, f = c->d_ffn, b = c->bias;
	L->attn_norm_w = load(m, st, pre, "self_attn_layer_norm.weight", d, 0, err);
	L->attn_norm_b = load(m, st, pre, "self_attn_layer_norm.bias", d, 0, err);
	L->wq = load_mat(m, st, pre, "self_attn.q_proj.weight", d, d, err);
	L->wk = load_mat(m, st, pre, "self_attn.k_proj.weight", d, d, err);
	L->wv = load_mat(m, st, pre, "self_attn.v_proj.weight", d, d, err);
	L->wo = load_mat(m, st, pre, "self_attn.out_proj.weight", d, d, err);
	L->ffn_norm_w = load(m, st, pre, "final_layer_norm.weight", d, 0, err);
	L->ffn_norm_b = load(m, st, pre, "final_layer_norm.bias", d, 0, err);
	L->w_up = load_mat(m, st, pre, "fc1.weight", f, d, err);
	L->w_down = load_mat(m, st, pre, "fc2.weight", d, f, err);
	if (b) {
		L->bq = load(m, st, pre, "self_attn.q_proj.bias", d, 0, err);
		L->bk = load(m, st, pre, "self_attn.k_proj.bias", d, 0, err);
		L->bv = load(m, st, pre, "self_attn.v_proj.bias", d, 0, err);
		L->bo = load(m, st, pre, "self_attn.out_proj.bias", d, 0, err);
		L->b_up = load(m, st, pre, "fc1.bias", f, 0, err);
		L->b_down = load(m, st, pre, "fc2.bias", d, 0, err);
	}
	return err->code;
}

/* The MoE block of a Mixtral / Qwen-MoE layer, and Qwen3's q/k norms. */
static int load_moe_layer(struct model *m, const struct st_file *st, const char *pre,
			  struct layer_weights *L, struct lif_err *err)
{
	const struct model_config *c = &m->cfg;
	int64_t d = c->d_model, f = c->d_expert, E = c->experts;
	int mix = c->family == MODEL_MIXTRAL;
	char p[192];
	if (c->qk_norm) {
		L->q_norm = load(m, st, pre, "self_attn.q_norm.weight", c->head_dim, 0, err);
		L->k_norm = load(m, st, pre, "self_attn.k_norm.weight", c->head_dim, 0, err);
	}
	snprintf(p, sizeof p, "%s%s", pre, mix ? "block_sparse_moe." : "mlp.");
	L->router = load_mat(m, st, p, "gate.weight", E, d, err);
	if (!(L->ex = calloc((size_t)E * 3, sizeof *L->ex)))
		return err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
	static const char *mixn[3] = {"w1", "w3", "w2"}, *qwn[3] = {"gate_proj", "up_proj", "down_proj"};
	for (int64_t e = 0; e < E && !err->code; e++)
		for (int k = 0; k < 3; k++) {
			char name[48];
			snprintf(name, sizeof name, "experts.%lld.%s.weight", (long long)e, mix ? mixn[k] : qwn[k]);
			L->ex[e * 3 + k] = load_mat(m, st, p, name, k == 2 ? d : f, k == 2 ? f : d, err);
		}
	if (c->d_shared) {
		int64_t s = c->d_shared;
		L->sh_gate = load_mat(m, st, p, "shared_expert.gate_proj.weight", s, d, err);
		L->sh_up = load_mat(m, st, p, "shared_expert.up_proj.weight", s, d, err);
		L->sh_down = load_mat(m, st, p, "shared_expert.down_proj.weight", d, s, err);
		L->sh_scale = load_mat(m, st, p, "shared_expert_gate.weight", 1, d, err);
	}
	return err->code;
}

static int load_llama_layer(struct model *m, const struct st_file *st, const char *pre,
			    struct layer_weights *L, struct lif_err *err)
{
	const struct model_config *c = &m->cfg;
	int64_t d = c->d_model, f = c->d_ffn, qd = (int64_t)c->heads * c->head_dim,
		kvd = (int64_t)c->kv_heads * c->head_dim;
	L->attn_norm_w = load(m, st, pre, "input_layernorm.weight", d, 0, err);
	L->wq = load_mat(m, st, pre, "self_attn.q_proj.weight", qd, d, err);
	L->wk = load_mat(m, st, pre, "self_attn.k_proj.weight", kvd, d, err);
	L->wv = load_mat(m, st, pre, "self_attn.v_proj.weight", kvd, d, err);
	L->wo = load_mat(m, st, pre, "self_attn.o_proj.weight", d, qd, err);
	L->ffn_norm_w = load(m, st, pre, "post_attention_layernorm.weight", d, 0, err);
	if (c->experts) {
		load_moe_layer(m, st, pre, L, err);
	} else {
		L->w_gate = load_mat(m, st, pre, "mlp.gate_proj.weight", f, d, err);
		L->w_up = load_mat(m, st, pre, "mlp.up_proj.weight", f, d, err);
		L->w_down = load_mat(m, st, pre, "mlp.down_proj.weight", d, f, err);
	}
	if (c->bias) {
		L->bq = load(m, st, pre, "self_attn.q_proj.bias", qd, 0, err);
		L->bk = load(m, st, pre, "self_attn.k_proj.bias", kvd, 0, err);
		L->bv = load(m, st, pre, "self_attn.v_proj.bias", kvd, 0, err);
		L->bo = load_opt(m, st, pre, "self_attn.o_proj.bias", d, 0, err);
	}
	return err->code;
}

/* HF prefixes: "model.decoder." (OPTForCausalLM) or "decoder." (OPTModel);
 * "model." (LlamaForCausalLM) or "" (LlamaModel). */
static const char *find_prefix(const struct st_file *st, int family)
{
	static const char *opt[] = {"model.decoder.", "decoder."}, *llama[] = {"model.", ""};
	const char **p = family == MODEL_OPT ? opt : llama;
	char name[256];
	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof name, "%sembed_tokens.weight", p[i]);
		if (st_find(st, name))
			return p[i];
	}
	return p[0];
}

static int load_weights(struct model *m, const struct st_file *st, struct lif_err *err)
{
	const struct model_config *c = &m->cfg;
	struct model_weights *w = &m->w;
	const char *pre = find_prefix(st, c->family);
	int64_t d = c->d_model, e = c->d_embed, V = c->vocab;
	w->tok_embed = load_mat(m, st, pre, "embed_tokens.weight", V, e, err);
	if (c->family == MODEL_OPT) {
		w->pos_embed = load(m, st, pre, "embed_positions.weight", c->max_pos + 2, d, err);
		if (e != d) {
			w->proj_in = load_mat(m, st, pre, "project_in.weight", d, e, err);
			w->proj_out = load_mat(m, st, pre, "project_out.weight", e, d, err);
		}
		if (c->final_norm) {
			w->final_norm_w = load(m, st, pre, "final_layer_norm.weight", d, 0, err);
			w->final_norm_b = load(m, st, pre, "final_layer_norm.bias", d, 0, err);
		}
	} else {
		w->final_norm_w = load(m, st, pre, "norm.weight", d, 0, err);
	}
	/* the head: lm_head.weight when present, else tied to the embedding
	 * (OPT always ties; Llama when tie_word_embeddings) */
	if (st_find(st, "lm_head.weight") || !c->tied)
		w->lm_head = load_mat(m, st, "", "lm_head.weight", V, e, err);
	else
		w->lm_head = w->tok_embed;
	w->layer = calloc((size_t)c->layers, sizeof *w->layer);
	if (!w->layer)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (int l = 0; l < c->layers && !err->code; l++) {
		char lp[128];
		snprintf(lp, sizeof lp, "%slayers.%d.", pre, l);
		if (c->family == MODEL_OPT)
			load_opt_layer(m, st, lp, &w->layer[l], err);
		else
			load_llama_layer(m, st, lp, &w->layer[l], err);
	}
	return err->code;
}

static int alloc_state(struct model *m, struct lif_err *err)
{
	const struct model_config *c = &m->cfg;
	struct run_state *s = &m->s;
	size_t qd = (size_t)c->heads * c->head_dim, kvd = (size_t)c->kv_heads * c->head_dim,
	       T = (size_t)m->max_tokens;
	size_t B = (size_t)(s->batch = m->max_tokens < MODEL_MAX_BATCH ? m->max_tokens : MODEL_MAX_BATCH);
	s->x = calloc(B * c->d_model, sizeof(float));
	s->xb = calloc(B * c->d_model, sizeof(float));
	s->xb2 = calloc(B * c->d_model, sizeof(float));
	s->emb = calloc(B * c->d_embed, sizeof(float));
	s->q = calloc(B * qd, sizeof(float));
	s->att_o = calloc(B * qd, sizeof(float));
	s->att = calloc(T, sizeof(float));
	size_t F = (size_t)(c->d_ffn > c->d_shared ? c->d_ffn : c->d_shared);
	s->hb = calloc(B * F, sizeof(float));
	s->hb2 = calloc(B * F, sizeof(float));
	s->rl = calloc(B * (c->experts ? c->experts : 1), sizeof(float));
	s->eo = calloc(c->d_model, sizeof(float));
	s->sg = calloc(B, sizeof(float));
	s->k_cache = calloc((size_t)c->layers * T * kvd, sizeof(float));
	s->v_cache = calloc((size_t)c->layers * T * kvd, sizeof(float));
	s->logits = calloc(B * c->vocab, sizeof(float));
	if (!s->x || !s->xb || !s->xb2 || !s->emb || !s->q || !s->att_o || !s->att || !s->hb ||
	    !s->hb2 || !s->rl || !s->eo || !s->sg || !s->k_cache || !s->v_cache || !s->logits)
		return err_set(err, ERR_NOMEM, "out of memory for the KV cache of %d tokens", m->max_tokens);
	return 0;
}


/* Refuse, with a clear message, a model whose float32 copy would not fit in
 * the machine's memory (rather than being killed for it half-way). */
static int check_memory(const struct model *m, const struct st_file *st, const char *dir,
			struct lif_err *err)
{
	const struct model_config *c = &m->cfg;
	double kv = 2.0 * c->layers * m->max_tokens * c->kv_heads * c->head_dim * sizeof(float);
	double f32 = (double)st_numel(st) * sizeof(float);
	double need = (m->flags & MODEL_HALF_WEIGHTS ? (double)st_data_bytes(st) : f32) + kv;
	double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
	if (ram > 0 && need > 0.9 * ram)
		return err_set(err, ERR_NOSPACE, "%s: needs %.1f GB (weights%s and KV cache) but the machine "
			       "has %.1f GB%s", dir, need / 1e9,
			       m->flags & MODEL_HALF_WEIGHTS ? "" : " as float32", ram / 1e9,
			       !(m->flags & MODEL_HALF_WEIGHTS) && st_data_bytes(st) < f32
				       ? "; --half-weights keeps F16/BF16 weights as they are" : "");
	return 0;
}

struct model *model_open(const char *dir, int max_tokens, int threads, int flags,
			 struct lif_err *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/config.json", dir);
	struct model *m = calloc(1, sizeof *m);
	struct st_file *st = NULL;
	if (!m) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	m->max_tokens = max_tokens;
	m->flags = flags;
	if (!(m->config_json = st_read_text(path, 64 << 20, err)) ||
	    model_parse_config(m->config_json, path, &m->cfg, err))
		goto fail;
	if (m->cfg.family == MODEL_OPT && max_tokens > m->cfg.max_pos) {
		err_set(err, ERR_RANGE, "%s: %d tokens exceed max_position_embeddings %d", path,
			max_tokens, m->cfg.max_pos);
		goto fail;
	}
	if (m->cfg.sliding_window && max_tokens > m->cfg.sliding_window) {
		err_set(err, ERR_RANGE, "%s: %d tokens exceed sliding_window %d (sliding-window "
			"attention is not implemented)", path, max_tokens, m->cfg.sliding_window);
		goto fail;
	}
	if (!(st = m->st = st_open(dir, err)) || check_memory(m, st, dir, err) ||
	    load_weights(m, st, err) || alloc_state(m, err))
		goto fail;
	if (!(m->pool = matmul_pool_new(threads, err)))
		goto fail;
	return m;
fail:
	model_free(m);
	return NULL;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	matmul_pool_free(m->pool);
	for (int i = 0; i < m->nallocs; i++)
		free(m->allocs[i]);
	for (int l = 0; m->w.layer && l < m->cfg.layers; l++)
		free(m->w.layer[l].ex);
	free(m->w.layer);
	struct run_state *s = &m->s;
	float *bufs[] = {s->x, s->xb, s->xb2, s->emb, s->q, s->att_o, s->att, s->hb, s->hb2,
			 s->rl, s->eo, s->sg, s->k_cache, s->v_cache, s->logits};
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		free(bufs[i]);
	free(m->config_json);
	st_close(m->st);
	free(m);
}

const struct model_config *model_get_config(const struct model *m)
{
	return &m->cfg;
}

const char *model_config_json(const struct model *m)
{
	return m->config_json;
}

static int64_t matrix_bytes(const struct matrix *w)
{
	return w->data ? (int64_t)w->rows * w->cols * matmul_dtype_bytes(w->dtype) : 0;
}

int64_t model_weight_bytes_per_token(const struct model *m)
{
	const struct model_config *c = &m->cfg;
	const struct model_weights *w = &m->w;
	int64_t d = c->d_model, f = c->d_ffn, qd = (int64_t)c->heads * c->head_dim,
		kvd = (int64_t)c->kv_heads * c->head_dim;
	/* every matrix once, one embedding row, and the float32 vectors */
	int64_t total = matrix_bytes(&w->lm_head) + matrix_bytes(&w->proj_in) + matrix_bytes(&w->proj_out) +
			(int64_t)c->d_embed * matmul_dtype_bytes(w->tok_embed.dtype);
	for (int l = 0; l < c->layers; l++) {
		const struct layer_weights *L = &w->layer[l];
		total += matrix_bytes(&L->wq) + matrix_bytes(&L->wk) + matrix_bytes(&L->wv) +
			 matrix_bytes(&L->wo) + matrix_bytes(&L->w_up) + matrix_bytes(&L->w_gate) +
			 matrix_bytes(&L->w_down);
		/* MoE: the router, top_k routed experts (expert 0's size) and the shared expert */
		if (L->ex)
			total += matrix_bytes(&L->router) + c->top_k * (matrix_bytes(&L->ex[0]) +
				 matrix_bytes(&L->ex[1]) + matrix_bytes(&L->ex[2])) +
				 matrix_bytes(&L->sh_gate) + matrix_bytes(&L->sh_up) +
				 matrix_bytes(&L->sh_down) + matrix_bytes(&L->sh_scale) +
				 (L->q_norm ? 8 * c->head_dim : 0);
		total += 4 * (4 * d + (c->bias ? 2 * qd + 2 * kvd + f + d : 0));
	}
	total += 4 * (2 * d + (w->pos_embed ? d : 0));
	return total;
}

/* ---------------------------------------------------------------- forward */

static void layer_norm(float *o, const float *x, const float *w, const float *b, int n, double eps)
{
	double mean = 0, var = 0;
	for (int i = 0; i < n; i++)
		mean += x[i];
	mean /= n;
	for (int i = 0; i < n; i++)
		var += (x[i] - mean) * (x[i] - mean);
	double r = 1.0 / sqrt(var / n + eps);
	for (int i = 0; i < n; i++)
		o[i] = (float)((x[i] - mean) * r) * w[i] + b[i];
}

static void rms_norm(float *o, const float *x, const float *w, int n, double eps)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	double r = 1.0 / sqrt(ss / n + eps);
	for (int i = 0; i < n; i++)
		o[i] = (float)(x[i] * r) * w[i];
}

/* The family's norm of each of n rows of d_model (o may be x). */
static void norm(const struct model *m, int n, float *o, const float *x, const float *w, const float *b)
{
	int d = m->cfg.d_model;
	for (int t = 0; t < n; t++) {
		if (m->cfg.family == MODEL_OPT)
			layer_norm(o + (size_t)t * d, x + (size_t)t * d, w, b, d, m->cfg.norm_eps);
		else
			rms_norm(o + (size_t)t * d, x + (size_t)t * d, w, d, m->cfg.norm_eps);
	}
}

/* HF rotate-half RoPE on n_heads heads of v (n_heads, head_dim) at pos. */
static void rope(float *v, int n_heads, int hd, int pos, double theta)
{
	for (int i = 0; i < hd / 2; i++) {
		double ang = pos * pow(theta, -2.0 * i / hd);
		float c = (float)cos(ang), s = (float)sin(ang);
		for (int h = 0; h < n_heads; h++) {
			float *a = v + h * hd;
			float x0 = a[i], x1 = a[i + hd / 2];
			a[i] = x0 * c - x1 * s;
			a[i + hd / 2] = x1 * c + x0 * s;
		}
	}
}

/* Causal self-attention of query q (q_dim) at position pos against the cache
 * of layer l (positions 0..pos); result in out (q_dim). Scores through the
 * decode kernel (rows of K at stride kv_dim); one thread, so the same sums
 * whatever the thread count. */
static void attention(struct model *m, int l, int pos, const float *q_all, float *out)
{
	const struct model_config *c = &m->cfg;
	struct run_state *s = &m->s;
	int hd = c->head_dim, kvd = c->kv_heads * hd, group = c->heads / c->kv_heads;
	size_t loff = (size_t)l * m->max_tokens * kvd;
	float scale = c->family == MODEL_OPT ? 1.0f : 1.0f / sqrtf((float)hd); /* OPT scales q */
	float *att = s->att;
	for (int h = 0; h < c->heads; h++) {
		const float *K = s->k_cache + loff + (h / group) * hd; /* (pos+1, kvd) rows */
		const float *V = s->v_cache + loff + (h / group) * hd;
		const float *q = q_all + h * hd;
		/* scores = scale * K q, softmax over positions 0..pos */
		matmul_dot_rows(m->pool, att, K, (size_t)kvd, q, hd, pos + 1);
		float mx = att[0] *= scale;
		for (int t = 1; t <= pos; t++) {
			att[t] *= scale;
			mx = att[t] > mx ? att[t] : mx;
		}
		double sum = 0;
		for (int t = 0; t <= pos; t++)
			sum += att[t] = expf(att[t] - mx);
		for (int t = 0; t <= pos; t++)
			att[t] = (float)(att[t] / sum);
		/* out = V^T att */
		float *o = out + h * hd;
		memset(o, 0, (size_t)hd * sizeof *o);
		for (int t = 0; t <= pos; t++)
			for (int i = 0; i < hd; i++)
				o[i] += att[t] * V[(size_t)t * kvd + i];
	}
}

/* The attention block of layer l for n tokens at positions pos..pos+n-1:
 * x += wo attn(norm(x)) (pre-norm) or x = norm(x + wo attn(x)) (OPT post-norm). */
static void attention_block(struct model *m, int l, int n, int pos)
{
	const struct model_config *c = &m->cfg;
	const struct layer_weights *L = &m->w.layer[l];
	struct run_state *s = &m->s;
	int d = c->d_model, qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
	float *k = s->k_cache + ((size_t)l * m->max_tokens + pos) * kvd; /* (n, kvd) cache rows */
	float *v = s->v_cache + ((size_t)l * m->max_tokens + pos) * kvd;
	const float *in = s->x;
	if (c->pre_norm) {
		norm(m, n, s->xb, s->x, L->attn_norm_w, L->attn_norm_b);
		in = s->xb;
	}
	/* q, k, v projections; these positions' k and v go into the cache */
	struct matmul_op qkv[3] = {{s->q, &L->wq, L->bq, in}, {k, &L->wk, L->bk, in}, {v, &L->wv, L->bv, in}};
	matmul_many(m->pool, n, qkv, 3);
	for (int t = 0; t < n; t++) {
		if (c->family == MODEL_OPT) {
			cblas_sscal(qd, 1.0f / sqrtf((float)c->head_dim), s->q + (size_t)t * qd, 1);
		} else {
			for (int h = 0; L->q_norm && h < c->heads; h++)
				rms_norm(s->q + (size_t)t * qd + h * c->head_dim, s->q + (size_t)t * qd + h * c->head_dim,
					 L->q_norm, c->head_dim, c->norm_eps);
			for (int h = 0; L->k_norm && h < c->kv_heads; h++)
				rms_norm(k + (size_t)t * kvd + h * c->head_dim, k + (size_t)t * kvd + h * c->head_dim,
					 L->k_norm, c->head_dim, c->norm_eps);
			rope(s->q + (size_t)t * qd, c->heads, c->head_dim, pos + t, c->rope_theta);
			rope(k + (size_t)t * kvd, c->kv_heads, c->head_dim, pos + t, c->rope_theta);
		}
	}
	/* each token attends to the cache up to its own position */
	for (int t = 0; t < n; t++)
		attention(m, l, pos + t, s->q + (size_t)t * qd, s->att_o + (size_t)t * qd);
	/* output projection and residual */
	matmul(m->pool, n, s->xb2, &L->wo, L->bo, s->att_o);
	for (size_t i = 0; i < (size_t)n * d; i++)
		s->x[i] += s->xb2[i];
	if (!c->pre_norm)
		norm(m, n, s->x, s->x, L->attn_norm_w, L->attn_norm_b);
}

/* The FFN block of layer l for n tokens, reporting inputs and activation
 * values into the taps (token-major, see model_tap) when given. */
static void ffn_block(struct model *m, int l, int n, const struct model_tap *tap)
{
	const struct model_config *c = &m->cfg;
	const struct layer_weights *L = &m->w.layer[l];
	struct run_state *s = &m->s;
	int d = c->d_model, f = c->d_ffn;
	size_t nf = (size_t)n * f;
	const float *in = s->x;
	if (c->pre_norm) {
		norm(m, n, s->xb, s->x, L->ffn_norm_w, L->ffn_norm_b);
		in = s->xb;
	}
	for (int t = 0; tap && tap->ffn_in && t < n; t++)
		memcpy(tap->ffn_in + ((size_t)t * c->layers + l) * d, in + (size_t)t * d, (size_t)d * sizeof *in);
	if (c->family == MODEL_OPT) {
		/* h = relu(fc1 x + b1); the pre-activation is the activation value */
		matmul(m->pool, n, s->hb, &L->w_up, L->b_up, in);
		for (int t = 0; tap && tap->ffn_act && t < n; t++)
			memcpy(tap->ffn_act + ((size_t)t * c->layers + l) * f, s->hb + (size_t)t * f,
			       (size_t)f * sizeof *s->hb);
		for (size_t i = 0; i < nf; i++)
			s->hb[i] = s->hb[i] > 0 ? s->hb[i] : 0;
	} else {
		/* h = silu(gate x) * (up x); |h| is the activation value */
		struct matmul_op gu[2] = {{s->hb2, &L->w_gate, NULL, in}, {s->hb, &L->w_up, NULL, in}};
		matmul_many(m->pool, n, gu, 2);
		for (size_t i = 0; i < nf; i++) {
			float g = s->hb2[i];
			s->hb[i] *= g / (1.0f + expf(-g));
		}
		for (int t = 0; tap && tap->ffn_act && t < n; t++)
			for (int i = 0; i < f; i++)
				tap->ffn_act[((size_t)t * c->layers + l) * f + i] = fabsf(s->hb[(size_t)t * f + i]);
	}
	/* down projection and residual */
	matmul(m->pool, n, s->xb2, &L->w_down, L->b_down, s->hb);
	for (size_t i = 0; i < (size_t)n * d; i++)
		s->x[i] += s->xb2[i];
	if (!c->pre_norm)
		norm(m, n, s->x, s->x, L->ffn_norm_w, L->ffn_norm_b);
}

/* y (d_model) = down(silu(gate x) * up x) for one token x, through hb/hb2's
 * first row (ex: gate, up, down). */
static void swiglu_one(struct model *m, const struct matrix *ex, const float *x, float *y)
{
	struct run_state *s = &m->s;
	struct matmul_op gu[2] = {{s->hb2, &ex[0], NULL, x}, {s->hb, &ex[1], NULL, x}};
	matmul_many(m->pool, 1, gu, 2);
	for (int i = 0; i < ex[0].rows; i++) {
		float g = s->hb2[i];
		s->hb[i] *= g / (1.0f + expf(-g));
	}
	matmul(m->pool, 1, y, &ex[2], NULL, s->hb);
}

/* The router of one token: probabilities p (experts) in place of its logits
 * (softmax), then the top_k by descending probability (ties: lower id) and
 * their weights, renormalized when the family does. */
static void route(const struct model_config *c, float *p, int16_t *ids, float *w)
{
	int E = c->experts, k = c->top_k;
	float mx = p[0];
	for (int e = 1; e < E; e++)
		mx = p[e] > mx ? p[e] : mx;
	double sum = 0;
	for (int e = 0; e < E; e++)
		sum += p[e] = expf(p[e] - mx);
	for (int e = 0; e < E; e++)
		p[e] = (float)(p[e] / sum);
	double wsum = 0;
	for (int j = 0; j < k; j++) {
		int best = -1;
		for (int e = 0; e < E; e++) {
			int taken = 0;
			for (int i = 0; i < j && !taken; i++)
				taken = ids[i] == e;
			if (!taken && (best < 0 || p[e] > p[best]))
				best = e;
		}
		ids[j] = (int16_t)best;
		wsum += w[j] = p[best];
	}
	for (int j = 0; c->norm_topk && j < k; j++)
		w[j] = (float)(w[j] / wsum);
}

/* The sparse MoE block of layer l for n tokens: x += sum_j w_j expert_j(norm
 * x) (+ the shared expert scaled by its sigmoid gate); the router's input,
 * choices and weights into the taps. */
static void moe_block(struct model *m, int l, int n, const struct model_tap *tap)
{
	const struct model_config *c = &m->cfg;
	const struct layer_weights *L = &m->w.layer[l];
	struct run_state *s = &m->s;
	int d = c->d_model, k = c->top_k;
	norm(m, n, s->xb, s->x, L->ffn_norm_w, L->ffn_norm_b);
	for (int t = 0; tap && tap->ffn_in && t < n; t++)
		memcpy(tap->ffn_in + ((size_t)t * c->layers + l) * d, s->xb + (size_t)t * d, (size_t)d * sizeof *s->xb);
	matmul(m->pool, n, s->rl, &L->router, NULL, s->xb);
	if (L->sh_scale.data)
		matmul(m->pool, n, s->sg, &L->sh_scale, NULL, s->xb);
	for (int t = 0; t < n; t++) {
		const float *in = s->xb + (size_t)t * d;
		float *acc = s->xb2 + (size_t)t * d;
		int16_t ids[64];
		float w[64];
		route(c, s->rl + (size_t)t * c->experts, ids, w);
		memset(acc, 0, (size_t)d * sizeof *acc);
		for (int j = 0; j < k; j++) {
			swiglu_one(m, L->ex + (size_t)ids[j] * 3, in, s->eo);
			for (int i = 0; i < d; i++)
				acc[i] += w[j] * s->eo[i];
		}
		if (L->sh_gate.data) {
			const struct matrix sh[3] = {L->sh_gate, L->sh_up, L->sh_down};
			swiglu_one(m, sh, in, s->eo);
			float g = 1.0f / (1.0f + expf(-s->sg[t]));
			for (int i = 0; i < d; i++)
				acc[i] += g * s->eo[i];
		}
		if (tap && tap->experts)
			memcpy(tap->experts + ((size_t)t * c->layers + l) * k, ids, (size_t)k * sizeof *ids);
		if (tap && tap->gates)
			memcpy(tap->gates + ((size_t)t * c->layers + l) * k, w, (size_t)k * sizeof *w);
	}
	for (size_t i = 0; i < (size_t)n * d; i++)
		s->x[i] += s->xb2[i];
}

int model_batch(const struct model *m)
{
	return m->s.batch;
}

const float *model_forward(struct model *m, const int32_t *tokens, int n, int pos,
			   const struct model_tap *tap)
{
	const struct model_config *c = &m->cfg;
	const struct model_weights *w = &m->w;
	struct run_state *s = &m->s;
	int d = c->d_model, e = c->d_embed;
	/* token embeddings (OPT: projected in, plus learned positions pos + 2) */
	for (int t = 0; t < n; t++)
		matmul_row(m->pool, s->emb + (size_t)t * e, &w->tok_embed, tokens[t]);
	if (w->proj_in.data)
		matmul(m->pool, n, s->x, &w->proj_in, NULL, s->emb);
	else
		memcpy(s->x, s->emb, (size_t)n * d * sizeof *s->x);
	for (int t = 0; w->pos_embed && t < n; t++)
		for (int i = 0; i < d; i++)
			s->x[(size_t)t * d + i] += w->pos_embed[(size_t)(pos + t + 2) * d + i];
	/* the decoder layers */
	for (int l = 0; l < c->layers; l++) {
		attention_block(m, l, n, pos);
		if (c->experts)
			moe_block(m, l, n, tap);
		else
			ffn_block(m, l, n, tap);
	}
	/* final norm, projection out, and the head */
	if (w->final_norm_w)
		norm(m, n, s->x, s->x, w->final_norm_w, w->final_norm_b);
	if (w->proj_out.data)
		matmul(m->pool, n, s->emb, &w->proj_out, NULL, s->x);
	else
		memcpy(s->emb, s->x, (size_t)n * e * sizeof *s->emb);
	matmul(m->pool, n, s->logits, &w->lm_head, NULL, s->emb);
	return s->logits;
}
