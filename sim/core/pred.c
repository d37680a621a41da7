#include "sim/core/pred.h"

#include "traces/predictor/predictor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A fixed pseudo-random 32-bit priority for (seed, layer, neuron[, token]). */
static inline uint32_t mix_priority(uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (a * 0xBF58476D1CE4E5B9ull) ^ (b + 0x94D049BB133111EBull);
	x ^= x >> 30;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 27;
	x *= 0x94D049BB133111EBull;
	x ^= x >> 31;
	return (uint32_t)x;
}

uint32_t pred_priority(uint64_t seed, int layer, int i)
{
	return mix_priority(seed, (uint64_t)layer, (uint64_t)i);
}

static int pred_none(const struct trace *t, const struct pred_params *p, int layer, uint8_t *out,
		     int64_t *shortfall, struct lif_err *err)
{
	const int rb = t->row_bytes, rem = t->meta.d_ffn & 7;
	for (int64_t k = 0; k < t->meta.tokens; k++) {
		uint8_t *row = out + (size_t)k * rb;
		memset(row, 0xFF, rb);
		if (rem)
			row[rb - 1] = (uint8_t)((1u << rem) - 1);
	}
	return 0;
}

static int pred_oracle(const struct trace *t, const struct pred_params *p, int layer, uint8_t *out,
		       int64_t *shortfall, struct lif_err *err)
{
	memcpy(out, trace_active(t, layer, 0), (size_t)t->meta.tokens * t->row_bytes);
	return 0;
}

/* Move the n largest of v[0..nc) to the front (quickselect). */
static void top_n(uint64_t *v, int nc, int n)
{
	int lo = 0, hi = nc - 1;
	while (lo < hi && n > lo && n <= hi) {
		uint64_t pivot = v[(lo + hi) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (v[i] > pivot)
				i++;
			while (v[j] < pivot)
				j--;
			if (i <= j) {
				uint64_t tmp = v[i];
				v[i++] = v[j], v[j--] = tmp;
			}
		}
		if (n <= j)
			hi = j;
		else if (n >= i)
			lo = i;
		else
			break;
	}
}

/* Neurons whose bit is set in mask (rb bytes), as (priority << 32 | id). */
static int collect(const uint8_t *mask, int rb, const uint32_t *prio, uint64_t *out)
{
	int n = 0, j = 0;
	for (; j + 8 <= rb; j += 8) { /* a word at a time (the loop ends once per word) */
		uint64_t w;
		memcpy(&w, mask + j, 8);
		for (; w; w &= w - 1) {
			int i = j * 8 + __builtin_ctzll(w);
			out[n++] = (uint64_t)prio[i] << 32 | (uint32_t)i;
		}
	}
	for (; j < rb; j++)
		for (unsigned b = mask[j]; b; b &= b - 1) {
			int i = j * 8 + __builtin_ctz(b);
			out[n++] = (uint64_t)prio[i] << 32 | (uint32_t)i;
		}
	return n;
}

/* Set (or clear) in row the n highest-priority neurons of mask. */
static void apply_top(const uint8_t *mask, int rb, const uint32_t *prio, int n, uint64_t *scratch,
		      uint8_t *row, int clear)
{
	int nc = collect(mask, rb, prio, scratch);
	top_n(scratch, nc, n);
	for (int k = 0; k < n && k < nc; k++) {
		int i = (int)(uint32_t)scratch[k];
		if (clear)
			row[i >> 3] &= (uint8_t)~(1u << (i & 7));
		else
			row[i >> 3] |= (uint8_t)(1u << (i & 7));
	}
}

/* Packed rows are walked 8 bytes at a time (memcpy: any alignment). */
static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

static inline void st64(uint8_t *p, uint64_t w)
{
	memcpy(p, &w, 8);
}

/* The bits set in both x and y (rb bytes each). */
static inline __attribute__((always_inline)) int popcount_and_body(const uint8_t *x, const uint8_t *y,
								   int rb)
{
	int n = 0, j = 0;
	for (; j + 8 <= rb; j += 8)
		n += __builtin_popcountll(ld64(x + j) & ld64(y + j));
	for (; j < rb; j++)
		n += __builtin_popcount(x[j] & y[j]);
	return n;
}

#if defined(__x86_64__)
/* The same, vectorized by the compiler with AVX-512 popcounts. */
__attribute__((target("avx512f,avx512vpopcntdq"))) static int popcount_and_avx512(const uint8_t *x,
										    const uint8_t *y, int rb)
{
	return popcount_and_body(x, y, rb);
}
#endif

static int popcount_and_scalar(const uint8_t *x, const uint8_t *y, int rb)
{
	return popcount_and_body(x, y, rb);
}

static int simd_popcount = -1; /* -1: not yet asked */

void pred_use_simd(int on)
{
#if defined(__x86_64__)
	simd_popcount = on && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
#else
	simd_popcount = 0;
#endif
}

static int popcount_and(const uint8_t *x, const uint8_t *y, int rb)
{
	if (simd_popcount < 0)
		pred_use_simd(1); /* threads that race here store the same value */
#if defined(__x86_64__)
	if (simd_popcount)
		return popcount_and_avx512(x, y, rb);
#endif
	return popcount_and_scalar(x, y, rb);
}

static int popcount_bytes(const uint8_t *m, int rb)
{
	return popcount_and(m, m, rb);
}

/* Priority buckets: bucket b holds the neurons whose priority's top
 * PRIO_BITS bits are ~b, so every neuron of bucket b outranks every neuron of
 * bucket b + 1, and the n highest priorities of a mask are whole buckets and
 * then the highest of one bucket: only that bucket is collected and selected. */
#define PRIO_BITS 5
#define NBUCKETS (1 << PRIO_BITS)

/* Set (or clear) in row the n highest-priority neurons of mask, bucket by
 * bucket (bmask: NBUCKETS packed masks of rb bytes each); as apply_top. */
static void apply_top_buckets(const uint8_t *mask, int rb, const uint8_t *bmask, const uint32_t *prio,
			      int n, uint64_t *scratch, uint8_t *part, uint8_t *row, int clear)
{
	for (int b = 0; b < NBUCKETS && n > 0; b++) {
		const uint8_t *M = bmask + (size_t)b * rb;
		int c = popcount_and(mask, M, rb), j;
		if (!c)
			continue;
		if (c > n) { /* the boundary bucket: its n highest */
			for (j = 0; j < rb; j++)
				part[j] = mask[j] & M[j];
			apply_top(part, rb, prio, n, scratch, row, clear);
			return;
		}
		for (j = 0; j + 8 <= rb; j += 8) {
			uint64_t m = ld64(mask + j) & ld64(M + j);
			st64(row + j, clear ? ld64(row + j) & ~m : ld64(row + j) | m);
		}
		for (; j < rb; j++)
			row[j] = clear ? (uint8_t)(row[j] & ~(mask[j] & M[j])) : (uint8_t)(row[j] | (mask[j] & M[j]));
		n -= c;
	}
}

/* Mistakes taken level by level: masks[0] is the level tried first. Whole
 * levels while they fit, then the highest priorities of the next one. */
static void take_levels(uint8_t masks[][1 << 16], int nlev, int rb, const uint8_t *bmask,
			const uint32_t *prio, int n, uint64_t *scratch, uint8_t *part, uint8_t *row,
			int clear)
{
	for (int L = 0; L < nlev && n > 0; L++) {
		int c = popcount_bytes(masks[L], rb);
		if (c <= n) {
			int j = 0;
			for (; j + 8 <= rb; j += 8)
				st64(row + j, clear ? ld64(row + j) & ~ld64(masks[L] + j)
						    : ld64(row + j) | ld64(masks[L] + j));
			for (; j < rb; j++)
				row[j] = clear ? (uint8_t)(row[j] & ~masks[L][j]) : (uint8_t)(row[j] | masks[L][j]);
			n -= c;
		} else {
			apply_top_buckets(masks[L], rb, bmask, prio, n, scratch, part, row, clear);
			n = 0;
		}
	}
}

/* Per-layer scratch of the modeled predictor. */
struct pred_scratch {
	uint32_t *prio;      /* (d) fixed priority of each neuron */
	uint64_t *cand;      /* (d) */
	uint8_t *bmask;      /* (NBUCKETS, rb) the neurons of each priority bucket */
	uint8_t *part;       /* (rb) one level's neurons of one bucket */
	uint8_t (*act)[1 << 16];   /* 4 levels of active neurons: 3, 2, 1, 0 */
	uint8_t (*inact)[1 << 16]; /* 4 levels of inactive neurons: 3, 2, 1, 0 */
};

/* One (token, layer) of the modeled predictor: the trace's active set minus
 * the n_fn active neurons nearest the threshold, plus the n_fp inactive ones
 * nearest it. */
static void predict_row(const struct trace *t, const struct pred_params *p, int layer, int64_t k,
			struct pred_scratch *s, uint8_t *row, int64_t *shortfall)
{
	const int rb = t->row_bytes, d = t->meta.d_ffn;
	const uint8_t *a = trace_active(t, layer, k), *b = trace_band_row(t, layer, k);
	int j = 0;
	for (; j + 8 <= rb; j += 8) {
		uint64_t a8 = ld64(a + j), b0 = ld64(b + j), b1 = ld64(b + rb + j), na = ~a8;
		st64(s->act[0] + j, a8 & b0 & b1), st64(s->inact[0] + j, na & b0 & b1);
		st64(s->act[1] + j, a8 & ~b0 & b1), st64(s->inact[1] + j, na & ~b0 & b1);
		st64(s->act[2] + j, a8 & b0 & ~b1), st64(s->inact[2] + j, na & b0 & ~b1);
		st64(s->act[3] + j, a8 & ~b0 & ~b1), st64(s->inact[3] + j, na & ~b0 & ~b1);
	}
	for (; j < rb; j++) {
		uint8_t b0 = b[j], b1 = b[rb + j], na = (uint8_t)~a[j];
		s->act[0][j] = a[j] & b0 & b1, s->inact[0][j] = na & b0 & b1;
		s->act[1][j] = a[j] & ~b0 & b1, s->inact[1][j] = na & ~b0 & b1;
		s->act[2][j] = a[j] & b0 & ~b1, s->inact[2][j] = na & b0 & ~b1;
		s->act[3][j] = a[j] & ~b0 & ~b1, s->inact[3][j] = na & ~b0 & ~b1;
	}
	if (d & 7)
		s->inact[3][rb - 1] &= (uint8_t)((1u << (d & 7)) - 1);
	int na = popcount_bytes(a, rb), ni = d - na;
	int inband = popcount_bytes(s->inact[0], rb) + popcount_bytes(s->inact[1], rb) +
		     popcount_bytes(s->inact[2], rb);
	int n_fn = (int)lround((1 - p->recall) * na), n_fp = (int)lround(p->fp_rate * ni);
	if (n_fp > inband)
		*shortfall += n_fp - inband;
	memcpy(row, a, rb);
	take_levels(s->act, 4, rb, s->bmask, s->prio, n_fn, s->cand, s->part, row, 1);
	take_levels(s->inact, 4, rb, s->bmask, s->prio, n_fp, s->cand, s->part, row, 0);
}

/* One (token, layer) of the random predictor: mistakes drawn independently. */
static void predict_row_random(const struct trace *t, const struct pred_params *p, int layer,
			       int64_t k, struct pred_scratch *s, uint8_t *row)
{
	const int rb = t->row_bytes, d = t->meta.d_ffn;
	const uint8_t *a = trace_active(t, layer, k);
	uint64_t stream = ((uint64_t)layer << 40) ^ (uint64_t)(t->first_token + k);
	uint32_t draw = 0;
	int na = popcount_bytes(a, rb), ni = d - na;
	int n_fn = (int)lround((1 - p->recall) * na), n_fp = (int)lround(p->fp_rate * ni);
	memcpy(row, a, rb);
	int nc = collect(a, rb, s->prio, s->cand); /* random keys for the actives */
	for (int c = 0; c < nc; c++)
		s->cand[c] = (uint64_t)mix_priority(p->seed, stream, draw++) << 32 | (uint32_t)s->cand[c];
	top_n(s->cand, nc, n_fn);
	for (int c = 0; c < n_fn && c < nc; c++) {
		int i = (int)(uint32_t)s->cand[c];
		row[i >> 3] &= (uint8_t)~(1u << (i & 7));
	}
	for (int added = 0; added < n_fp;) { /* distinct inactive neurons, uniformly */
		int i = (int)(mix_priority(p->seed, stream, draw++) % (uint32_t)d);
		if (!trace_bit(a, i) && !trace_bit(row, i)) {
			trace_set_bit(row, i);
			added++;
		}
	}
}

static void scratch_free(struct pred_scratch *s)
{
	free(s->prio), free(s->cand), free(s->bmask), free(s->part), free(s->act), free(s->inact);
}

static int scratch_new(struct pred_scratch *s, const struct trace *t, const struct pred_params *p,
		       int layer)
{
	const int d = t->meta.d_ffn;
	s->prio = malloc(d * sizeof *s->prio);
	s->cand = malloc(d * sizeof *s->cand);
	s->act = malloc(4 * sizeof *s->act);
	s->inact = malloc(4 * sizeof *s->inact);
	s->bmask = calloc(NBUCKETS, t->row_bytes);
	s->part = malloc(t->row_bytes);
	if (!s->prio || !s->cand || !s->act || !s->inact || !s->bmask || !s->part ||
	    t->row_bytes > (1 << 16))
		return ERR_NOMEM;
	for (int i = 0; i < d; i++) {
		s->prio[i] = mix_priority(p->seed, (uint64_t)layer, (uint64_t)i);
		int b = (int)(~s->prio[i] >> (32 - PRIO_BITS));
		s->bmask[(size_t)b * t->row_bytes + (i >> 3)] |= (uint8_t)(1u << (i & 7));
	}
	return 0;
}

static int pred_errs(const struct trace *t, const struct pred_params *p, int layer, uint8_t *out,
		     int64_t *shortfall, int independent, struct lif_err *err)
{
	struct pred_scratch s = {0};
	if (!independent && !t->band)
		return err_set(err, ERR_INVAL, "the modeled predictor needs the trace's band "
			       "(synthesize without --no-magnitudes, or record with magnitudes)");
	if (scratch_new(&s, t, p, layer)) {
		scratch_free(&s);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	for (int64_t k = 0; k < t->meta.tokens; k++) {
		uint8_t *row = out + (size_t)k * t->row_bytes;
		if (independent)
			predict_row_random(t, p, layer, k, &s, row);
		else
			predict_row(t, p, layer, k, &s, row, shortfall);
	}
	scratch_free(&s);
	return 0;
}

static int pred_modeled(const struct trace *t, const struct pred_params *p, int layer,
			uint8_t *out, int64_t *shortfall, struct lif_err *err)
{
	return pred_errs(t, p, layer, out, shortfall, 0, err);
}

static int pred_random(const struct trace *t, const struct pred_params *p, int layer,
		       uint8_t *out, int64_t *shortfall, struct lif_err *err)
{
	return pred_errs(t, p, layer, out, shortfall, 1, err);
}

static int pred_lowrank(const struct trace *t, const struct pred_params *p, int layer,
			uint8_t *out, int64_t *shortfall, struct lif_err *err)
{
	struct predictor_info info;
	if (!p->lowrank)
		return err_set(err, ERR_INVAL, "the lowrank predictor needs a trained predictor file "
			       "([sim] predictor_file)");
	if (!t->inputs)
		return err_set(err, ERR_INVAL, "the lowrank predictor needs the trace's FFN inputs "
			       "(record with --inputs)");
	predictor_get_info(p->lowrank, &info);
	if (info.layers != t->meta.layers || info.d_ffn != t->meta.d_ffn ||
	    info.d_model != t->meta.d_model)
		return err_set(err, ERR_INVAL, "the predictor is for %d layers x %d neurons from d_model %d, "
			       "the trace has %d x %d from %d", info.layers, info.d_ffn, info.d_model,
			       t->meta.layers, t->meta.d_ffn, t->meta.d_model);
	if (!predictor_has_layer(p->lowrank, layer))
		return pred_oracle(t, p, layer, out, shortfall, err);
	const float *x = t->inputs + (size_t)layer * t->meta.tokens * t->meta.d_model;
	if (predictor_apply_many(p->lowrank, layer, t->meta.tokens, x, out))
		return err_set(err, ERR_NOMEM, "out of memory applying the predictor");
	return 0;
}

static const struct pred_ops op_none = {
	.name = "none",
	.kind = PRED_NONE,
	.predict_layer = pred_none,
};
static const struct pred_ops op_oracle = {
	.name = "oracle",
	.kind = PRED_ORACLE,
	.trace_sets = 1,
	.has_model = 1,
	.predict_layer = pred_oracle,
};
static const struct pred_ops op_modeled = {
	.name = "modeled",
	.kind = PRED_MODELED,
	.needs_band = 1,
	.has_model = 1,
	.has_rates = 1,
	.predict_layer = pred_modeled,
};
static const struct pred_ops op_random = {
	.name = "random",
	.kind = PRED_RANDOM,
	.has_model = 1,
	.has_rates = 1,
	.predict_layer = pred_random,
};
static const struct pred_ops op_lowrank = {
	.name = "lowrank",
	.kind = PRED_LOWRANK,
	.has_model = 1,
	.trained = 1,
	.predict_layer = pred_lowrank,
};

const struct pred_ops *const pred_modes[] = {&op_none, &op_oracle, &op_modeled, &op_random,
					     &op_lowrank, NULL};

const char *pred_choice(int i)
{
	int n = (int)(sizeof pred_modes / sizeof *pred_modes) - 1;
	return i >= 0 && i < n ? pred_modes[i]->name : NULL;
}

const struct pred_ops *pred_find(const char *name)
{
	for (int i = 0; pred_modes[i]; i++)
		if (!strcmp(pred_modes[i]->name, name))
			return pred_modes[i];
	return NULL;
}

const struct pred_ops *pred_by_kind(int kind)
{
	for (int i = 0; pred_modes[i]; i++)
		if (pred_modes[i]->kind == kind)
			return pred_modes[i];
	return NULL;
}

void pred_count(const uint8_t *bits, const uint8_t *sets, size_t n, int64_t c[4])
{
	int64_t act = 0, tp = 0, fp = 0, pred = 0;
	size_t j = 0;
	for (; j + 8 <= n; j += 8) {
		uint64_t a = ld64(bits + j), p = ld64(sets + j);
		act += __builtin_popcountll(a);
		pred += __builtin_popcountll(p);
		tp += __builtin_popcountll(a & p);
		fp += __builtin_popcountll(p & ~a);
	}
	for (; j < n; j++) {
		act += __builtin_popcount(bits[j]);
		pred += __builtin_popcount(sets[j]);
		tp += __builtin_popcount(bits[j] & sets[j]);
		fp += __builtin_popcount(sets[j] & (uint8_t)~bits[j]);
	}
	c[0] += act, c[1] += tp, c[2] += fp, c[3] += pred;
}

void pred_quality_of(const struct trace *t, const int64_t c[4], struct pred_quality *q)
{
	const int64_t act = c[0], tp = c[1], fp = c[2], pred = c[3];
	double all = (double)t->meta.layers * t->meta.tokens * t->meta.d_ffn;
	q->recall = act ? (double)tp / act : 1;
	q->fp_rate = all > act ? fp / (all - act) : 0;
	q->predicted_frac = pred / all;
}

void pred_measure(const struct trace *t, const uint8_t *sets, struct pred_quality *q)
{
	int64_t c[4] = {0};
	pred_count(t->bits, sets, (size_t)t->meta.layers * t->meta.tokens * t->row_bytes, c);
	pred_quality_of(t, c, q);
}

uint8_t *pred_sets(const struct trace *t, const struct pred_params *p, int threads,
		   struct pred_quality *q, struct lif_err *err)
{
	const struct pred_ops *ops = pred_by_kind(p->kind);
	size_t per_layer = (size_t)t->meta.tokens * t->row_bytes;
	uint8_t *sets = malloc((size_t)t->meta.layers * per_layer + 1);
	int64_t shortfall = 0;
	int bad = 0;
	if (!ops || !sets) {
		free(sets);
		err_set(err, ops ? ERR_NOMEM : ERR_INVAL, ops ? "out of memory" : "unknown predictor");
		return NULL;
	}
	if (!(p->recall >= 0 && p->recall <= 1 && p->fp_rate >= 0 && p->fp_rate <= 1)) {
		free(sets);
		err_set(err, ERR_INVAL, "predictor recall and fp_rate must be in [0, 1]");
		return NULL;
	}
	struct lif_err *errs = calloc(t->meta.layers, sizeof *errs);
	if (!errs) {
		free(sets);
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad) reduction(+ : shortfall)
	for (int l = 0; l < t->meta.layers; l++)
		bad |= ops->predict_layer(t, p, l, sets + (size_t)l * per_layer, &shortfall, &errs[l]) != 0;
	for (int l = 0; bad && l < t->meta.layers; l++)
		if (errs[l].code) {
			err_set(err, errs[l].code, "%s", errs[l].msg);
			break;
		}
	free(errs);
	if (bad) {
		free(sets);
		return NULL;
	}
	if (q) {
		pred_measure(t, sets, q);
		q->fp_shortfall = shortfall;
	}
	return sets;
}
