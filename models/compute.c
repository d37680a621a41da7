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
	if (!(m->kernel_overhead_us >= 0) || !isfinite(m->kernel_overhead_us))
		return bad(key, "kernel_overhead_us", err, "must be >= 0 us", m->kernel_overhead_us);
	if (m->cores < 0 || m->cores > 4096)
		return bad(key, "cores", err, "must be a count in [0, 4096] (0 = not given)", m->cores);
	if (m->threads < 0 || m->threads > 4096)
		return bad(key, "threads", err, "must be a count in [0, 4096] (0 = all cores)",
			   m->threads);
	if (m->n_gemv_bytes != m->n_gemv_rate)
		return bad(key, "gemv_bytes_per_s", err, "needs one rate per gemv_bytes value (values given)",
			   m->n_gemv_rate);
	for (int i = 0; i < m->n_gemv_bytes; i++) {
		if (!(m->gemv_bytes[i] > 0) || !isfinite(m->gemv_bytes[i]) ||
		    (i && !(m->gemv_bytes[i] > m->gemv_bytes[i - 1])))
			return bad(key, "gemv_bytes", err, "sizes must be > 0 and increase",
				   m->gemv_bytes[i]);
		if (!(m->gemv_bytes_per_s[i] > 0) || !isfinite(m->gemv_bytes_per_s[i]))
			return bad(key, "gemv_bytes_per_s", err, "rates must be > 0 bytes/s",
				   m->gemv_bytes_per_s[i]);
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

double compute_stream_bytes_per_s(const struct compute_model *m, int dtype, double bytes)
{
	int n = m->n_gemv_bytes;
	if (n == 0)
		return m->mem_bytes_per_s;
	const double *r = m->gemv_bytes_per_s;
	(void)dtype; /* one table for every dtype (models/compute.h) */
	if (n == 1 || bytes <= m->gemv_bytes[0])
		return r[0];
	if (bytes >= m->gemv_bytes[n - 1])
		return r[n - 1];
	int i = 1;
	while (m->gemv_bytes[i] < bytes)
		i++;
	double f = log(bytes / m->gemv_bytes[i - 1]) / log(m->gemv_bytes[i] / m->gemv_bytes[i - 1]);
	return exp(log(r[i - 1]) + f * (log(r[i]) - log(r[i - 1])));
}

double compute_op_ns(const struct compute_model *m, int dtype, double flops, double bytes)
{
	double bw = compute_stream_bytes_per_s(m, dtype, bytes);
	if (m->batch > 1)
		flops *= m->batch;
	return fmax(flops / m->flops_per_s, bytes / bw) * 1e9 + m->kernel_overhead_us * 1e3;
}

/* Time in ns of `weights` linear weights in one kernel: the measured kernel
 * rate for a low-bit model, else the roofline at the dtype. */
double compute_linear_ns(const struct compute_model *m, const struct llm_desc *d, double weights)
{
	if (weights <= 0)
		return 0;
	if (d->weight_bits > 0) {
		double rate = compute_lowbit_weights_per_s(m, d->weight_bits);
		return (rate > 0 ? weights / rate * 1e9 : 0) + m->kernel_overhead_us * 1e3;
	}
	return compute_op_ns(m, d->dtype, 2 * weights, weights * compute_bytes_per_weight(d));
}

double compute_ffn_layer_ns(const struct compute_model *m, const struct llm_desc *d, int64_t rows)
{
	if (rows <= 0)
		return 0;
	/* one kernel per matrix, each rows x d_model weights */
	return d->ffn_matrices * compute_linear_ns(m, d, (double)rows * d->d_model);
}

double compute_pred_layer_ns(const struct compute_model *m, const struct llm_desc *d, int rank)
{
	if (rank <= 0)
		return 0;
	double wb = d->weight_bytes, a = (double)d->d_model * rank, b = (double)rank * d->d_ffn;
	return compute_op_ns(m, d->dtype, 2 * a, a * wb) + compute_op_ns(m, d->dtype, 2 * b, b * wb);
}

void compute_dense_cost(const struct compute_model *m, const struct llm_desc *d,
			int64_t context_tokens, struct compute_cost *out)
{
	out->attn_ns = out->proj_ns = out->ctx_ns = out->norm_ns = out->head_ns = 0;
	out->kernels = 0;
	if (m->dense_ms_per_token > 0) {
		out->dense_ns = m->dense_ms_per_token * 1e6;
		return;
	}
	const double wb = d->weight_bytes, L = d->layers;
	const double ctx = context_tokens > 0 ? (double)context_tokens : 0;
	const double q_dim = (double)llm_head_dim(d) * d->heads;
	const double kv_dim = (double)llm_head_dim(d) * d->kv_heads;
	/* q and o: q_dim x d_model; k and v: kv_dim x d_model */
	double proj = 2 * compute_linear_ns(m, d, q_dim * d->d_model) +
		      2 * compute_linear_ns(m, d, kv_dim * d->d_model);
	/* scores q.K and the weighted sum of V: each reads ctx x kv_dim of the cache
	 * and does 2 flops per head per cached element (2 * ctx * q_dim) */
	double ctx_ns = ctx > 0 ? 2 * compute_op_ns(m, d->dtype, 2 * ctx * q_dim, ctx * kv_dim * wb) : 0;
	/* two norms: weight and bias, d_model each; ~4 flops per element */
	double norm = 2 * compute_op_ns(m, d->dtype, 4.0 * d->d_model, 2.0 * d->d_model * wb);
	out->proj_ns = L * proj, out->ctx_ns = L * ctx_ns, out->norm_ns = L * norm;
	out->attn_ns = out->proj_ns + out->ctx_ns + out->norm_ns;
	/* embeddings (one token row, one position row) and the output head */
	double h_weights = (double)d->vocab * d->d_model;
	double rows_bytes = (d->max_pos > 0 ? 2.0 : 1.0) * d->d_model * wb;
	out->head_ns = compute_op_ns(m, d->dtype, 0, rows_bytes) +
		       compute_op_ns(m, d->dtype, 2 * h_weights, h_weights * wb);
	out->kernels = L * (4 + (ctx > 0 ? 2 : 0) + 2) + 2;
	out->dense_ns = out->attn_ns + out->head_ns;
}

double compute_dense_ns(const struct compute_model *m, const struct llm_desc *d,
			int64_t context_tokens, double *attn_ns, double *head_ns)
{
	struct compute_cost c;
	compute_dense_cost(m, d, context_tokens, &c);
	if (attn_ns)
		*attn_ns = c.attn_ns;
	if (head_ns)
		*head_ns = c.head_ns;
	return c.dense_ns;
}

int compute_token_cost(const struct compute_model *m, const struct llm_desc *d,
		       const int64_t *ffn_rows, const int *pred_rank, int n_layers,
		       int64_t context_tokens, struct compute_cost *out, struct lif_err *err)
{
	if (n_layers != d->layers)
		return err_set(err, ERR_INVAL, "compute: %d layers of FFN rows for %s, which has %d",
			       n_layers, d->name, d->layers);
	if (compute_check_model(m, d, err))
		return err->code;
	double ffn = 0, pred = 0, kernels = 0;
	for (int l = 0; l < n_layers; l++) {
		if (ffn_rows[l] < 0 || ffn_rows[l] > d->d_ffn)
			return err_set(err, ERR_RANGE,
				       "compute: layer %d: %lld FFN rows is outside [0, %d]", l,
				       (long long)ffn_rows[l], d->d_ffn);
		ffn += compute_ffn_layer_ns(m, d, ffn_rows[l]);
		kernels += ffn_rows[l] > 0 ? d->ffn_matrices : 0;
		if (pred_rank && pred_rank[l] > 0) {
			pred += compute_pred_layer_ns(m, d, pred_rank[l]);
			kernels += 2;
		}
	}
	compute_dense_cost(m, d, context_tokens, out);
	out->ffn_ns = ffn;
	out->pred_ns = pred;
	out->kernels += kernels;
	out->total_ns = out->dense_ns + ffn + pred;
	return 0;
}

int compute_cpu_contended(const struct compute_model *m)
{
	return m->cores > 0 && (m->threads == 0 || m->threads >= m->cores);
}
