#include "models/llm.h"

#include "models/gemv/gemv.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define O(f) CONF_OFF(struct llm_desc, f)

const struct conf_opt llm_opts[] = {
	{.section = "model", .name = "name", .type = CONF_STR, .offset = O(name),
	 .size = sizeof(((struct llm_desc *)0)->name), CONF_NO_BOUNDS, .help = "model name"},
	{.section = "model", .name = "layers", .type = CONF_INT, .offset = O(layers), .min = 1,
	 .max = LLM_MAX_LAYERS, .help = "decoder layers"},
	{.section = "model", .name = "d_model", .type = CONF_INT, .offset = O(d_model), .min = 1,
	 .max = 1 << 20, .help = "hidden width"},
	{.section = "model", .name = "d_ffn", .type = CONF_INT, .offset = O(d_ffn), .min = 1,
	 .max = 1 << 22, .help = "FFN neurons per layer"},
	{.section = "model", .name = "heads", .type = CONF_INT, .offset = O(heads), .min = 1,
	 .max = 4096, .help = "attention heads"},
	{.section = "model", .name = "kv_heads", .type = CONF_INT, .offset = O(kv_heads),
	 .def = "0", .min = 0, .max = 4096, .help = "key/value heads (0 = heads)"},
	{.section = "model", .name = "vocab", .type = CONF_INT, .offset = O(vocab), .min = 1,
	 .max = 1 << 24, .help = "vocabulary size"},
	{.section = "model", .name = "max_pos", .type = CONF_INT, .offset = O(max_pos), .def = "0",
	 .min = 0, .max = 1 << 24, .help = "learned position embeddings (0 = none, e.g. rotary)"},
	{.section = "model", .name = "ffn", .type = CONF_ENUM, .offset = O(ffn_kind),
	 CONF_NO_BOUNDS, .choices = "relu|gated|gelu",
	 .help = "FFN kind: relu (up, down), gated (gate, up, down) or gelu (up, down; no exact zeros)"},
	{.section = "model", .name = "dtype", .type = CONF_ENUM, .offset = O(dtype), .def = "fp16",
	 CONF_NO_BOUNDS, .names = llm_dtype_choice, .help = "stored weight type"},
	{.section = "model", .name = "tied_embeddings", .type = CONF_BOOL,
	 .offset = O(tied_embeddings), .def = "false", CONF_NO_BOUNDS,
	 .help = "output head shares the token embedding"},
	{.section = "model", .name = "head_dim", .type = CONF_INT, .offset = O(head_dim),
	 .def = "0", .min = 0, .max = 4096, .help = "attention head width (0 = d_model / heads)"},
	{.section = "model", .name = "experts", .type = CONF_INT, .offset = O(experts), .def = "0",
	 .min = 0, .max = 4096, .help = "MoE: routed experts per MoE layer (0 = dense model)"},
	{.section = "model", .name = "experts_per_token", .type = CONF_INT,
	 .offset = O(experts_per_token), .def = "0", .min = 0, .max = 64,
	 .help = "MoE: experts each token is routed to (top-k)"},
	{.section = "model", .name = "d_expert", .type = CONF_INT, .offset = O(d_expert),
	 .def = "0", .min = 0, .max = 1 << 22,
	 .help = "MoE: one routed expert's intermediate width"},
	{.section = "model", .name = "d_shared", .type = CONF_INT, .offset = O(d_shared),
	 .def = "0", .min = 0, .max = 1 << 22,
	 .help = "MoE: shared experts' intermediate width, used by every token (0 = none)"},
	{.section = "model", .name = "dense_layers", .type = CONF_INT, .offset = O(dense_layers),
	 .def = "0", .min = 0, .max = LLM_MAX_LAYERS,
	 .help = "MoE: leading layers with a dense FFN of d_ffn neurons"},
	{.section = "model", .name = "params", .type = CONF_DOUBLE, .offset = O(params), .def = "0",
	 .min = 0, .max = 1e13,
	 .help = "declared parameter count, checked against the shape within 5% (0 = unchecked)"},
	{.section = "model", .name = "sparsity", .type = CONF_DOUBLE, .offset = O(sparsity),
	 .min = 0, .max = 0.999,
	 .help = "mean FFN activation sparsity (fraction of neurons inactive per token)"},
	{.section = "model", .name = "sparsity_first", .type = CONF_DOUBLE,
	 .offset = O(sparsity_first), .def = "0", .min = 0, .max = 0.999,
	 .help = "sparsity of the first layer (0 = flat at `sparsity`)"},
	{.section = "model", .name = "sparsity_last", .type = CONF_DOUBLE,
	 .offset = O(sparsity_last), .def = "0", .min = 0, .max = 0.999,
	 .help = "sparsity of the last layer (0 = flat at `sparsity`)"},
	{0},
};

int llm_dtype_bytes(int dtype)
{
	static const int bytes[] = {4, 2, 2, 1};
	return dtype >= 0 && dtype < 4 ? bytes[dtype] : 0;
}

static const char *const dtype_names[LLM_NDTYPES] = {
	[LLM_FP32] = "fp32", [LLM_FP16] = "fp16", [LLM_BF16] = "bf16", [LLM_INT8] = "int8"};

const char *llm_dtype_choice(int dtype)
{
	return dtype >= 0 && dtype < LLM_NDTYPES ? dtype_names[dtype] : NULL;
}

const char *llm_dtype_name(int dtype)
{
	const char *name = llm_dtype_choice(dtype);
	return name ? name : "?";
}

/* Parameter counts of one layer's attention and the embeddings. */
static double attn_params(const struct llm_desc *d)
{
	double head_dim = d->head_dim ? d->head_dim : (double)d->d_model / d->heads;
	double q_o = 2.0 * d->d_model * head_dim * d->heads;
	double kv = 2.0 * d->d_model * head_dim * d->kv_heads;
	return q_o + kv + 4.0 * d->d_model; /* + two norms (weight, bias) */
}

static double embed_params(const struct llm_desc *d)
{
	double tok = (double)d->vocab * d->d_model;
	return tok * (d->tied_embeddings ? 1 : 2) + (double)d->max_pos * d->d_model;
}

/* The MoE fields: FFN bytes and parameters replaced by dense layers, routed
 * experts, shared experts and routers (models/llm.h). other_params: attention
 * and embeddings. */
static int moe_derive(struct llm_desc *d, const char *what, double other_params,
		      struct lif_err *err)
{
	d->moe_layers = 0;
	d->expert_bytes = d->expert_matrix_bytes = d->experts_bytes = d->resident_ffn_bytes = 0;
	d->active_params = d->params_computed;
	if (!d->experts)
		return d->experts_per_token || d->d_expert || d->d_shared || d->dense_layers
			       ? err_set(err, ERR_INVAL, "%s: experts_per_token, d_expert, d_shared and "
					 "dense_layers need experts > 0", what)
			       : 0;
	if (d->experts_per_token < 1 || d->experts_per_token > d->experts)
		return err_set(err, ERR_INVAL, "%s: experts_per_token %d outside [1, experts = %d]",
			       what, d->experts_per_token, d->experts);
	if (d->d_expert < 1)
		return err_set(err, ERR_INVAL, "%s: an MoE model needs d_expert >= 1", what);
	if (d->dense_layers >= d->layers)
		return err_set(err, ERR_INVAL, "%s: dense_layers %d leaves no MoE layer (layers %d)",
			       what, d->dense_layers, d->layers);
	int m = d->ffn_matrices;
	d->moe_layers = d->layers - d->dense_layers;
	d->expert_matrix_bytes = (int64_t)d->d_expert * d->row_bytes;
	d->expert_bytes = m * d->expert_matrix_bytes;
	d->experts_bytes = d->expert_bytes * d->experts * d->moe_layers;
	int64_t router = (int64_t)d->d_model * d->experts * d->weight_bytes; /* kept at dtype */
	d->resident_ffn_bytes = d->bundle_bytes * d->d_ffn * d->dense_layers +
				(d->bundle_bytes * d->d_shared + router) * d->moe_layers;
	d->ffn_bytes = d->experts_bytes + d->resident_ffn_bytes;
	double per_row = (double)m * d->d_model;
	double dense = per_row * d->d_ffn * d->dense_layers;
	double shared = (per_row * d->d_shared + (double)d->d_model * d->experts) * d->moe_layers;
	d->params_computed = other_params + dense + shared +
			     per_row * d->d_expert * d->experts * d->moe_layers;
	d->active_params = other_params + dense + shared +
			   per_row * d->d_expert * d->experts_per_token * d->moe_layers;
	return 0;
}

int llm_derive(struct llm_desc *d, const char *what, struct lif_err *err)
{
	if (d->kv_heads == 0)
		d->kv_heads = d->heads;
	if (!d->head_dim && d->d_model % d->heads)
		return err_set(err, ERR_INVAL, "%s: d_model %d is not a multiple of heads %d", what,
			       d->d_model, d->heads);
	if (d->heads % d->kv_heads)
		return err_set(err, ERR_INVAL, "%s: heads %d is not a multiple of kv_heads %d", what,
			       d->heads, d->kv_heads);
	d->ffn_matrices = d->ffn_kind == LLM_FFN_GATED3 ? 3 : 2;
	d->weight_bytes = llm_dtype_bytes(d->dtype);
	double attn = attn_params(d) * d->layers, emb = embed_params(d);
	if (d->weight_bits == 0) {
		d->row_bytes = (int64_t)d->d_model * d->weight_bytes;
		d->attn_bytes = (int64_t)(attn * d->weight_bytes);
	} else {
		d->row_bytes = gemv_bytes(1, d->d_model, d->weight_bits, d->weight_group);
		if (d->row_bytes < 0)
			return err_set(err, ERR_INVAL,
				       "%s: low-bit weights need bits in 1..4 and group 32 or 64 "
				       "(got bits %d, group %d)", what, d->weight_bits, d->weight_group);
		/* q, o: heads * head_dim rows each; k, v: kv_dim rows; all d_model wide
		 * (o counted by its weights); norms at dtype */
		int64_t q_dim = (int64_t)llm_head_dim(d) * d->heads;
		int64_t kv_dim = (int64_t)llm_head_dim(d) * d->kv_heads;
		d->attn_bytes = ((2 * q_dim + 2 * kv_dim) * d->row_bytes +
				 4 * (int64_t)d->d_model * d->weight_bytes) * d->layers;
	}
	d->bundle_bytes = (int64_t)d->ffn_matrices * d->row_bytes;
	d->ffn_bytes = d->bundle_bytes * d->d_ffn * d->layers;
	d->embed_bytes = (int64_t)(emb * d->weight_bytes);
	d->params_computed = attn + emb + (double)d->ffn_matrices * d->d_model * d->d_ffn * d->layers;
	if (moe_derive(d, what, attn + emb, err))
		return err->code;
	d->total_bytes = d->ffn_bytes + d->attn_bytes + d->embed_bytes;
	if ((d->sparsity_first > 0) != (d->sparsity_last > 0))
		return err_set(err, ERR_INVAL, "%s: give both sparsity_first and sparsity_last, or neither",
			       what);
	if (d->sparsity_first > 0 &&
	    fabs(0.5 * (d->sparsity_first + d->sparsity_last) - d->sparsity) > 0.005)
		return err_set(err, ERR_INVAL,
			       "%s: sparsity_first/last average %g but sparsity is %g (the trend must "
			       "keep the mean)", what, 0.5 * (d->sparsity_first + d->sparsity_last),
			       d->sparsity);
	if (d->params > 0 && fabs(d->params_computed / d->params - 1) > 0.05)
		return err_set(err, ERR_INVAL,
			       "%s: declared params %.4g but the shape gives %.4g (more than 5%% apart)",
			       what, d->params, d->params_computed);
	return 0;
}

int llm_load(const char *path, struct llm_desc *out, struct lif_err *err)
{
	struct llm_desc d;
	memset(&d, 0, sizeof d);
	int rc = conf_load(path, llm_opts, &d, err);
	if (!rc)
		rc = llm_derive(&d, path, err);
	if (!rc)
		*out = d;
	return rc;
}

double llm_layer_sparsity(const struct llm_desc *d, int layer)
{
	if (d->sparsity_first <= 0 || d->sparsity_last <= 0 || d->layers < 2)
		return d->sparsity;
	double f = (double)layer / (d->layers - 1);
	return d->sparsity_first + f * (d->sparsity_last - d->sparsity_first);
}
