#include "traces/synth.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base/rng.h"

#define BLOCK_TOKENS 64

#define O(f) CONF_OFF(struct synth_params, f)
const struct conf_opt synth_opts[] = {
	{.section = "synth", .name = "tokens", .type = CONF_I64, .offset = O(tokens), .def = "1000",
	 .min = 1, .max = 1e9, .help = "tokens to generate"},
	{.section = "synth", .name = "seed", .type = CONF_I64, .offset = O(seed), .def = "1",
	 .min = 0, .max = 9.2e18, .help = "random seed"},
	{.section = "synth", .name = "phi", .type = CONF_DOUBLE, .offset = O(phi), .def = "0.8",
	 .min = 0, .max = 0.9999,
	 .help = "per-token AR(1) coefficient of the latent pre-activation (persistence)"},
	{.section = "synth", .name = "rho", .type = CONF_DOUBLE, .offset = O(rho), .def = "0.4",
	 .min = 0, .max = 1,
	 .help = "share of latent variance from the neuron's co-activation group"},
	{.section = "synth", .name = "group_size", .type = CONF_INT, .offset = O(group_size),
	 .def = "32", .min = 1, .max = 1 << 20, .help = "neurons per co-activation group"},
	{.section = "synth", .name = "alpha", .type = CONF_DOUBLE, .offset = O(alpha), .def = "1.0",
	 .min = 0, .max = 4, .help = "power-law exponent of activation frequency over neuron rank"},
	{.section = "synth", .name = "r0", .type = CONF_DOUBLE, .offset = O(r0), .def = "20",
	 .min = 0, .max = 1e9, .help = "rank offset of the power law (larger = flatter head)"},
	{.section = "synth", .name = "p_max", .type = CONF_DOUBLE, .offset = O(p_max), .def = "0.9",
	 .min = 0.01, .max = 0.999, .help = "cap on any neuron's activation probability"},
	{.section = "synth", .name = "margin", .type = CONF_DOUBLE, .offset = O(margin),
	 .def = "1.0", .min = 0.01, .max = 10,
	 .help = "half-width of the stored near-threshold band, in latent standard deviations"},
	{.section = "synth", .name = "magnitudes", .type = CONF_BOOL, .offset = O(magnitudes),
	 .def = "true", CONF_NO_BOUNDS,
	 .help = "store the near-threshold band (the modeled predictor needs it)"},
	{0},
};

void synth_defaults(struct synth_params *p)
{
	memset(p, 0, sizeof *p);
	conf_defaults(synth_opts, p, NULL);
}

/* One layer's generator state, by neuron id. */
struct layer_gen {
	struct rng_stream rng;
	int d, ngroups;
	float *mu;    /* (d) latent mean Phi^-1(p_i) */
	float *e;     /* (d) idiosyncratic AR state */
	float *g;     /* (ngroups) group AR state */
	float *n;     /* (d) scratch: this token's innovations */
	int32_t *grp; /* (d) co-activation group of each neuron */
};

static void gen_free(struct layer_gen *lg)
{
	free(lg->mu);
	free(lg->e);
	free(lg->g);
	free(lg->n);
	free(lg->grp);
}

/* Fill v[0..n) with standard normals from the quantile table, 5 per draw. */
static void gen_normals(struct rng_stream *rng, const struct rng_normal_table *nt, float *v, int n)
{
	const uint64_t mask = RNG_NORMAL_N - 1;
	int i = 0;
	for (; i + 5 <= n; i += 5) {
		uint64_t r = rng_next(rng);
		v[i] = nt->z[r & mask];
		v[i + 1] = nt->z[(r >> 12) & mask];
		v[i + 2] = nt->z[(r >> 24) & mask];
		v[i + 3] = nt->z[(r >> 36) & mask];
		v[i + 4] = nt->z[(r >> 48) & mask];
	}
	for (uint64_t r = rng_next(rng); i < n; i++, r >>= RNG_NORMAL_BITS)
		v[i] = nt->z[r & mask];
}

/* Mean activation probability of the capped power law with scale c;
 * base[r] = (r + 1 + r0)^-alpha. */
static double mean_prob(double c, const double *base, int d, double p_max)
{
	double s = 0;
	for (int r = 0; r < d; r++) {
		double p = c * base[r];
		s += p < p_max ? p : p_max;
	}
	return s / d;
}

/* Scale c so the layer's mean activation probability equals density. */
static double solve_scale(const double *base, int d, double density, const struct synth_params *p)
{
	double lo = -60, hi = 60; /* log c */
	for (int it = 0; it < 100; it++) {
		double mid = 0.5 * (lo + hi);
		if (mean_prob(exp(mid), base, d, p->p_max) < density)
			lo = mid;
		else
			hi = mid;
	}
	return exp(0.5 * (lo + hi));
}

/* Random permutation of 0..n-1 from the layer's stream. */
static void shuffle(int32_t *v, int n, struct rng_stream *rng)
{
	for (int i = 0; i < n; i++)
		v[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rng_next(rng) % (uint64_t)(i + 1));
		int32_t t = v[i];
		v[i] = v[j], v[j] = t;
	}
}

static int gen_init(struct layer_gen *lg, int d, double density, const struct synth_params *p,
		    const struct rng_normal_table *nt)
{
	int gs = p->group_size < d ? p->group_size : d;
	lg->d = d;
	lg->ngroups = (d + gs - 1) / gs;
	lg->mu = malloc(d * sizeof *lg->mu);
	lg->e = malloc(d * sizeof *lg->e);
	lg->n = malloc(d * sizeof *lg->n);
	lg->g = malloc(lg->ngroups * sizeof *lg->g);
	lg->grp = malloc(d * sizeof *lg->grp);
	int32_t *perm = malloc(d * sizeof *perm);
	double *base = malloc(d * sizeof *base);
	if (!lg->mu || !lg->e || !lg->n || !lg->g || !lg->grp || !perm || !base) {
		free(perm), free(base);
		return ERR_NOMEM;
	}
	/* frequency: each neuron gets the power-law probability of a random rank */
	for (int r = 0; r < d; r++)
		base[r] = pow(r + 1 + p->r0, -p->alpha);
	double c = solve_scale(base, d, density, p);
	shuffle(perm, d, &lg->rng);
	for (int i = 0; i < d; i++) {
		double pr = c * base[perm[i]];
		pr = pr < p->p_max ? pr : p->p_max;
		lg->mu[i] = (float)gsl_cdf_ugaussian_Pinv(pr < 1e-9 ? 1e-9 : pr);
	}
	/* co-activation: groups of gs neurons at random ids */
	shuffle(perm, d, &lg->rng);
	for (int j = 0; j < d; j++)
		lg->grp[perm[j]] = j / gs;
	/* stationary start */
	gen_normals(&lg->rng, nt, lg->e, d);
	gen_normals(&lg->rng, nt, lg->g, lg->ngroups);
	free(perm), free(base);
	return 0;
}

/* Advance one token: the latent of every neuron into z (d). Cloned for AVX2
 * (gathers); both clones compute the same floats (no FMA contraction). */
__attribute__((target_clones("avx2", "default"))) static void gen_step(
	struct layer_gen *lg, const struct synth_params *p, const struct rng_normal_table *nt,
	float *restrict z)
{
	const float a = (float)p->phi, b = (float)sqrt(1 - p->phi * p->phi);
	const float sg = (float)sqrt(p->rho), se = (float)sqrt(1 - p->rho);
	float *restrict e = lg->e, *restrict g = lg->g;
	const float *restrict nn = lg->n, *restrict mu = lg->mu;
	const int32_t *restrict grp = lg->grp;
	gen_normals(&lg->rng, nt, lg->n, lg->ngroups);
	for (int k = 0; k < lg->ngroups; k++)
		g[k] = a * g[k] + b * nn[k];
	gen_normals(&lg->rng, nt, lg->n, lg->d);
	for (int i = 0; i < lg->d; i++) {
		e[i] = a * e[i] + b * nn[i];
		z[i] = mu[i] + sg * g[grp[i]] + se * e[i];
	}
}

/* Pack 8 latents into the active byte and the two band-plane bytes. */
static inline void pack8(const float *z, float m, uint8_t *act, uint8_t *b0, uint8_t *b1)
{
	unsigned a = 0, p0 = 0, p1 = 0;
	for (int k = 0; k < 8; k++) {
		float v = z[k], av = v < 0 ? -v : v;
		unsigned c1 = av < m, c2 = av < m * (2.0f / 3), c3 = av < m * (1.0f / 3);
		a |= (unsigned)(v > 0) << k;
		p0 |= ((c1 & !c2) | c3) << k;
		p1 |= c2 << k;
	}
	*act = (uint8_t)a, *b0 = (uint8_t)p0, *b1 = (uint8_t)p1;
}

/* Threshold and band levels of a row of latents: bits (rb), band (2 rb). */
static void gen_pack_scalar(const float *z, int d, float m, uint8_t *restrict row,
			    uint8_t *restrict band)
{
	const int rb = trace_row_bytes(d), full = d / 8;
	uint8_t b0, b1, dummy[2];
	for (int j = 0; j < full; j++)
		pack8(z + 8 * j, m, &row[j], band ? &band[j] : &dummy[0], band ? &band[rb + j] : &dummy[1]);
	if (full < rb) {
		float tail[8] = {-1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f};
		memcpy(tail, z + 8 * full, (size_t)(d - 8 * full) * sizeof *tail);
		pack8(tail, m, &row[full], &b0, &b1);
		if (band)
			band[full] = b0, band[rb + full] = b1;
	}
}

/* The same with AVX2: 8 comparisons and a movemask per output byte. Gives
 * the same bytes as the scalar version (the same float comparisons). */
__attribute__((target("avx2"))) static void gen_pack_avx2(const float *z, int d, float m,
							  uint8_t *restrict row,
							  uint8_t *restrict band)
{
	const int rb = trace_row_bytes(d), full = d / 8;
	const __m256 zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
	const __m256 m1 = _mm256_set1_ps(m), m2 = _mm256_set1_ps(m * (2.0f / 3));
	const __m256 m3 = _mm256_set1_ps(m * (1.0f / 3));
	for (int j = 0; j < full; j++) {
		__m256 v = _mm256_loadu_ps(z + 8 * j), a = _mm256_andnot_ps(sign, v);
		row[j] = (uint8_t)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ));
		if (!band)
			continue;
		unsigned c1 = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, m1, _CMP_LT_OQ));
		unsigned c2 = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, m2, _CMP_LT_OQ));
		unsigned c3 = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, m3, _CMP_LT_OQ));
		band[j] = (uint8_t)((c1 & ~c2) | c3);
		band[rb + j] = (uint8_t)c2;
	}
	if (full < rb) { /* the tail byte as the scalar version does it */
		uint8_t b0, b1;
		float tail[8] = {-1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f};
		memcpy(tail, z + 8 * full, (size_t)(d - 8 * full) * sizeof *tail);
		pack8(tail, m, &row[full], &b0, &b1);
		if (band)
			band[full] = b0, band[rb + full] = b1;
	}
}

static void gen_pack(const float *z, int d, float m, uint8_t *row, uint8_t *band)
{
	if (__builtin_cpu_supports("avx2"))
		gen_pack_avx2(z, d, m, row, band);
	else
		gen_pack_scalar(z, d, m, row, band);
}

/* Advance n tokens; write packed bits (n, rb) and, if band, level planes (n, 2 rb). */
static void gen_block(struct layer_gen *lg, const struct synth_params *p, int n,
		      const struct rng_normal_table *nt, float *z, uint8_t *bits, uint8_t *band)
{
	const int rb = trace_row_bytes(lg->d);
	for (int t = 0; t < n; t++) {
		gen_step(lg, p, nt, z);
		gen_pack(z, lg->d, (float)p->margin, bits + (size_t)t * rb,
			 band ? band + (size_t)t * 2 * rb : NULL);
	}
}

/* The trace metadata for model m under p. */
static void synth_meta(const struct llm_desc *m, const struct synth_params *p,
		       struct trace_meta *meta)
{
	memset(meta, 0, sizeof *meta);
	snprintf(meta->model, sizeof meta->model, "%s", m->name);
	meta->layers = m->layers;
	meta->d_ffn = m->d_ffn;
	meta->source = TRACE_SOURCE_SYNTHETIC;
	meta->seed = (uint64_t)p->seed;
	meta->threshold = 0;
	meta->has = p->magnitudes ? TRACE_HAS_MAGNITUDES : 0;
	for (int l = 0; l < m->layers; l++)
		meta->mag_margin[l] = p->margin;
	size_t used = (size_t)snprintf(meta->generator, sizeof meta->generator,
				       "lifsim-synth-v1 model=%s sparsity=%g", m->name, m->sparsity);
	if (m->sparsity_first > 0 && m->sparsity_last > 0)
		used += (size_t)snprintf(meta->generator + used, sizeof meta->generator - used,
					 " sparsity_first=%g sparsity_last=%g", m->sparsity_first,
					 m->sparsity_last);
	char val[64];
	for (const struct conf_opt *o = synth_opts; o->name && used < sizeof meta->generator; o++) {
		conf_format(o, p, val, sizeof val);
		used += (size_t)snprintf(meta->generator + used, sizeof meta->generator - used, " %s=%s",
					 o->name, val);
	}
}

/* Generator of every layer, seeded in layer order from one gsl_rng. */
struct synth_run {
	int layers;
	struct layer_gen *gens;
	struct rng_normal_table *nt;
};

static void run_free(struct synth_run *r)
{
	for (int l = 0; r->gens && l < r->layers; l++)
		gen_free(&r->gens[l]);
	free(r->gens);
	free(r->nt);
}

static int run_init(struct synth_run *r, const struct llm_desc *m, const struct synth_params *p,
		    int threads, struct lif_err *err)
{
	memset(r, 0, sizeof *r);
	if (p->tokens < 1 || p->group_size < 1 || !(p->phi >= 0 && p->phi < 1) ||
	    !(p->rho >= 0 && p->rho <= 1) || !(p->margin > 0))
		return err_set(err, ERR_INVAL, "synth: parameters out of range (tokens >= 1, "
			       "0 <= phi < 1, 0 <= rho <= 1, margin > 0, group_size >= 1)");
	r->layers = m->layers;
	r->gens = calloc(m->layers, sizeof *r->gens);
	r->nt = malloc(sizeof *r->nt);
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!r->gens || !r->nt || !rng) {
		gsl_rng_free(rng);
		return err_set(err, ERR_NOMEM, "synth: out of memory");
	}
	rng_normal_table_fill(r->nt);
	gsl_rng_set(rng, (unsigned long)p->seed);
	for (int l = 0; l < m->layers; l++)
		rng_stream_seed(&r->gens[l].rng, rng);
	gsl_rng_free(rng);
	int bad = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad)
	for (int l = 0; l < m->layers; l++)
		bad |= gen_init(&r->gens[l], m->d_ffn, 1 - llm_layer_sparsity(m, l), p, r->nt) != 0;
	if (bad)
		return err_set(err, ERR_NOMEM, "synth: out of memory");
	return 0;
}

struct trace *synth_generate(const struct llm_desc *m, const struct synth_params *p,
			     int threads, struct lif_err *err)
{
	struct synth_run r;
	struct trace *t = calloc(1, sizeof *t);
	if (!t) {
		err_set(err, ERR_NOMEM, "synth: out of memory");
		return NULL;
	}
	synth_meta(m, p, &t->meta);
	t->meta.tokens = p->tokens;
	t->row_bytes = trace_row_bytes(m->d_ffn);
	size_t rows = (size_t)m->layers * p->tokens;
	t->token_ids = calloc(p->tokens, sizeof *t->token_ids);
	t->bits = malloc(rows * t->row_bytes);
	t->band = p->magnitudes ? malloc(rows * 2 * t->row_bytes) : NULL;
	int rc = run_init(&r, m, p, threads, err);
	if (!rc && (!t->token_ids || !t->bits || (p->magnitudes && !t->band)))
		rc = err_set(err, ERR_NOMEM, "synth: out of memory for %lld tokens", (long long)p->tokens);
	if (!rc) {
#pragma omp parallel for num_threads(threads) schedule(dynamic)
		for (int l = 0; l < m->layers; l++) {
			float *z = malloc(m->d_ffn * sizeof *z);
			if (!z)
				abort(); /* d_ffn floats; the trace itself is far larger */
			gen_block(&r.gens[l], p, (int)p->tokens, r.nt, z,
				  t->bits + (size_t)l * p->tokens * t->row_bytes,
				  t->band ? t->band + (size_t)l * p->tokens * 2 * t->row_bytes : NULL);
			free(z);
		}
	}
	run_free(&r);
	if (rc) {
		trace_free(t);
		return NULL;
	}
	return t;
}

/* Interleave layer-major block buffers (L, n, w) into token-major (n, L, w). */
static void to_token_major(const uint8_t *src, uint8_t *dst, int layers, int n, size_t w)
{
	for (int l = 0; l < layers; l++)
		for (int t = 0; t < n; t++)
			memcpy(dst + ((size_t)t * layers + l) * w, src + ((size_t)l * n + t) * w, w);
}

int synth_write(const struct llm_desc *m, const struct synth_params *p, const char *path,
		int threads, synth_progress_fn progress, void *progress_ctx, struct lif_err *err)
{
	struct synth_run r;
	struct trace_meta meta;
	struct trace_writer *w = NULL;
	const int L = m->layers, d = m->d_ffn, rb = trace_row_bytes(d);
	synth_meta(m, p, &meta);
	size_t bsz = (size_t)L * BLOCK_TOKENS * rb, msz = p->magnitudes ? 2 * bsz : 0;
	uint8_t *bl = malloc(bsz), *bt = malloc(bsz), *ml = malloc(msz + 1), *mt = malloc(msz + 1);
	float *z = malloc((size_t)threads * d * sizeof *z);
	int32_t ids[BLOCK_TOKENS] = {0};
	int rc = run_init(&r, m, p, threads, err);
	if (!rc && (!bl || !bt || !ml || !mt || !z))
		rc = err_set(err, ERR_NOMEM, "synth: out of memory");
	if (!rc && !(w = trace_writer_open(path, &meta, 0, err)))
		rc = ERR_IO;
	if (w)
		trace_writer_set_threads(w, threads);
	for (int64_t t0 = 0; !rc && t0 < p->tokens; t0 += BLOCK_TOKENS) {
		int n = (int)(p->tokens - t0 < BLOCK_TOKENS ? p->tokens - t0 : BLOCK_TOKENS);
#pragma omp parallel for num_threads(threads) schedule(dynamic)
		for (int l = 0; l < L; l++)
			gen_block(&r.gens[l], p, n, r.nt, z + (size_t)omp_get_thread_num() * d,
				  bl + (size_t)l * n * rb, msz ? ml + (size_t)l * n * 2 * rb : NULL);
		to_token_major(bl, bt, L, n, rb);
		if (msz)
			to_token_major(ml, mt, L, n, 2 * (size_t)rb);
		rc = trace_writer_append_many(w, n, ids, bt, msz ? mt : NULL, NULL, err);
		if (progress)
			progress(progress_ctx, t0 + n, p->tokens);
	}
	if (!rc) {
		rc = trace_writer_close(w, err);
		w = NULL;
	}
	trace_writer_abort(w);
	run_free(&r);
	free(bl), free(bt), free(ml), free(mt), free(z);
	return rc;
}
