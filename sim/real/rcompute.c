/* rcompute: the replay's real compute (see sim/real/rcompute.h). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/real/rcompute.h"

/* One layer's dense weights (a set; layer l uses set l % pool). */
struct dset {
	float *wq, *wk, *wv, *wo; /* (q_dim, d), (kv_dim, d), (kv_dim, d), (d, q_dim) */
	float *ln;                /* 4 x d: two norms' weight and bias */
	float *pa, *pb;           /* predictor: (rmax, d), (d_ffn, rmax) */
};

struct rcompute {
	struct llm_desc m;
	int L, d, qd, kvd, hd, pool, rmax;
	int *rank;                /* (L) */
	int64_t max_ctx;
	struct dset *set;
	float *emb, *pos;         /* (vocab, d) tied with the head; (max_pos, d) or NULL */
	float **kc, **vc;         /* per layer (max_ctx, kv_dim) */
	float *x, *h, *q, *k, *v, *att, *o, *s, *a, *u, *pr, *pp, *logits, *y;
};

static float *falloc(size_t n, uint64_t seed, float scale)
{
	float *p = malloc((n ? n : 1) * sizeof *p);
	/* a fixed pattern in [-scale, scale): touches every page now, no
	 * denormals, no infinities */
	for (size_t i = 0; p && i < n; i++) {
		uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ULL ^ seed;
		z ^= z >> 29;
		p[i] = scale * ((float)(z & 0xffff) / 32768.0f - 1.0f);
	}
	return p;
}

void rcompute_free(struct rcompute *c)
{
	if (!c)
		return;
	for (int i = 0; c->set && i < c->pool; i++) {
		struct dset *s = &c->set[i];
		free(s->wq), free(s->wk), free(s->wv), free(s->wo), free(s->ln), free(s->pa), free(s->pb);
	}
	for (int l = 0; l < c->L; l++) {
		if (c->kc)
			free(c->kc[l]);
		if (c->vc)
			free(c->vc[l]);
	}
	free(c->set), free(c->kc), free(c->vc), free(c->rank), free(c->emb), free(c->pos);
	free(c->x), free(c->h), free(c->q), free(c->k), free(c->v), free(c->att), free(c->o);
	free(c->s), free(c->a), free(c->u), free(c->pr), free(c->pp), free(c->logits), free(c->y);
	free(c);
}

int rcompute_pool(const struct rcompute *c) { return c->pool; }

struct rcompute *rcompute_new(const struct llm_desc *m, int64_t max_ctx, const int *pred_rank,
			      int64_t dense_bytes, struct lif_err *err)
{
	if (m->dtype != LLM_FP32 || m->weight_bits) {
		err_set(err, ERR_INVAL, "replay compute runs in fp32 (OpenBLAS sgemv, what calibrate "
			"--compute measures): set [sim] compute_dtype = fp32");
		return NULL;
	}
	struct rcompute *c = calloc(1, sizeof *c);
	if (!c) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	c->m = *m;
	c->L = m->layers, c->d = m->d_model, c->hd = llm_head_dim(m);
	c->qd = c->hd * m->heads, c->kvd = c->hd * m->kv_heads;
	c->max_ctx = max_ctx < 1 ? 1 : max_ctx;
	const size_t d = (size_t)c->d, qd = (size_t)c->qd, kvd = (size_t)c->kvd, F = (size_t)m->d_ffn;
	int ok = (c->rank = calloc((size_t)c->L, sizeof *c->rank)) != NULL;
	for (int l = 0; ok && l < c->L; l++) {
		c->rank[l] = pred_rank ? pred_rank[l] : 0;
		if (c->rank[l] > c->rmax)
			c->rmax = c->rank[l];
	}
	const double set_bytes = 4.0 * (2 * qd * d + 2 * kvd * d + 4 * d + (double)c->rmax * (d + F));
	const double cap = dense_bytes > 0 ? (double)dense_bytes : (double)(1LL << 30);
	c->pool = (int)fmin(c->L, fmax(2, floor(cap / set_bytes)));
	if (c->pool > c->L)
		c->pool = c->L;
	ok = ok && (c->set = calloc((size_t)c->pool, sizeof *c->set)) != NULL;
	const float sw = 1.0f / sqrtf((float)c->d);
	for (int i = 0; ok && i < c->pool; i++) {
		struct dset *s = &c->set[i];
		uint64_t k = (uint64_t)i << 8;
		s->wq = falloc(qd * d, k + 1, sw), s->wk = falloc(kvd * d, k + 2, sw);
		s->wv = falloc(kvd * d, k + 3, sw), s->wo = falloc(d * qd, k + 4, sw);
		s->ln = falloc(4 * d, k + 5, 1.0f);
		ok = s->wq && s->wk && s->wv && s->wo && s->ln;
		if (ok && c->rmax) {
			s->pa = falloc((size_t)c->rmax * d, k + 6, sw), s->pb = falloc(F * c->rmax, k + 7, sw);
			ok = s->pa && s->pb;
		}
	}
	ok = ok && (c->kc = calloc((size_t)c->L, sizeof *c->kc)) && (c->vc = calloc((size_t)c->L, sizeof *c->vc));
	for (int l = 0; ok && l < c->L; l++) {
		c->kc[l] = falloc((size_t)c->max_ctx * kvd, 100 + 2 * l, 1.0f);
		c->vc[l] = falloc((size_t)c->max_ctx * kvd, 101 + 2 * l, 1.0f);
		ok = c->kc[l] && c->vc[l];
	}
	if (ok) {
		c->emb = falloc((size_t)m->vocab * d, 7, 0.05f);
		c->pos = m->max_pos > 0 ? falloc((size_t)m->max_pos * d, 8, 0.05f) : NULL;
		c->x = falloc(d, 9, 0.1f), c->h = falloc(d, 10, 0), c->y = falloc(d, 11, 0);
		c->q = falloc(qd, 12, 0), c->k = falloc(kvd, 13, 0), c->v = falloc(kvd, 14, 0);
		c->att = falloc(qd, 15, 0), c->o = falloc(d, 16, 0), c->s = falloc((size_t)c->max_ctx, 17, 0);
		c->a = falloc(F, 18, 0), c->u = falloc(F, 19, 0), c->pr = falloc((size_t)c->rmax, 20, 0);
		c->pp = falloc(F, 21, 0), c->logits = falloc((size_t)m->vocab, 22, 0);
		ok = c->emb && (c->pos || m->max_pos <= 0) && c->x && c->h && c->y && c->q && c->k && c->v &&
		     c->att && c->o && c->s && c->a && c->u && c->pr && c->pp && c->logits;
	}
	if (!ok) {
		rcompute_free(c);
		err_set(err, ERR_NOMEM, "out of memory for the replay's compute weights (%s)", m->name);
		return NULL;
	}
	return c;
}

void rcompute_begin(struct rcompute *c, int64_t tok)
{
	const size_t d = (size_t)c->d;
	memcpy(c->x, c->emb + (size_t)(tok % c->m.vocab) * d, d * sizeof *c->x);
	if (c->pos)
		cblas_saxpy(c->d, 1.0f, c->pos + (size_t)(tok % c->m.max_pos) * d, 1, c->x, 1);
}

void rcompute_end(struct rcompute *c)
{
	cblas_sgemv(CblasRowMajor, CblasNoTrans, c->m.vocab, c->d, 1.0f, c->emb, c->d, c->x, 1, 0.0f,
		    c->logits, 1);
}

/* h = layer norm of x with weight w and bias b. */
static void norm(const float *x, const float *w, const float *b, float *h, int d)
{
	double mean = 0, var = 0;
	for (int i = 0; i < d; i++)
		mean += x[i];
	mean /= d;
	for (int i = 0; i < d; i++)
		var += (x[i] - mean) * (x[i] - mean);
	const float inv = (float)(1.0 / sqrt(var / d + 1e-5));
	for (int i = 0; i < d; i++)
		h[i] = (float)(x[i] - mean) * inv * w[i] + b[i];
}

/* Attention of q over ctx cached tokens of layer l into att. */
static void attend(struct rcompute *c, int l, int64_t ctx)
{
	const int hd = c->hd, group = c->m.heads / c->m.kv_heads;
	const float scale = 1.0f / sqrtf((float)hd);
	for (int h = 0; h < c->m.heads; h++) {
		const int kvh = h / group;
		cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)ctx, hd, scale, c->kc[l] + (size_t)kvh * hd,
			    c->kvd, c->q + (size_t)h * hd, 1, 0.0f, c->s, 1);
		float mx = c->s[0], sum = 0;
		for (int64_t t = 1; t < ctx; t++)
			mx = c->s[t] > mx ? c->s[t] : mx;
		for (int64_t t = 0; t < ctx; t++)
			sum += c->s[t] = expf(c->s[t] - mx);
		cblas_sgemv(CblasRowMajor, CblasTrans, (int)ctx, hd, 1.0f / sum, c->vc[l] + (size_t)kvh * hd,
			    c->kvd, c->s, 1, 0.0f, c->att + (size_t)h * hd, 1);
	}
}

void rcompute_ffn(int d, int nm, const float *matrix, int32_t rows, const float *h, float *a,
		  float *u, float *y)
{
	const int ld = nm * d;
	const float *up = matrix + (nm == 3 ? d : 0), *down = matrix + (size_t)(nm - 1) * d;
	cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, d, 1.0f, up, ld, h, 1, 0.0f, a, 1);
	if (nm == 3) {
		cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, d, 1.0f, matrix, ld, h, 1, 0.0f, u, 1);
		for (int32_t i = 0; i < rows; i++)
			a[i] *= u[i] / (1.0f + expf(-u[i]));
	} else {
		for (int32_t i = 0; i < rows; i++)
			a[i] = a[i] > 0 ? a[i] : 0;
	}
	cblas_sgemv(CblasRowMajor, CblasTrans, rows, d, 1.0f, down, ld, a, 1, 0.0f, y, 1);
}

void rcompute_layer(struct rcompute *c, int layer, int64_t ctx, const float *matrix, int32_t rows)
{
	const struct dset *s = &c->set[layer % c->pool];
	const int d = c->d, F = c->m.d_ffn, nm = c->m.ffn_matrices;
	ctx = ctx > c->max_ctx ? c->max_ctx : ctx;
	norm(c->x, s->ln, s->ln + d, c->h, d);
	cblas_sgemv(CblasRowMajor, CblasNoTrans, c->qd, d, 1.0f, s->wq, d, c->h, 1, 0.0f, c->q, 1);
	cblas_sgemv(CblasRowMajor, CblasNoTrans, c->kvd, d, 1.0f, s->wk, d, c->h, 1, 0.0f, c->k, 1);
	cblas_sgemv(CblasRowMajor, CblasNoTrans, c->kvd, d, 1.0f, s->wv, d, c->h, 1, 0.0f, c->v, 1);
	if (ctx > 0)
		attend(c, layer, ctx);
	cblas_sgemv(CblasRowMajor, CblasNoTrans, d, c->qd, 1.0f, s->wo, c->qd, c->att, 1, 0.0f, c->o, 1);
	cblas_saxpy(d, 1.0f, c->o, 1, c->x, 1);
	norm(c->x, s->ln + 2 * d, s->ln + 3 * d, c->h, d);
	const int r = c->rank[layer];
	if (r > 0) { /* the predictor: (r, d) then (d_ffn, r) */
		cblas_sgemv(CblasRowMajor, CblasNoTrans, r, d, 1.0f, s->pa, d, c->h, 1, 0.0f, c->pr, 1);
		cblas_sgemv(CblasRowMajor, CblasNoTrans, F, r, 1.0f, s->pb, c->rmax, c->pr, 1, 0.0f, c->pp, 1);
	}
	if (rows > 0) { /* the FFN over the matrix's first rows rows */
		rcompute_ffn(d, nm, matrix, rows, c->h, c->a, c->u, c->y);
		cblas_saxpy(d, 1.0f, c->y, 1, c->x, 1);
	}
	/* this token's k and v join the cache (the next token attends to them) */
	if (ctx < c->max_ctx) {
		memcpy(c->kc[layer] + (size_t)ctx * c->kvd, c->k, (size_t)c->kvd * sizeof *c->k);
		memcpy(c->vc[layer] + (size_t)ctx * c->kvd, c->v, (size_t)c->kvd * sizeof *c->v);
	}
}
