#include "models/compute.h"

#include <math.h>

static const char *const kernel_names[] = {[COMPUTE_LUT] = "lut", [COMPUTE_DEQUANT] = "dequant"};

const char *compute_kernel_choice(int i)
{
	int n = (int)(sizeof kernel_names / sizeof *kernel_names);
	return i >= 0 && i < n ? kernel_names[i] : NULL;
}

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
	static const char *const names[] = {"lut_weights_per_s", "dequant_weights_per_s"};
	const double *tab[] = {m->lut_weights_per_s, m->dequant_weights_per_s};
	const int n[] = {m->n_lut, m->n_dequant};
	for (int k = 0; k < 2; k++) {
		if (n[k] != 0 && n[k] != COMPUTE_MAX_BITS)
			return bad(key, names[k], err,
				   "needs one rate per bit width 1, 2, 3, 4 (values given)", n[k]);
		for (int b = 0; b < n[k]; b++)
			if (!(tab[k][b] > 0) || !isfinite(tab[k][b]))
				return bad(key, names[k], err, "rates must be > 0 weights/s",
					   tab[k][b]);
	}
	return 0;
}

double compute_bytes_per_weight(const struct llm_desc *d)
{
	return (double)d->row_bytes / d->d_model;
}

double compute_lowbit_weights_per_s(const struct compute_model *m, int bits)
{
	if (bits < 1 || bits > COMPUTE_MAX_BITS)
		return 0;
	if (m->kernel == COMPUTE_DEQUANT)
		return m->n_dequant == COMPUTE_MAX_BITS ? m->dequant_weights_per_s[bits - 1] : 0;
	return m->n_lut == COMPUTE_MAX_BITS ? m->lut_weights_per_s[bits - 1] : 0;
}

int compute_check_model(const struct compute_model *m, const struct llm_desc *d,
			struct lif_err *err)
{
	if (d->weight_bits == 0 || compute_lowbit_weights_per_s(m, d->weight_bits) > 0)
		return 0;
	const char *k = m->kernel == COMPUTE_DEQUANT ? "dequant" : "lut";
	return err_set(err, ERR_INVAL,
		       "[compute] %s_weights_per_s: missing, but %d-bit weights with kernel = %s "
		       "need the measured kernel speed (lifsim bench-gemv --profile DEVICE.ini "
		       "-o NEW.ini writes it)", k, d->weight_bits, k);
}

/* Time in ns of `weights` linear weights: the measured kernel rate for a
 * low-bit model, else a roofline at the dtype. */
double compute_linear_ns(const struct compute_model *m, const struct llm_desc *d, double weights)
{
	if (d->weight_bits > 0) {
		double rate = compute_lowbit_weights_per_s(m, d->weight_bits);
		return rate > 0 ? weights / rate * 1e9 : 0;
	}
	return fmax(2 * weights / m->flops_per_s,
		    weights * compute_bytes_per_weight(d) / m->mem_bytes_per_s) * 1e9;
}

static double roofline_ns(double flops, double flops_per_s, double bytes, double bytes_per_s)
{
	return fmax(flops / flops_per_s, bytes / bytes_per_s) * 1e9;
}

double compute_ffn_layer_ns(const struct compute_model *m, const struct llm_desc *d, int64_t rows)
{
	if (rows <= 0)
		return 0;
	return compute_linear_ns(m, d, (double)rows * d->ffn_matrices * d->d_model);
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
	double kv_dim = (double)llm_head_dim(d) * d->kv_heads;
	double kv_bytes = 2 * ctx * kv_dim * d->weight_bytes;
	if (d->weight_bits > 0) {
		/* projections by the kernel; KV cache and norms by the roofline */
		double w_lin = (2.0 * llm_head_dim(d) * d->heads + 2 * kv_dim) * d->d_model;
		double n_bytes = 4.0 * d->d_model * d->weight_bytes;
		attn = d->layers * (compute_linear_ns(m, d, w_lin) +
				    roofline_ns(4 * ctx * d->d_model, m->flops_per_s,
						kv_bytes + n_bytes, m->mem_bytes_per_s));
	} else {
		double w_layer = (double)d->attn_bytes / d->weight_bytes / d->layers;
		double a_flops = 2 * w_layer + 4 * ctx * d->d_model;
		double a_bytes = w_layer * d->weight_bytes + kv_bytes;
		attn = d->layers * roofline_ns(a_flops, m->flops_per_s, a_bytes, m->mem_bytes_per_s);
	}
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
	if (compute_check_model(m, d, err))
		return err->code;
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
