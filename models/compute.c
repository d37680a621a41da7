#include "models/compute.h"

#include <math.h>

static int bad(const char **key, const char *name, struct lif_err *err, const char *what,
	       double v)
{
	*key = name;
	return err_set(err, ERR_RANGE, "[compute] %s: %s (got %g)", name, what, v);
}

int compute_check(const struct compute_model *m, const char **key, struct lif_err *err)
{
	if (!(m->flops_per_s > 0) || !isfinite(m->flops_per_s))
		return bad(key, "flops_per_s", err, "must be a rate > 0", m->flops_per_s);
	if (!(m->mem_bytes_per_s > 0) || !isfinite(m->mem_bytes_per_s))
		return bad(key, "mem_bytes_per_s", err, "must be a rate > 0", m->mem_bytes_per_s);
	if (!(m->dense_ms_per_token >= 0) || !isfinite(m->dense_ms_per_token))
		return bad(key, "dense_ms_per_token", err, "must be >= 0 (0 = roofline)",
			   m->dense_ms_per_token);
	if (!(m->lowbit_bits >= 0 && m->lowbit_bits <= 32))
		return bad(key, "lowbit_bits", err, "must be in [0, 32] (0 = the model's dtype)",
			   m->lowbit_bits);
	if (!(m->lowbit_flops_per_s >= 0) || !isfinite(m->lowbit_flops_per_s))
		return bad(key, "lowbit_flops_per_s", err, "must be a rate >= 0 (0 = flops_per_s)",
			   m->lowbit_flops_per_s);
	return 0;
}

double compute_bytes_per_weight(const struct compute_model *m, const struct llm_desc *d)
{
	return m->lowbit_bits > 0 ? m->lowbit_bits / 8.0 : (double)d->weight_bytes;
}

/* The ceiling for linear (attention / FFN) weights. */
static double linear_flops_per_s(const struct compute_model *m)
{
	return m->lowbit_bits > 0 && m->lowbit_flops_per_s > 0 ? m->lowbit_flops_per_s
								 : m->flops_per_s;
}

static double roofline_ns(double flops, double flops_per_s, double bytes, double bytes_per_s)
{
	return fmax(flops / flops_per_s, bytes / bytes_per_s) * 1e9;
}

double compute_ffn_layer_ns(const struct compute_model *m, const struct llm_desc *d, int64_t rows)
{
	if (rows <= 0)
		return 0;
	double weights = (double)rows * d->ffn_matrices * d->d_model;
	return roofline_ns(2 * weights, linear_flops_per_s(m),
			   weights * compute_bytes_per_weight(m, d), m->mem_bytes_per_s);
}

double compute_dense_ns(const struct compute_model *m, const struct llm_desc *d,
			int64_t context_tokens, double *attn_ns, double *head_ns)
{
	double attn = 0, head = 0;
	if (m->dense_ms_per_token > 0) {
		if (attn_ns)
			*attn_ns = 0;
		if (head_ns)
			*head_ns = 0;
		return m->dense_ms_per_token * 1e6;
	}
	/* attention: projection weights + KV cache, per layer */
	double ctx = context_tokens > 0 ? (double)context_tokens : 0;
	double w_layer = (double)d->attn_bytes / d->weight_bytes / d->layers;
	double kv_dim = (double)d->d_model / d->heads * d->kv_heads;
	double kv_bytes = 2 * ctx * kv_dim * d->weight_bytes;
	double a_flops = 2 * w_layer + 4 * ctx * d->d_model;
	double a_bytes = w_layer * compute_bytes_per_weight(m, d) + kv_bytes;
	attn = d->layers * roofline_ns(a_flops, linear_flops_per_s(m), a_bytes, m->mem_bytes_per_s);
	/* embeddings (one token row, one position row) and the output head */
	double h_weights = (double)d->vocab * d->d_model;
	double rows_bytes = (d->max_pos > 0 ? 2.0 : 1.0) * d->d_model * d->weight_bytes;
	head = roofline_ns(2 * h_weights, m->flops_per_s, h_weights * d->weight_bytes + rows_bytes,
			   m->mem_bytes_per_s);
	if (attn_ns)
		*attn_ns = attn;
	if (head_ns)
		*head_ns = head;
	return attn + head;
}

int compute_token_cost(const struct compute_model *m, const struct llm_desc *d,
		       const int64_t *ffn_rows, int n_layers, int64_t context_tokens,
		       struct compute_cost *out, struct lif_err *err)
{
	if (n_layers != d->layers)
		return err_set(err, ERR_INVAL, "compute: %d layers of FFN rows for %s, which has %d",
			       n_layers, d->name, d->layers);
	double ffn = 0;
	for (int l = 0; l < n_layers; l++) {
		if (ffn_rows[l] < 0 || ffn_rows[l] > d->d_ffn)
			return err_set(err, ERR_RANGE,
				       "compute: layer %d: %lld FFN rows is outside [0, %d]", l,
				       (long long)ffn_rows[l], d->d_ffn);
		ffn += compute_ffn_layer_ns(m, d, ffn_rows[l]);
	}
	out->dense_ns = compute_dense_ns(m, d, context_tokens, &out->attn_ns, &out->head_ns);
	out->ffn_ns = ffn;
	out->total_ns = out->dense_ns + ffn;
	return 0;
}
