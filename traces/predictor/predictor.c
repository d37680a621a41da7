#include "traces/predictor/predictor.h"

#include "traces/h5attr.h"
#include "sim/base/claim.h"

#include <gsl/gsl_cblas.h> /* the CBLAS API; OpenBLAS provides the symbols (linked first) */
#include <errno.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define APPLY_BLOCK_TOKENS 256

struct predictor {
	int layers, d_model, d_ffn, rank;
	double holdout;
	int64_t train_tokens;
	uint64_t seed;
	char model[64];
	char trace[1024];
	int ntrained;
	int *slot;      /* (layers) index into the arrays below, or -1 */
	int *layer_ids; /* (ntrained) ascending */
	float *A;       /* (ntrained, d_model, rank) */
	float *B;       /* (ntrained, rank, d_ffn) */
	float *c;       /* (ntrained, d_ffn) */
};

void predictor_train_opts_default(struct predictor_train_opts *o)
{
	memset(o, 0, sizeof *o);
	o->rank = 64;
	o->holdout = 0.2;
	o->epochs = 20;
	o->batch_tokens = 256;
	o->lr = 1e-2;
	o->ridge = 1e-3;
	o->threads = 1;
}

/* ---------------------------------------------------------------- objects */

static struct predictor *predictor_alloc(int layers, int d_model, int d_ffn, int rank,
					 int ntrained)
{
	struct predictor *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->layers = layers, p->d_model = d_model, p->d_ffn = d_ffn, p->rank = rank;
	p->ntrained = ntrained;
	p->slot = malloc(sizeof *p->slot * layers);
	p->layer_ids = malloc(sizeof *p->layer_ids * (ntrained + 1));
	p->A = malloc(sizeof(float) * ((size_t)ntrained * d_model * rank + 1));
	p->B = malloc(sizeof(float) * ((size_t)ntrained * rank * d_ffn + 1));
	p->c = malloc(sizeof(float) * ((size_t)ntrained * d_ffn + 1));
	if (!p->slot || !p->layer_ids || !p->A || !p->B || !p->c) {
		predictor_free(p);
		return NULL;
	}
	for (int l = 0; l < layers; l++)
		p->slot[l] = -1;
	return p;
}

void predictor_free(struct predictor *p)
{
	if (!p)
		return;
	free(p->slot);
	free(p->layer_ids);
	free(p->A);
	free(p->B);
	free(p->c);
	free(p);
}

void predictor_get_info(const struct predictor *p, struct predictor_info *info)
{
	memset(info, 0, sizeof *info);
	info->layers = p->layers, info->d_model = p->d_model, info->d_ffn = p->d_ffn;
	info->rank = p->rank, info->ntrained = p->ntrained, info->holdout = p->holdout;
	info->train_tokens = p->train_tokens, info->seed = p->seed;
	snprintf(info->model, sizeof info->model, "%s", p->model);
	snprintf(info->trace, sizeof info->trace, "%s", p->trace);
}

int predictor_has_layer(const struct predictor *p, int layer)
{
	return layer >= 0 && layer < p->layers && p->slot[layer] >= 0;
}

/* ---------------------------------------------------------------- applying */

/* Logits z (n, d_ffn) = (x A) B + c for one trained slot; h is scratch (n, rank). */
static void logits(const struct predictor *p, int s, int64_t n, const float *x, float *h,
		   float *z)
{
	const float *A = p->A + (size_t)s * p->d_model * p->rank;
	const float *B = p->B + (size_t)s * p->rank * p->d_ffn;
	const float *c = p->c + (size_t)s * p->d_ffn;
	for (int64_t i = 0; i < n; i++)
		memcpy(z + i * p->d_ffn, c, sizeof *z * p->d_ffn);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, p->rank, p->d_model, 1.0f, x,
		    p->d_model, A, p->rank, 0.0f, h, p->rank);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, p->d_ffn, p->rank, 1.0f, h,
		    p->rank, B, p->d_ffn, 1.0f, z, p->d_ffn);
}

static void pack_bits(const float *z, int d_ffn, uint8_t *bits)
{
	memset(bits, 0, (size_t)trace_row_bytes(d_ffn));
	for (int i = 0; i < d_ffn; i++)
		if (z[i] > 0)
			trace_set_bit(bits, i);
}

int predictor_apply_many(const struct predictor *p, int layer, int64_t n, const float *x,
			 uint8_t *bits)
{
	if (!predictor_has_layer(p, layer))
		return ERR_RANGE;
	int64_t blk = n < APPLY_BLOCK_TOKENS ? n : APPLY_BLOCK_TOKENS;
	float *h = malloc(sizeof *h * ((size_t)blk * p->rank + 1));
	float *z = malloc(sizeof *z * ((size_t)blk * p->d_ffn + 1));
	if (!h || !z) {
		free(h);
		free(z);
		return ERR_NOMEM;
	}
	int rb = trace_row_bytes(p->d_ffn);
	for (int64_t t0 = 0; t0 < n; t0 += blk) {
		int64_t m = n - t0 < blk ? n - t0 : blk;
		logits(p, p->slot[layer], m, x + t0 * p->d_model, h, z);
		for (int64_t i = 0; i < m; i++)
			pack_bits(z + i * p->d_ffn, p->d_ffn, bits + (t0 + i) * rb);
	}
	free(h);
	free(z);
	return 0;
}

int predictor_apply(const struct predictor *p, int layer, const float *x, uint8_t *bits)
{
	return predictor_apply_many(p, layer, 1, x, bits);
}

/* ---------------------------------------------------------------- training */

/* Per-layer training state: standardised inputs and the balanced weights. */
struct fit {
	int64_t n;           /* training tokens */
	int d, f, r;
	float *xs;           /* (n, d) standardised inputs */
	double *mu, *sd;     /* (d) */
	float *wpos, *wneg;  /* (f) balanced loss weights */
	const struct trace *t;
	int layer;
	float *A, *B, *c;    /* the parameters being fitted (into the predictor's arrays) */
};

static void fit_free(struct fit *F)
{
	free(F->xs);
	free(F->mu);
	free(F->sd);
	free(F->wpos);
	free(F->wneg);
}

/* Standardise the layer's inputs and count active rates. */
static int fit_prepare(struct fit *F)
{
	const float *x = F->t->inputs + (size_t)F->layer * F->t->meta.tokens * F->d;
	F->xs = malloc(sizeof(float) * (size_t)F->n * F->d);
	F->mu = calloc(F->d, sizeof(double));
	F->sd = calloc(F->d, sizeof(double));
	F->wpos = malloc(sizeof(float) * F->f);
	F->wneg = malloc(sizeof(float) * F->f);
	if (!F->xs || !F->mu || !F->sd || !F->wpos || !F->wneg)
		return ERR_NOMEM;
	for (int64_t i = 0; i < F->n; i++)
		for (int j = 0; j < F->d; j++)
			F->mu[j] += x[i * F->d + j];
	for (int j = 0; j < F->d; j++)
		F->mu[j] /= (double)F->n;
	for (int64_t i = 0; i < F->n; i++)
		for (int j = 0; j < F->d; j++) {
			double v = x[i * F->d + j] - F->mu[j];
			F->sd[j] += v * v;
		}
	for (int j = 0; j < F->d; j++) {
		F->sd[j] = sqrt(F->sd[j] / (double)F->n);
		if (!(F->sd[j] > 1e-12))
			F->sd[j] = 1;
	}
	for (int64_t i = 0; i < F->n; i++)
		for (int j = 0; j < F->d; j++)
			F->xs[i * F->d + j] = (float)((x[i * F->d + j] - F->mu[j]) / F->sd[j]);
	/* balanced weights: each class of each neuron carries half the loss */
	int64_t *cnt = calloc(F->f, sizeof *cnt);
	if (!cnt)
		return ERR_NOMEM;
	for (int64_t i = 0; i < F->n; i++) {
		const uint8_t *row = trace_active(F->t, F->layer, i);
		for (int k = 0; k < F->f; k++)
			cnt[k] += trace_bit(row, k);
	}
	for (int k = 0; k < F->f; k++) {
		double pr = (double)cnt[k] / (double)F->n;
		F->wpos[k] = cnt[k] ? (float)(0.5 / pr) : 0.0f;
		F->wneg[k] = cnt[k] < F->n ? (float)(0.5 / (1 - pr)) : 0.0f;
	}
	free(cnt);
	return 0;
}

/* Targets +-1 of tokens idx[0..m) (or 0..m when idx is NULL) into y (m, f). */
static void fill_targets(const struct fit *F, const int64_t *idx, int64_t m, float *y)
{
	for (int64_t i = 0; i < m; i++) {
		const uint8_t *row = trace_active(F->t, F->layer, idx ? idx[i] : i);
		for (int k = 0; k < F->f; k++)
			y[i * F->f + k] = trace_bit(row, k) ? 1.0f : -1.0f;
	}
}

/* Lower Cholesky factor of the ridge Gram matrix xs' xs + lambda I, as float (d, d). */
static int gram_cholesky(const struct fit *F, double ridge, float *Lf)
{
	int d = F->d;
	float *g = calloc((size_t)d * d, sizeof *g);
	gsl_matrix *G = gsl_matrix_alloc(d, d);
	int rc = g && G ? 0 : ERR_NOMEM;
	if (!rc) {
		cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, d, (int)F->n, 1.0f, F->xs, d, 0.0f,
			    g, d);
		double lambda = ridge * (double)F->n + 1e-6;
		for (int i = 0; i < d; i++)
			for (int j = 0; j <= i; j++)
				gsl_matrix_set(G, i, j, g[(size_t)i * d + j] + (i == j ? lambda : 0));
		if (gsl_linalg_cholesky_decomp1(G))
			rc = ERR_RANGE;
	}
	for (int i = 0; !rc && i < d; i++)
		for (int j = 0; j < d; j++)
			Lf[(size_t)i * d + j] = j <= i ? (float)gsl_matrix_get(G, i, j) : 0.0f;
	gsl_matrix_free(G);
	free(g);
	return rc;
}

/* Top-r eigenvectors (descending) of the symmetric (d, d) float matrix m:
 * U (d, r) and the eigenvalues ev (r). */
static int top_eigen(const float *m, int d, int r, float *U, double *ev)
{
	gsl_matrix *M = gsl_matrix_alloc(d, d), *V = gsl_matrix_alloc(d, d);
	gsl_vector *e = gsl_vector_alloc(d);
	gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc(d);
	int rc = M && V && e && w ? 0 : ERR_NOMEM;
	for (int i = 0; !rc && i < d; i++)
		for (int j = 0; j < d; j++)
			gsl_matrix_set(M, i, j, m[(size_t)(i > j ? i : j) * d + (i > j ? j : i)]);
	if (!rc && (gsl_eigen_symmv(M, e, V, w) || gsl_eigen_symmv_sort(e, V, GSL_EIGEN_SORT_VAL_DESC)))
		rc = ERR_RANGE;
	for (int k = 0; !rc && k < r; k++) {
		ev[k] = gsl_vector_get(e, k) > 0 ? gsl_vector_get(e, k) : 0;
		for (int i = 0; i < d; i++)
			U[(size_t)i * r + k] = (float)gsl_matrix_get(V, i, k);
	}
	gsl_eigen_symmv_free(w);
	gsl_vector_free(e);
	gsl_matrix_free(V);
	gsl_matrix_free(M);
	return rc;
}

/* Reduced-rank ridge regression of the +-1 targets on xs:
 * with G = L L', C = L^-1 xs' Y, C C' = U S^2 U':  A = L^-T U_r S_r, B = S_r^-1 U_r' C,
 * so xs A B is the best rank-r fit (fit_calibrate then turns it into logits). */
static int fit_init(struct fit *F, double ridge)
{
	int d = F->d, f = F->f, r = F->r, rc = ERR_NOMEM;
	float *L = malloc(sizeof(float) * (size_t)d * d), *C = malloc(sizeof(float) * (size_t)d * f);
	float *y = malloc(sizeof(float) * (size_t)F->n * f), *M = malloc(sizeof(float) * (size_t)d * d);
	double *ev = malloc(sizeof(double) * r);
	if (!L || !C || !y || !M || !ev)
		goto out;
	if ((rc = gram_cholesky(F, ridge, L)))
		goto out;
	fill_targets(F, NULL, F->n, y);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, f, (int)F->n, 1.0f, F->xs, d, y, f,
		    0.0f, C, f);
	cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, d, f, 1.0f, L,
		    d, C, f);
	cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, d, f, 1.0f, C, f, 0.0f, M, d);
	if ((rc = top_eigen(M, d, r, F->A, ev)))
		goto out;
	/* B = S^-1 U' C, then A = L^-T U S (scaled) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, f, d, 1.0f, F->A, r, C, f, 0.0f,
		    F->B, f);
	for (int k = 0; k < r; k++) {
		double s = sqrt(ev[k]);
		float inv = s > 1e-9 ? (float)(1 / s) : 0.0f;
		cblas_sscal(f, inv, F->B + (size_t)k * f, 1);
		cblas_sscal(d, (float)s, F->A + k, r);
	}
	cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, d, r, 1.0f, L, d,
		    F->A, r);
	memset(F->c, 0, sizeof(float) * f);
	rc = 0;
out:
	free(L);
	free(C);
	free(y);
	free(M);
	free(ev);
	return rc;
}

/* Ascending order of floats (for qsort). */
static int cmp_scored(const void *a, const void *b)
{
	float x = ((const float *)a)[0], y = ((const float *)b)[0];
	return (x > y) - (x < y);
}

/* Neuron j's threshold on its fitted score s that minimises the balanced error
 * FN/npos + FP/nneg; sc holds n (score, label) pairs, sorted here. */
static double best_threshold(float *sc, int64_t n, int64_t np)
{
	qsort(sc, (size_t)n, 2 * sizeof *sc, cmp_scored);
	int64_t nn = n - np, fn = 0, tn = 0; /* below the cut: predicted inactive */
	double best = 1.0, thr = (double)sc[0] - 1; /* cut below all: every negative is an FP */
	for (int64_t i = 0; i < n; i++) {
		if (sc[2 * i + 1] > 0)
			fn++;
		else
			tn++;
		if (i + 1 < n && sc[2 * i + 2] == sc[2 * i])
			continue;
		double e = (double)fn / (double)np + (double)(nn - tn) / (double)nn;
		if (e < best)
			best = e, thr = i + 1 < n ? 0.5 * ((double)sc[2 * i] + sc[2 * i + 2]) : sc[2 * i] + 1;
	}
	return thr;
}

/* Turn the least-squares fit s = xs A B into logits kappa_j (s - theta_j):
 * theta_j minimises neuron j's balanced error on the training tokens and
 * kappa_j = (m+ - m-) / v is the linear-discriminant slope (class means m+,
 * m-, pooled within-class variance v). Scales column j of B, sets c_j.
 * With rescale 0 (after gradient training) only the thresholds are reset:
 * c_j = -theta_j of s = xs A B. */
static int fit_calibrate(struct fit *F, int rescale)
{
	int d = F->d, f = F->f, r = F->r;
	float *h = malloc(sizeof(float) * (size_t)F->n * r), *z = malloc(sizeof(float) * (size_t)F->n * f);
	float *sc = malloc(sizeof(float) * 2 * (size_t)F->n);
	int rc = h && z && sc ? 0 : ERR_NOMEM;
	if (!rc) {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)F->n, r, d, 1.0f, F->xs, d,
			    F->A, r, 0.0f, h, r);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)F->n, f, r, 1.0f, h, r,
			    F->B, f, 0.0f, z, f);
	}
	for (int j = 0; !rc && j < f; j++) {
		int64_t np = 0;
		double s[4] = {0}; /* sum+, sum-, sumsq+, sumsq- */
		for (int64_t i = 0; i < F->n; i++) {
			int pos = trace_bit(trace_active(F->t, F->layer, i), j);
			double v = z[i * f + j];
			np += pos;
			s[!pos] += v, s[2 + !pos] += v * v;
			sc[2 * i] = (float)v, sc[2 * i + 1] = (float)pos;
		}
		int64_t nn = F->n - np;
		if (!rescale && (!np || !nn))
			continue;
		if (!np || !nn) { /* never (always) fires in training: a constant no (yes) */
			cblas_sscal(r, 0.0f, F->B + j, f);
			F->c[j] = np ? 10.0f : -10.0f;
			continue;
		}
		double mp = s[0] / np, mn = s[1] / nn;
		double v = (s[2] - np * mp * mp + s[3] - nn * mn * mn) / (double)F->n + 1e-12;
		double kappa = rescale ? fabs(mp - mn) / v : 1, theta = best_threshold(sc, F->n, np);
		cblas_sscal(r, (float)kappa, F->B + j, f);
		F->c[j] = (float)(-kappa * theta);
	}
	free(h);
	free(z);
	free(sc);
	return rc;
}

/* Adam state for one parameter array. */
struct adam {
	float *m, *v;
	size_t n;
};

static void adam_step(struct adam *s, float *w, const float *g, double lr, int step)
{
	const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
	double c1 = 1 - pow(b1, step), c2 = 1 - pow(b2, step);
	for (size_t i = 0; i < s->n; i++) {
		s->m[i] = (float)(b1 * s->m[i] + (1 - b1) * g[i]);
		s->v[i] = (float)(b2 * s->v[i] + (1 - b2) * (double)g[i] * g[i]);
		w[i] -= (float)(lr * (s->m[i] / c1) / (sqrt(s->v[i] / c2) + eps));
	}
}

/* Scratch of one minibatch. */
struct batch {
	float *x, *y, *h, *z, *gh, *gA, *gB, *gc;
};

/* dL/dz of the balanced BCE for targets y (+-1) and logits z, in place in z. */
static void bce_grad(const struct fit *F, int64_t m, const float *y, float *z)
{
	float inv = 1.0f / (float)m;
	for (int64_t i = 0; i < m; i++)
		for (int k = 0; k < F->f; k++) {
			float *zz = z + i * F->f + k;
			float p = 1.0f / (1.0f + expf(-*zz));
			int pos = y[i * F->f + k] > 0;
			*zz = (pos ? F->wpos[k] * (p - 1) : F->wneg[k] * p) * inv;
		}
}

/* One Adam step on the tokens idx[0..m). */
static void fit_step(struct fit *F, const int64_t *idx, int64_t m, struct batch *b,
		     struct adam st[3], double lr, int step)
{
	int d = F->d, f = F->f, r = F->r;
	for (int64_t i = 0; i < m; i++)
		memcpy(b->x + i * d, F->xs + idx[i] * d, sizeof(float) * d);
	fill_targets(F, idx, m, b->y);
	/* forward: h = x A, z = h B + c */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, r, d, 1.0f, b->x, d, F->A, r,
		    0.0f, b->h, r);
	for (int64_t i = 0; i < m; i++)
		memcpy(b->z + i * f, F->c, sizeof(float) * f);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, f, r, 1.0f, b->h, r, F->B, f,
		    1.0f, b->z, f);
	/* backward */
	bce_grad(F, m, b->y, b->z);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, f, (int)m, 1.0f, b->h, r, b->z, f,
		    0.0f, b->gB, f);
	memset(b->gc, 0, sizeof(float) * f);
	for (int64_t i = 0; i < m; i++)
		cblas_saxpy(f, 1.0f, b->z + i * f, 1, b->gc, 1);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, r, f, 1.0f, b->z, f, F->B, f,
		    0.0f, b->gh, r);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, r, (int)m, 1.0f, b->x, d, b->gh, r,
		    0.0f, b->gA, r);
	adam_step(&st[0], F->A, b->gA, lr, step);
	adam_step(&st[1], F->B, b->gB, lr, step);
	adam_step(&st[2], F->c, b->gc, lr, step);
}

static int fit_adam(struct fit *F, const struct predictor_train_opts *o, gsl_rng *rng,
		    long long *done, long long total)
{
	int d = F->d, f = F->f, r = F->r;
	int64_t bt = o->batch_tokens < F->n ? o->batch_tokens : F->n;
	struct batch b;
	struct adam st[3] = {{0, 0, (size_t)d * r}, {0, 0, (size_t)r * f}, {0, 0, (size_t)f}};
	int64_t *perm = malloc(sizeof *perm * F->n);
	b.x = malloc(sizeof(float) * bt * d), b.y = malloc(sizeof(float) * bt * f);
	b.h = malloc(sizeof(float) * bt * r), b.z = malloc(sizeof(float) * bt * f);
	b.gh = malloc(sizeof(float) * bt * r), b.gA = malloc(sizeof(float) * d * r);
	b.gB = malloc(sizeof(float) * (size_t)r * f), b.gc = malloc(sizeof(float) * f);
	int rc = perm && b.x && b.y && b.h && b.z && b.gh && b.gA && b.gB && b.gc ? 0 : ERR_NOMEM;
	for (int k = 0; !rc && k < 3; k++) {
		st[k].m = calloc(st[k].n, sizeof(float));
		st[k].v = calloc(st[k].n, sizeof(float));
		rc = st[k].m && st[k].v ? 0 : ERR_NOMEM;
	}
	for (int64_t i = 0; !rc && i < F->n; i++)
		perm[i] = i;
	int step = 0;
	for (int e = 0; !rc && e < o->epochs; e++) {
		gsl_ran_shuffle(rng, perm, (size_t)F->n, sizeof *perm);
		for (int64_t t0 = 0; t0 < F->n; t0 += bt)
			fit_step(F, perm + t0, F->n - t0 < bt ? F->n - t0 : bt, &b, st, o->lr, ++step);
		if (o->progress)
			o->progress(o->progress_ctx, ++*done, total);
		else
			++*done;
	}
	for (int k = 0; k < 3; k++) {
		free(st[k].m);
		free(st[k].v);
	}
	free(perm);
	free(b.x), free(b.y), free(b.h), free(b.z), free(b.gh), free(b.gA), free(b.gB), free(b.gc);
	return rc;
}

/* Fold the standardisation into the parameters: A' = diag(1/sd) A,
 * c' = c - ((mu/sd) A) B. */
static void fit_fold(struct fit *F)
{
	int d = F->d, f = F->f, r = F->r;
	float *ms = malloc(sizeof(float) * d), *h = malloc(sizeof(float) * r);
	if (!ms || !h) {
		free(ms);
		free(h);
		return;
	}
	for (int j = 0; j < d; j++)
		ms[j] = (float)(F->mu[j] / F->sd[j]);
	cblas_sgemv(CblasRowMajor, CblasTrans, d, r, 1.0f, F->A, r, ms, 1, 0.0f, h, 1);
	cblas_sgemv(CblasRowMajor, CblasTrans, r, f, -1.0f, F->B, f, h, 1, 1.0f, F->c, 1);
	for (int j = 0; j < d; j++)
		cblas_sscal(r, (float)(1 / F->sd[j]), F->A + (size_t)j * r, 1);
	free(ms);
	free(h);
}

static int check_train_opts(const struct trace *t, const struct predictor_train_opts *o,
			    struct lif_err *err)
{
	const struct trace_meta *m = &t->meta;
	if (!t->inputs)
		return err_set(err, ERR_INVAL, "trace has no ffn_inputs dataset (a predictor is "
			       "trained on the FFN inputs: record the trace with "
			       "`lifsim record --inputs`; synth traces have none)");
	if (o->rank < 1 || o->rank > m->d_model || o->rank > PREDICTOR_MAX_RANK)
		return err_set(err, ERR_RANGE, "rank %d outside [1, %d] (d_model of the trace is %d)",
			       o->rank, m->d_model < PREDICTOR_MAX_RANK ? m->d_model : PREDICTOR_MAX_RANK,
			       m->d_model);
	if (!(o->holdout >= 0 && o->holdout < 1))
		return err_set(err, ERR_RANGE, "holdout %g outside [0, 1)", o->holdout);
	int64_t n = (int64_t)floor((double)m->tokens * (1 - o->holdout));
	if (n < 2)
		return err_set(err, ERR_RANGE, "only %lld training tokens (trace has %lld, holdout %g): "
			       "need at least 2", (long long)n, (long long)m->tokens, o->holdout);
	if (o->epochs < 0 || o->batch_tokens < 1 || !(o->lr > 0) || !(o->ridge >= 0))
		return err_set(err, ERR_RANGE, "epochs must be >= 0, batch >= 1, lr > 0 and ridge >= 0");
	for (int i = 0; o->layers && i < o->nlayers; i++)
		if (o->layers[i] < 0 || o->layers[i] >= m->layers ||
		    (i && o->layers[i] <= o->layers[i - 1]))
			return err_set(err, ERR_RANGE, "layer list must be ascending ids in [0, %d)",
				       m->layers);
	return 0;
}

static int train_layer(const struct trace *t, const struct predictor_train_opts *o,
		       gsl_rng *rng, struct predictor *p, int s, int64_t n, long long *done,
		       long long total)
{
	struct fit F = {.n = n, .d = p->d_model, .f = p->d_ffn, .r = p->rank, .t = t,
			.layer = p->layer_ids[s]};
	F.A = p->A + (size_t)s * F.d * F.r;
	F.B = p->B + (size_t)s * F.r * F.f;
	F.c = p->c + (size_t)s * F.f;
	int rc = fit_prepare(&F);
	if (!rc)
		rc = fit_init(&F, o->ridge);
	if (!rc)
		rc = fit_calibrate(&F, 1);
	if (!rc)
		rc = fit_adam(&F, o, rng, done, total);
	if (!rc && o->epochs > 0)
		rc = fit_calibrate(&F, 0);
	if (!rc)
		fit_fold(&F);
	fit_free(&F);
	return rc;
}

/* Train every chosen layer, in parallel over layers (o->threads); layer s
 * shuffles with its own generator seeded by seeds[s]. rcs[s] gets its status. */
static void train_layers(const struct trace *t, const struct predictor_train_opts *o,
			 struct predictor *p, const unsigned long *seeds, int *rcs)
{
	long long done = 0, total = (long long)p->ntrained * (o->epochs > 0 ? o->epochs : 1);
	struct predictor_train_opts lo = *o;
	lo.progress = NULL; /* reported below, serialised */
#pragma omp parallel for schedule(dynamic, 1) num_threads(o->threads > 0 ? o->threads : 1)
	for (int s = 0; s < p->ntrained; s++) {
		gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
		long long mine = 0;
		if (r)
			gsl_rng_set(r, seeds[s]);
		rcs[s] = r ? train_layer(t, &lo, r, p, s, p->train_tokens, &mine, total) : ERR_NOMEM;
		gsl_rng_free(r);
#pragma omp critical(predictor_progress)
		{
			done += o->epochs > 0 ? o->epochs : 1;
			if (o->progress)
				o->progress(o->progress_ctx, done, total);
		}
	}
}

int predictor_train(const struct trace *t, const struct predictor_train_opts *o, gsl_rng *rng,
		    struct predictor **out, struct lif_err *err)
{
	*out = NULL;
	if (check_train_opts(t, o, err))
		return err->code;
	const struct trace_meta *m = &t->meta;
	int nl = o->layers ? o->nlayers : m->layers, rc = 0;
	struct predictor *p = predictor_alloc(m->layers, m->d_model, m->d_ffn, o->rank, nl);
	unsigned long *seeds = malloc(sizeof *seeds * nl);
	int *rcs = calloc(nl, sizeof *rcs);
	if (!p || !seeds || !rcs) {
		rc = err_set(err, ERR_NOMEM, "out of memory for a rank-%d predictor", o->rank);
		goto out;
	}
	p->holdout = o->holdout;
	p->train_tokens = (int64_t)floor((double)m->tokens * (1 - o->holdout));
	p->seed = o->seed;
	snprintf(p->model, sizeof p->model, "%s", m->model);
	snprintf(p->trace, sizeof p->trace, "%s", o->trace_path ? o->trace_path : "");
	for (int s = 0; s < nl; s++) { /* in order, before the parallel section */
		p->layer_ids[s] = o->layers ? o->layers[s] : s;
		p->slot[p->layer_ids[s]] = s;
		seeds[s] = gsl_rng_get(rng);
	}
	train_layers(t, o, p, seeds, rcs);
	for (int s = 0; !rc && s < nl; s++)
		if (rcs[s] == ERR_RANGE)
			rc = err_set(err, ERR_RANGE, "layer %d: the least-squares initialisation failed "
				     "(singular inputs?)", p->layer_ids[s]);
		else if (rcs[s])
			rc = err_set(err, rcs[s], "layer %d: out of memory while training", p->layer_ids[s]);
out:
	free(seeds);
	free(rcs);
	if (rc)
		predictor_free(p);
	else
		*out = p;
	return rc;
}

/* ---------------------------------------------------------------- evaluation */

static void eval_rates(struct predictor_eval_row *r, int d_ffn)
{
	double cells = (double)r->tokens * d_ffn;
	r->true_active = cells > 0 ? (double)(r->tp + r->fn) / cells : 0;
	r->pred_active = cells > 0 ? (double)(r->tp + r->fp) / cells : 0;
	r->recall = r->tp + r->fn ? (double)r->tp / (double)(r->tp + r->fn) : NAN;
	r->precision = r->tp + r->fp ? (double)r->tp / (double)(r->tp + r->fp) : NAN;
	r->fn_rate = r->tp + r->fn ? (double)r->fn / (double)(r->tp + r->fn) : NAN;
	r->fp_rate = r->fp + r->tn ? (double)r->fp / (double)(r->fp + r->tn) : NAN;
}

/* Count the confusion of tokens [t0, t1) of one layer into row. */
static int eval_split(const struct predictor *p, const struct trace *t, int layer, int64_t t0,
		      int64_t t1, uint8_t *pred, struct predictor_eval_row *row)
{
	int rb = t->row_bytes;
	const float *x = t->inputs + ((size_t)layer * t->meta.tokens + t0) * t->meta.d_model;
	int rc = predictor_apply_many(p, layer, t1 - t0, x, pred);
	if (rc)
		return rc;
	for (int64_t i = t0; i < t1; i++) {
		const uint8_t *a = trace_active(t, layer, i), *q = pred + (i - t0) * rb;
		for (int k = 0; k < rb; k++) {
			row->tp += __builtin_popcount(a[k] & q[k]);
			row->fp += __builtin_popcount(~a[k] & q[k] & 0xFF);
			row->fn += __builtin_popcount(a[k] & ~q[k] & 0xFF);
		}
	}
	row->tokens = t1 - t0;
	row->tn = row->tokens * p->d_ffn - row->tp - row->fp - row->fn;
	eval_rates(row, p->d_ffn);
	return 0;
}

int predictor_eval(const struct predictor *p, const struct trace *t, double holdout,
		   struct predictor_eval_row *rows, int *nrows, struct lif_err *err)
{
	const struct trace_meta *m = &t->meta;
	*nrows = 0;
	if (!t->inputs)
		return err_set(err, ERR_INVAL, "trace has no ffn_inputs dataset to evaluate on "
			       "(record the trace with `lifsim record --inputs`)");
	if (m->layers != p->layers || m->d_model != p->d_model || m->d_ffn != p->d_ffn)
		return err_set(err, ERR_INVAL, "predictor is for layers=%d d_model=%d d_ffn=%d but the "
			       "trace has layers=%d d_model=%d d_ffn=%d", p->layers, p->d_model,
			       p->d_ffn, m->layers, m->d_model, m->d_ffn);
	if (!(holdout > 0 && holdout <= 1))
		return err_set(err, ERR_RANGE, "holdout %g outside (0, 1]", holdout);
	int64_t cut = (int64_t)floor((double)m->tokens * (1 - holdout));
	uint8_t *pred = malloc((size_t)(m->tokens + 1) * t->row_bytes);
	if (!pred)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (int s = 0; s < p->ntrained; s++)
		for (int split = 0; split < 2; split++) {
			int64_t t0 = split ? cut : 0, t1 = split ? m->tokens : cut;
			if (t1 <= t0)
				continue;
			struct predictor_eval_row *r = &rows[(*nrows)++];
			memset(r, 0, sizeof *r);
			r->layer = p->layer_ids[s], r->split = split;
			if (eval_split(p, t, r->layer, t0, t1, pred, r)) {
				free(pred);
				return err_set(err, ERR_NOMEM, "out of memory");
			}
		}
	free(pred);
	return 0;
}

/* ---------------------------------------------------------------- layer lists */

int predictor_parse_layers(const char *s, int layers, int *out, int *n, struct lif_err *err)
{
	char *seen = calloc(layers, 1);
	if (!seen)
		return err_set(err, ERR_NOMEM, "out of memory");
	const char *q = s;
	int rc = 0;
	while (!rc && *q) {
		char *end;
		long a = strtol(q, &end, 10), b = a;
		if (end == q)
			rc = err_set(err, ERR_INVAL, "layer list '%s': expected a number at '%s'", s, q);
		else if (*end == '-') {
			const char *q2 = end + 1;
			b = strtol(q2, &end, 10);
			if (end == q2)
				rc = err_set(err, ERR_INVAL, "layer list '%s': bad range", s);
		}
		if (!rc && (a < 0 || b >= layers || a > b))
			rc = err_set(err, ERR_RANGE, "layer list '%s': %ld-%ld is not within [0, %d)", s,
				     a, b, layers);
		for (long l = a; !rc && l <= b; l++)
			seen[l] = 1;
		if (!rc && *end && *end != ',')
			rc = err_set(err, ERR_INVAL, "layer list '%s': unexpected '%c'", s, *end);
		q = *end ? end + 1 : end;
	}
	*n = 0;
	for (int l = 0; !rc && l < layers; l++)
		if (seen[l])
			out[(*n)++] = l;
	if (!rc && !*n)
		rc = err_set(err, ERR_INVAL, "layer list '%s' is empty", s);
	free(seen);
	return rc;
}

/* ---------------------------------------------------------------- the file */

/* A dataset chunked by its first dimension (one trained layer per chunk) with
 * HDF5's Fletcher32 checksum on every chunk (schema v2). */
static int put_dataset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank,
		       const hsize_t *dims, const void *v)
{
	hsize_t chunk[3] = {1, rank > 1 ? dims[1] : 1, rank > 2 ? dims[2] : 1};
	if (rank == 1)
		chunk[0] = dims[0];
	hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (dcpl >= 0 && (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0)) {
		H5Pclose(dcpl);
		dcpl = H5I_INVALID_HID;
	}
	hid_t d = dcpl < 0 ? H5I_INVALID_HID : H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	if (dcpl >= 0)
		H5Pclose(dcpl);
	herr_t rc = d < 0 ? -1 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
	if (d >= 0)
		H5Dclose(d);
	H5Sclose(sp);
	return rc < 0 ? -1 : 0;
}

static int write_file(const struct predictor *p, hid_t f)
{
	int v = PREDICTOR_SCHEMA_VERSION, rc = 0;
	int32_t dims[4] = {p->layers, p->d_model, p->d_ffn, p->rank};
	hsize_t n = (hsize_t)p->ntrained;
	hsize_t da[3] = {n, (hsize_t)p->d_model, (hsize_t)p->rank};
	hsize_t db[3] = {n, (hsize_t)p->rank, (hsize_t)p->d_ffn}, dc[2] = {n, (hsize_t)p->d_ffn};
	rc |= h5attr_put_str(f, "schema", PREDICTOR_SCHEMA);
	rc |= h5attr_put(f, "schema_version", H5T_NATIVE_INT, 0, &v);
	rc |= h5attr_put(f, "layers", H5T_NATIVE_INT32, 0, &dims[0]);
	rc |= h5attr_put(f, "d_model", H5T_NATIVE_INT32, 0, &dims[1]);
	rc |= h5attr_put(f, "d_ffn", H5T_NATIVE_INT32, 0, &dims[2]);
	rc |= h5attr_put(f, "rank", H5T_NATIVE_INT32, 0, &dims[3]);
	rc |= h5attr_put(f, "holdout", H5T_NATIVE_DOUBLE, 0, &p->holdout);
	rc |= h5attr_put(f, "train_tokens", H5T_NATIVE_INT64, 0, &p->train_tokens);
	rc |= h5attr_put(f, "seed", H5T_NATIVE_UINT64, 0, &p->seed);
	rc |= h5attr_put_str(f, "model", p->model);
	rc |= h5attr_put_str(f, "trace", p->trace);
	rc |= h5attr_put_str(f, "decision", "active if sigmoid((x A) B + c) > 0.5");
	rc |= put_dataset(f, "layer_ids", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &n, p->layer_ids);
	rc |= put_dataset(f, "A", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, da, p->A);
	rc |= put_dataset(f, "B", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, db, p->B);
	rc |= put_dataset(f, "c", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dc, p->c);
	return rc;
}

int predictor_save(const struct predictor *p, const char *path, struct lif_err *err)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	hid_t f = h5attr_create(tmp, 0);
	if (f < 0)
		return err_set(err, ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
	int bad = write_file(p, f);
	if (h5attr_close_written(f, NULL, 0, bad, tmp)) {
		int e = errno;
		unlink(tmp);
		return err_set(err, ERR_IO, "%s: cannot write the predictor: %s", tmp,
			       h5attr_why(e));
	}
	if (rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		return err_set(err, ERR_IO, "%s: cannot rename into place: %s", path, strerror(e));
	}
	return 0;
}

/* Read a scalar numeric attribute; -1 if absent or not one number. */

/* Read dataset name of exactly dims (rank) and class cls into v. */
static int get_dataset(hid_t f, const char *path, int version, const char *name, int rank,
		       const hsize_t *want, H5T_class_t cls, hid_t mtype, void *v,
		       struct lif_err *err)
{
	hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
	if (d < 0)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' is missing", path, name);
	hsize_t dims[4] = {0};
	hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
	int ok = H5Sget_simple_extent_ndims(sp) == rank && H5Tget_class(t) == cls;
	if (ok)
		H5Sget_simple_extent_dims(sp, dims, NULL);
	for (int i = 0; ok && i < rank; i++)
		ok = dims[i] == want[i];
	H5Tclose(t);
	H5Sclose(sp);
	int rc = 0;
	if (!ok) {
		char shape[96] = "";
		for (int i = 0, o = 0; i < rank; i++)
			o += snprintf(shape + o, sizeof shape - o, "%s%llu", i ? "," : "",
				      (unsigned long long)want[i]);
		rc = err_set(err, ERR_FORMAT, "%s: dataset '%s' does not have the expected type and "
			     "shape [%s]", path, name, shape);
	} else if (version >= 2 && !h5attr_has_checksum(d)) {
		rc = err_set(err, ERR_FORMAT, "%s: dataset '%s' carries no checksum (schema version "
			     "%d requires the Fletcher32 filter)", path, name, version);
	} else if (h5attr_check_stored(d, path, name, err)) {
		rc = ERR_FORMAT;
	} else if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
		rc = err_set(err, ERR_FORMAT, "%s: dataset '%s' is corrupt (a checksum mismatch or "
			     "truncated data)", path, name);
	}
	H5Dclose(d);
	return rc;
}

static int read_header(hid_t f, const char *path, int32_t dims[5], int *version,
		       struct lif_err *err)
{
	char schema[64];
	int64_t v, dm[4];
	if (h5attr_get_str(f, "schema", schema, sizeof schema) || strcmp(schema, PREDICTOR_SCHEMA))
		return err_set(err, ERR_FORMAT, "%s: not a lifsim predictor (schema attribute is not "
			       "'%s')", path, PREDICTOR_SCHEMA);
	if (h5attr_get(f, "schema_version", H5T_NATIVE_INT64, 0, &v))
		return err_set(err, ERR_FORMAT, "%s: missing schema_version attribute", path);
	if (v < 1 || v > PREDICTOR_SCHEMA_VERSION)
		return err_set(err, ERR_FORMAT, "%s: predictor schema version %lld, this lifsim "
			       "reads 1 to %d", path, (long long)v, PREDICTOR_SCHEMA_VERSION);
	*version = (int)v;
	if (h5attr_get_int(f, path, "layers", 1, TRACE_MAX_LAYERS, &dm[0], err) ||
	    h5attr_get_int(f, path, "d_model", 1, TRACE_MAX_DMODEL, &dm[1], err) ||
	    h5attr_get_int(f, path, "d_ffn", 1, TRACE_MAX_DFFN, &dm[2], err) ||
	    h5attr_get_int(f, path, "rank", 1, PREDICTOR_MAX_RANK, &dm[3], err))
		return ERR_FORMAT;
	for (int i = 0; i < 4; i++)
		dims[i] = (int32_t)dm[i];
	if (dims[3] > dims[1])
		return err_set(err, ERR_FORMAT, "%s: rank %d exceeds d_model %d", path, dims[3],
			       dims[1]);
	hid_t d = H5Dopen2(f, "layer_ids", H5P_DEFAULT);
	if (d < 0)
		return err_set(err, ERR_FORMAT, "%s: dataset 'layer_ids' is missing", path);
	hid_t sp = H5Dget_space(d);
	hsize_t n = 0;
	int ok = H5Sget_simple_extent_ndims(sp) == 1;
	if (ok)
		H5Sget_simple_extent_dims(sp, &n, NULL);
	H5Sclose(sp);
	H5Dclose(d);
	if (!ok || n < 1 || n > (hsize_t)dims[0])
		return err_set(err, ERR_FORMAT, "%s: dataset 'layer_ids' must list 1 to %d layers",
			       path, dims[0]);
	dims[4] = (int32_t)n;
	return 0;
}

static int check_values(struct predictor *p, const char *path, struct lif_err *err)
{
	for (int s = 0; s < p->ntrained; s++) {
		int l = p->layer_ids[s];
		if (l < 0 || l >= p->layers || (s && l <= p->layer_ids[s - 1]))
			return err_set(err, ERR_FORMAT, "%s: layer_ids must be ascending ids in [0, %d)",
				       path, p->layers);
		p->slot[l] = s;
	}
	size_t na = (size_t)p->ntrained * p->d_model * p->rank;
	size_t nb = (size_t)p->ntrained * p->rank * p->d_ffn, nc = (size_t)p->ntrained * p->d_ffn;
	for (size_t i = 0; i < na; i++)
		if (!isfinite(p->A[i]))
			return err_set(err, ERR_FORMAT, "%s: dataset 'A' holds a non-finite value", path);
	for (size_t i = 0; i < nb; i++)
		if (!isfinite(p->B[i]))
			return err_set(err, ERR_FORMAT, "%s: dataset 'B' holds a non-finite value", path);
	for (size_t i = 0; i < nc; i++)
		if (!isfinite(p->c[i]))
			return err_set(err, ERR_FORMAT, "%s: dataset 'c' holds a non-finite value", path);
	return 0;
}

static int read_body(hid_t f, const char *path, int v, struct predictor *p, struct lif_err *err)
{
	hsize_t n = (hsize_t)p->ntrained;
	hsize_t da[3] = {n, (hsize_t)p->d_model, (hsize_t)p->rank};
	hsize_t db[3] = {n, (hsize_t)p->rank, (hsize_t)p->d_ffn}, dc[2] = {n, (hsize_t)p->d_ffn};
	if (get_dataset(f, path, v, "layer_ids", 1, &n, H5T_INTEGER, H5T_NATIVE_INT, p->layer_ids, err) ||
	    get_dataset(f, path, v, "A", 3, da, H5T_FLOAT, H5T_NATIVE_FLOAT, p->A, err) ||
	    get_dataset(f, path, v, "B", 3, db, H5T_FLOAT, H5T_NATIVE_FLOAT, p->B, err) ||
	    get_dataset(f, path, v, "c", 2, dc, H5T_FLOAT, H5T_NATIVE_FLOAT, p->c, err))
		return ERR_FORMAT;
	h5attr_get(f, "holdout", H5T_NATIVE_DOUBLE, 0, &p->holdout);
	h5attr_get(f, "train_tokens", H5T_NATIVE_INT64, 0, &p->train_tokens);
	h5attr_get(f, "seed", H5T_NATIVE_UINT64, 0, &p->seed);
	h5attr_get_str(f, "model", p->model, sizeof p->model);
	h5attr_get_str(f, "trace", p->trace, sizeof p->trace);
	return check_values(p, path, err);
}

/* The memory a predictor of dims (layers, d_model, d_ffn, rank, trained
 * layers) takes, against what the machine has. */
static int predictor_claim(const char *path, const int32_t dims[5], struct lif_err *err)
{
	size_t n = (size_t)dims[4], a, b, c, total = 0;
	char what[160];
	snprintf(what, sizeof what, "a rank-%d predictor of %d layers x %d x %d", dims[3], dims[4],
		 dims[1], dims[2]);
	if (claim_mul3(&a, n, (size_t)dims[1], (size_t)dims[3]) ||
	    claim_mul3(&b, n, (size_t)dims[3], (size_t)dims[2]) ||
	    claim_mul(&c, n, (size_t)dims[2]) || claim_add(&total, a) || claim_add(&total, b) ||
	    claim_add(&total, c) || claim_mul(&total, total, sizeof(float)))
		return err_set(err, ERR_NOMEM, "%s: %s overflows the address space", path, what);
	return claim_memory(path, what, total, err);
}

static struct predictor *load_in_process(const char *path, struct lif_err *err);

static int load_probe(const char *path, void *arg, struct lif_err *err)
{
	struct predictor *p = load_in_process(path, err);
	(void)arg;
	predictor_free(p);
	return p ? 0 : ERR_FORMAT;
}

struct predictor *predictor_load(const char *path, struct lif_err *err)
{
	/* v1 files (HDF5's old format, no metadata checksums) are read in a
	 * child process first: see h5attr_isolate */
	int sb = h5attr_superblock_version(path);
	if (sb >= 0 && sb < 2 && h5attr_isolate(path, load_probe, NULL, 0, err))
		return NULL;
	return load_in_process(path, err);
}

static struct predictor *load_in_process(const char *path, struct lif_err *err)
{
	hid_t f = h5attr_open_readonly(path, err);
	if (f < 0) {
		return NULL;
	}
	int32_t dims[5] = {0};
	int version = 0;
	struct predictor *p = NULL;
	if (!read_header(f, path, dims, &version, err) && !predictor_claim(path, dims, err)) {
		p = predictor_alloc(dims[0], dims[1], dims[2], dims[3], dims[4]);
		if (!p)
			err_set(err, ERR_NOMEM, "%s: out of memory", path);
		else if (read_body(f, path, version, p, err)) {
			predictor_free(p);
			p = NULL;
		}
	}
	H5Fclose(f);
	return p;
}
