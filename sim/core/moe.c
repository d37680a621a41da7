#include "sim/core/moe.h"

#include "models/compute.h"
#include "models/dram.h"
#include "models/flash.h"
#include "sim/core/timeline.h"

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NEVER INT64_MAX

/* ---------------------------------------------------------------- policies */

static void cache_insert(struct moe_cache *c, int e)
{
	c->resident[e] = 1;
	c->resident_n++;
	c->inserts++;
	c->cslot[e] = c->free_slots[--c->free_n];
	if (c->log && c->log_n < c->log_cap) {
		c->log[2 * c->log_n] = e;
		c->log[2 * c->log_n + 1] = c->cslot[e];
	}
	c->log_n++; /* counted past log_cap too: layer_token refuses that */
}

static void cache_evict(struct moe_cache *c, int v)
{
	c->resident[v] = 0;
	c->resident_n--;
	c->evictions++;
	c->free_slots[c->free_n++] = c->cslot[v];
	c->cslot[v] = -1;
}

/* The resident expert with the smallest (key1, key2), or -1. */
static int argmin_resident(const struct moe_cache *c, const int64_t *key1, const int64_t *key2)
{
	int v = -1;
	for (int e = 0; e < c->experts; e++)
		if (c->resident[e] &&
		    (v < 0 || key1[e] < key1[v] || (key2 && key1[e] == key1[v] && key2[e] < key2[v])))
			v = e;
	return v;
}

/* Keep e, evicting the argmin of (key1, key2) when full. */
static int keep_evicting(struct moe_cache *c, int e, const int64_t *key1, const int64_t *key2)
{
	if (c->capacity == 0)
		return 0;
	if (c->resident_n == c->capacity)
		cache_evict(c, argmin_resident(c, key1, key2));
	cache_insert(c, e);
	return 0;
}

static int lru_access(struct moe_cache *c, int e, int64_t i)
{
	c->last_use[e] = i;
	c->freq[e]++;
	return c->resident[e] ? 1 : keep_evicting(c, e, c->last_use, NULL);
}

static int lfu_access(struct moe_cache *c, int e, int64_t i)
{
	c->last_use[e] = i;
	c->freq[e]++;
	return c->resident[e] ? 1 : keep_evicting(c, e, c->freq, c->last_use);
}

static int static_access(struct moe_cache *c, int e, int64_t i)
{
	if (c->resident[e])
		return 1;
	if (c->pinned[e])
		cache_insert(c, e); /* the pinned set never exceeds the capacity */
	return 0;
}

static int belady_access(struct moe_cache *c, int e, int64_t i)
{
	int64_t next = c->next[i];
	int hit = c->resident[e];
	c->last_use[e] = next; /* belady: last_use holds each expert's next request */
	if (hit || c->capacity == 0)
		return hit;
	if (c->resident_n < c->capacity) {
		cache_insert(c, e);
		return 0;
	}
	int v = -1;
	for (int x = 0; x < c->experts; x++)
		if (c->resident[x] && (v < 0 || c->last_use[x] > c->last_use[v]))
			v = x;
	if (next < c->last_use[v]) { /* else bypass: the newcomer is needed last */
		cache_evict(c, v);
		cache_insert(c, e);
	}
	return 0;
}

static const struct moe_cache_ops lru_ops = {.name = "lru", .access = lru_access};
static const struct moe_cache_ops lfu_ops = {.name = "lfu", .access = lfu_access};
static const struct moe_cache_ops static_ops = {.name = "static", .access = static_access};
static const struct moe_cache_ops belady_ops = {.name = "belady", .access = belady_access};

const struct moe_cache_ops *const moe_cache_policies[] = {
	&lru_ops, &lfu_ops, &static_ops, &belady_ops, NULL,
};

const char *moe_policy_choice(int i)
{
	int n = (int)(sizeof moe_cache_policies / sizeof *moe_cache_policies) - 1;
	return i >= 0 && i < n ? moe_cache_policies[i]->name : NULL;
}

static const char *const prefetch_names[] = {
	[MOE_PREFETCH_NONE] = "none", [MOE_PREFETCH_ORACLE] = "oracle",
	[MOE_PREFETCH_MODELED] = "modeled", [MOE_PREFETCH_TRAINED] = "trained"};
static const char *const layout_names[] = {
	[MOE_LAYOUT_EXPERT] = "expert", [MOE_LAYOUT_MATRIX] = "matrix", [MOE_LAYOUT_COSEL] = "cosel"};

const char *moe_prefetch_choice(int i)
{
	int n = (int)(sizeof prefetch_names / sizeof *prefetch_names);
	return i >= 0 && i < n ? prefetch_names[i] : NULL;
}

const char *moe_layout_choice(int i)
{
	int n = (int)(sizeof layout_names / sizeof *layout_names);
	return i >= 0 && i < n ? layout_names[i] : NULL;
}

const struct moe_cache_ops *moe_cache_find(const char *name)
{
	for (int i = 0; moe_cache_policies[i]; i++)
		if (!strcmp(moe_cache_policies[i]->name, name))
			return moe_cache_policies[i];
	return NULL;
}

/* ---------------------------------------------------------------- one layer's cache */

struct layer_state {
	struct moe_cache c;
	int64_t *next; /* (tokens * k) */
	int64_t *count; /* (experts) selections over the trace */
};

static void layer_free(struct layer_state *s)
{
	free(s->c.resident);
	free(s->c.last_use);
	free(s->c.freq);
	free(s->c.pinned);
	free(s->c.cslot);
	free(s->c.free_slots);
	free(s->c.log);
	free(s->next);
	free(s->count);
	memset(s, 0, sizeof *s);
}

/* The `cap` most selected experts of the layer (ties: lower id). */
static void pin_hottest(struct layer_state *s, int cap)
{
	for (int n = 0; n < cap; n++) {
		int best = -1;
		for (int e = 0; e < s->c.experts; e++)
			if (!s->c.pinned[e] && (best < 0 || s->count[e] > s->count[best]))
				best = e;
		s->c.pinned[best] = 1;
	}
}

static int layer_init(struct layer_state *s, const struct router_trace *rt, int l, int cap)
{
	int E = rt->meta.experts, k = rt->meta.top_k;
	int64_t n = rt->meta.tokens * k;
	memset(s, 0, sizeof *s);
	s->c.experts = E, s->c.capacity = cap;
	s->c.resident = calloc(E, 1);
	s->c.pinned = calloc(E, 1);
	s->c.last_use = malloc(E * sizeof(int64_t));
	s->c.freq = calloc(E, sizeof(int64_t));
	s->count = calloc(E, sizeof(int64_t));
	s->next = malloc((n ? n : 1) * sizeof(int64_t));
	s->c.cslot = malloc(E * sizeof(int));
	s->c.free_slots = malloc((cap ? cap : 1) * sizeof(int));
	s->c.log_cap = k;
	s->c.log = malloc(2 * (size_t)(k ? k : 1) * sizeof(int));
	if (!s->c.resident || !s->c.pinned || !s->c.last_use || !s->c.freq || !s->count || !s->next ||
	    !s->c.cslot || !s->c.free_slots || !s->c.log)
		return -1;
	for (int x = 0; x < cap; x++) /* slot 0 is taken first */
		s->c.free_slots[x] = cap - 1 - x;
	s->c.free_n = cap;
	for (int e = 0; e < E; e++)
		s->c.last_use[e] = -1, s->c.cslot[e] = -1;
	int64_t *seen = s->c.last_use; /* reused as "next index seen" while scanning back */
	for (int64_t i = n - 1; i >= 0; i--) {
		int e = rt->ids[(size_t)l * n + i];
		s->next[i] = seen[e] < 0 ? NEVER : seen[e];
		seen[e] = i;
		s->count[e]++;
	}
	for (int e = 0; e < E; e++)
		s->c.last_use[e] = -1;
	s->c.next = s->next;
	pin_hottest(s, cap);
	return 0;
}

int moe_layer_hits(const struct router_trace *rt, int layer, const struct moe_cache_ops *ops,
		   int capacity, int64_t *hits, struct lif_err *err)
{
	struct layer_state s;
	if (capacity < 0 || capacity > rt->meta.experts)
		return err_set(err, ERR_INVAL, "moe: cache of %d experts outside [0, %d]", capacity,
			       rt->meta.experts);
	if (layer_init(&s, rt, layer, capacity)) {
		layer_free(&s);
		return err_set(err, ERR_NOMEM, "moe: out of memory");
	}
	int64_t n = rt->meta.tokens * rt->meta.top_k, h = 0;
	const int16_t *ids = rt->ids + (size_t)layer * n;
	for (int64_t i = 0; i < n; i++)
		h += ops->access(&s.c, ids[i], i);
	*hits = h;
	layer_free(&s);
	return 0;
}

/* ---------------------------------------------------------------- layout */

/* Slot of each expert in the layer's region: id order, or a greedy chain
 * of co-selection (start at the most selected; append the unplaced expert
 * most often in the same row as the last placed; ties: more selected, lower id). */
static int cosel_order(const struct router_trace *rt, int l, const int64_t *count, int *slot)
{
	int E = rt->meta.experts, k = rt->meta.top_k;
	int64_t *C = calloc((size_t)E * E, sizeof *C);
	uint8_t *placed = calloc(E, 1);
	if (!C || !placed) {
		free(C);
		free(placed);
		return -1;
	}
	for (int64_t t = 0; t < rt->meta.tokens; t++) {
		const int16_t *id = router_ids(rt, l, t);
		for (int i = 0; i < k; i++)
			for (int j = 0; j < k; j++)
				C[(size_t)id[i] * E + id[j]] += i != j;
	}
	int last = -1;
	for (int s = 0; s < E; s++) {
		int best = -1;
		for (int e = 0; e < E; e++) {
			if (placed[e])
				continue;
			int64_t ce = last < 0 ? 0 : C[(size_t)last * E + e];
			int64_t cb = best < 0 || last < 0 ? 0 : C[(size_t)last * E + best];
			if (best < 0 || ce > cb || (ce == cb && count[e] > count[best]))
				best = e;
		}
		placed[best] = 1;
		slot[best] = s;
		last = best;
	}
	free(C);
	free(placed);
	return 0;
}

struct batch {
	struct { int64_t off, len; } *x; /* (cap) */
	int n, cap;
	int64_t *lens; /* (cap) merged lengths for the flash model */
	int64_t *offs; /* (cap) merged offsets (the plan's) */
};

int64_t moe_matrix_offset(const struct llm_desc *m, int layout, int slot, int mat)
{
	if (layout == MOE_LAYOUT_MATRIX)
		return ((int64_t)mat * m->experts + slot) * m->expert_matrix_bytes;
	return (int64_t)slot * m->expert_bytes + (int64_t)mat * m->expert_matrix_bytes;
}

int64_t moe_region_bytes(const struct llm_desc *m) { return m->experts * m->expert_bytes; }

static void batch_add_expert(struct batch *b, const struct llm_desc *m, int layout, int slot)
{
	if (layout == MOE_LAYOUT_MATRIX) {
		for (int mat = 0; mat < m->ffn_matrices; mat++) {
			b->x[b->n].off = moe_matrix_offset(m, layout, slot, mat);
			b->x[b->n++].len = m->expert_matrix_bytes;
		}
		return;
	}
	b->x[b->n].off = moe_matrix_offset(m, layout, slot, 0);
	b->x[b->n++].len = m->expert_bytes;
}

static int cmp_off(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Sort by offset, merge extents at most max_gap apart; returns the count
 * of merged extents in b->lens and their bytes in *bytes. */
static int batch_merge(struct batch *b, int64_t max_gap, int64_t *bytes)
{
	qsort(b->x, b->n, sizeof *b->x, cmp_off);
	int n = 0;
	int64_t end = 0;
	*bytes = 0;
	for (int i = 0; i < b->n; i++) {
		if (n > 0 && max_gap >= 0 && b->x[i].off - end <= max_gap) {
			int64_t new_end = b->x[i].off + b->x[i].len;
			b->lens[n - 1] += new_end - end;
			*bytes += new_end - end;
			end = new_end;
			continue;
		}
		b->offs[n] = b->x[i].off;
		b->lens[n++] = b->x[i].len;
		*bytes += b->x[i].len;
		end = b->x[i].off + b->x[i].len;
	}
	return n;
}

/* ---------------------------------------------------------------- the run */

int64_t moe_dram_bytes(const struct llm_desc *m, int cache)
{
	return m->attn_bytes + m->embed_bytes + m->resident_ffn_bytes +
	       ((int64_t)cache * m->moe_layers + m->experts_per_token) * m->expert_bytes;
}

int moe_cache_for_budget(const struct llm_desc *m, int64_t dram_budget)
{
	int64_t free_bytes = dram_budget - moe_dram_bytes(m, 0);
	if (free_bytes < 0)
		return -1;
	int64_t c = free_bytes / (m->expert_bytes * m->moe_layers);
	return c > m->experts ? m->experts : (int)c;
}

/* Per-token accumulators. */
struct acc {
	double *io_ns, *ahead_ns, *ops, *bytes, *wasted, *reads, *hits, *copied;
	double *pred_true, *pred_n; /* true experts predicted, true experts of predicted layers */
};

/* The predictor's k experts for a row (pred: 1 = predicted; truth: scratch):
 * the true ones, or each kept with probability prefetch_accuracy, else a
 * random expert that is neither true nor already predicted. */
static void predict_row(const int16_t *ids, int k, int E, const struct moe_params *p,
			gsl_rng *rng, uint8_t *pred, uint8_t *truth)
{
	memset(pred, 0, E);
	memset(truth, 0, E);
	for (int i = 0; i < k; i++)
		truth[ids[i]] = 1;
	int wrong = 0;
	for (int i = 0; i < k; i++)
		if (p->prefetch == MOE_PREFETCH_ORACLE || k == E ||
		    gsl_rng_uniform(rng) < p->prefetch_accuracy)
			pred[ids[i]] = 1;
		else
			wrong++;
	while (wrong > 0) {
		int e = (int)gsl_rng_uniform_int(rng, E);
		if (!pred[e] && !truth[e])
			pred[e] = 1, wrong--;
	}
}

/* ---------------------------------------------------------------- trained predictor */

#define RIDGE 1e-3 /* lambda / mean diagonal of X^T X [assumption] */

/* Layer l's ridge fit over tokens [0, n_train): A (d x d) and B (d x E)
 * are scratch; on return B holds W^T (column e: expert e's weights over
 * layer l-1's router input). 0 when the system is singular. */
static int fit_layer(const struct router_trace *rt, int l, int64_t n_train, gsl_matrix *A, gsl_matrix *B,
		     gsl_vector *col, gsl_vector *sol)
{
	const int d = rt->meta.d_model, E = rt->meta.experts, k = rt->meta.top_k;
	/* normal equations (X^T X + lambda I) W^T = X^T Y */
	gsl_matrix_set_zero(A);
	gsl_matrix_set_zero(B);
	for (int64_t t = 0; t < n_train; t++) {
		const float *x = router_input(rt, l - 1, t);
		for (int i = 0; i < d; i++) {
			double *row = gsl_matrix_ptr(A, i, 0);
			for (int j = 0; j <= i; j++)
				row[j] += (double)x[i] * x[j];
			for (int j = 0; j < k; j++)
				*gsl_matrix_ptr(B, i, router_ids(rt, l, t)[j]) += x[i];
		}
	}
	double diag = 0;
	for (int i = 0; i < d; i++)
		diag += gsl_matrix_get(A, i, i);
	double lambda = RIDGE * (diag > 0 ? diag / d : 1);
	for (int i = 0; i < d; i++) {
		*gsl_matrix_ptr(A, i, i) += lambda;
		for (int j = 0; j < i; j++)
			gsl_matrix_set(A, j, i, gsl_matrix_get(A, i, j));
	}
	gsl_error_handler_t *old = gsl_set_error_handler_off();
	int ok = gsl_linalg_cholesky_decomp1(A) == 0;
	for (int e = 0; ok && e < E; e++) { /* column e of W^T, back into B */
		gsl_matrix_get_col(col, B, e);
		ok = gsl_linalg_cholesky_solve(A, col, sol) == 0;
		gsl_matrix_set_col(B, e, sol);
	}
	gsl_set_error_handler(old);
	return ok;
}

/* Token t's k best experts of layer l by the scores W x (x: layer l-1's
 * router input), ties to the lower id, into out. */
static void predict_token(const struct router_trace *rt, int l, int64_t t, const gsl_matrix *B, double *score,
			  int16_t *out)
{
	const int d = rt->meta.d_model, E = rt->meta.experts, k = rt->meta.top_k;
	const float *x = router_input(rt, l - 1, t);
	for (int e = 0; e < E; e++) {
		double s = 0;
		for (int i = 0; i < d; i++)
			s += gsl_matrix_get(B, i, e) * x[i];
		score[e] = s;
	}
	for (int j = 0; j < k; j++) {
		int best = -1;
		for (int e = 0; e < E; e++) {
			int taken = 0;
			for (int i = 0; i < j; i++)
				taken |= out[i] == e;
			if (!taken && (best < 0 || score[e] > score[best]))
				best = e;
		}
		out[j] = (int16_t)best;
	}
}

/* The trained predictor's choices, (layers, tokens, k) layer-major like the
 * trace (layer 0: -1, not predicted): per layer l >= 1, W fitted on tokens
 * [0, n_train) of (router input of l-1 -> one-hot choices of l), then the k
 * best scores of every token. NULL on no memory or a singular system. */
static int16_t *train_predictions(const struct router_trace *rt, int64_t n_train)
{
	const struct router_meta *m = &rt->meta;
	int d = m->d_model, E = m->experts, k = m->top_k;
	int64_t T = m->tokens;
	int16_t *pred = malloc((size_t)m->layers * T * k * sizeof *pred);
	gsl_matrix *A = gsl_matrix_alloc(d, d), *B = gsl_matrix_alloc(d, E);
	gsl_vector *col = gsl_vector_alloc(d), *sol = gsl_vector_alloc(d);
	double *score = malloc((size_t)E * sizeof *score);
	int ok = pred && A && B && col && sol && score;
	for (int64_t i = 0; ok && i < T * k; i++)
		pred[i] = -1;
	for (int l = 1; ok && l < m->layers; l++) {
		ok = fit_layer(rt, l, n_train, A, B, col, sol);
		for (int64_t t = 0; ok && t < T; t++)
			predict_token(rt, l, t, B, score, pred + ((size_t)l * T + t) * k);
	}
	gsl_matrix_free(A);
	gsl_matrix_free(B);
	gsl_vector_free(col);
	gsl_vector_free(sol);
	free(score);
	if (!ok) {
		free(pred);
		return NULL;
	}
	return pred;
}

/* Everything one layer's pass needs. */
struct layer_run {
	const struct router_trace *rt;
	const struct llm_desc *m;
	const struct device *dev;
	const struct moe_params *p;
	const struct moe_cache_ops *ops;
	gsl_rng *rng;
	struct layer_state s;
	int *slot;
	uint8_t *pred, *truth;
	const int16_t *trained; /* train_predictions(), or NULL */
	double *ahead_lt, *demand_lt; /* (layers, tokens) flash ns read ahead / on demand */
	struct batch b;
	struct moe_plan *plan; /* or NULL */
};

/* Grow the plan's copies to hold n more; -1 when out of memory. */
static int plan_grow_copies(struct moe_plan *p, int64_t n)
{
	if (p->cn + n <= p->ccap)
		return 0;
	int64_t cap = 2 * (p->cn + n) + 64;
	int64_t *v[3] = {p->csrc, p->cdst, p->clen};
	for (int i = 0; i < 3; i++) {
		int64_t *x = realloc(v[i], (size_t)cap * sizeof *x);
		if (!x)
			return -1;
		v[i] = x;
		p->csrc = v[0], p->cdst = v[1], p->clen = v[2];
	}
	p->ccap = cap;
	return 0;
}

/* Append the copies of (l, t)'s inserts (the cache's log) to the plan: each
 * expert piece from its place in the layer's region to its cache slot. */
static int plan_add_copies(struct moe_plan *p, const struct llm_desc *m, const struct moe_cache *c,
			   const int *slot, int l, int64_t t)
{
	int pieces = p->layout == MOE_LAYOUT_MATRIX ? m->ffn_matrices : 1;
	int64_t piece = pieces > 1 ? m->expert_matrix_bytes : m->expert_bytes;
	size_t i = (size_t)l * p->tokens + t;
	if (plan_grow_copies(p, (int64_t)c->log_n * pieces))
		return -1;
	p->cfirst[i] = p->cn;
	for (int j = 0; j < c->log_n; j++)
		for (int mat = 0; mat < pieces; mat++, p->cn++) {
			p->csrc[p->cn] = moe_matrix_offset(m, p->layout, slot[c->log[2 * j]], mat);
			p->cdst[p->cn] = (int64_t)c->log[2 * j + 1] * m->expert_bytes + mat * piece;
			p->clen[p->cn] = piece;
		}
	p->cfirst[i + 1] = p->cn;
	return 0;
}

/* Append the merged batch of (l, t) to the plan; -1 when out of memory. */
static int plan_add(struct moe_plan *p, const struct batch *b, int n, int l, int64_t t, double ns,
		    double ops)
{
	if (p->n + n > p->cap) {
		int64_t cap = 2 * (p->n + n) + 64;
		int64_t *off = realloc(p->off, (size_t)cap * sizeof *off);
		if (off)
			p->off = off;
		int64_t *len = off ? realloc(p->len, (size_t)cap * sizeof *len) : NULL;
		if (!len)
			return -1;
		p->len = len, p->cap = cap;
	}
	size_t i = (size_t)l * p->tokens + t;
	p->first[i] = p->n;
	for (int j = 0; j < n; j++)
		p->off[p->n + j] = b->offs[j], p->len[p->n + j] = b->lens[j];
	p->n += n;
	p->first[i + 1] = p->n;
	p->io_ns[i] = ns, p->ops[i] = ops;
	return 0;
}

void moe_plan_free(struct moe_plan *p)
{
	if (!p)
		return;
	free(p->first), free(p->off), free(p->len), free(p->io_ns), free(p->slot);
	free(p->cfirst), free(p->csrc), free(p->cdst), free(p->clen);
	memset(p, 0, sizeof *p);
}

void moe_plan_token_sums(const struct moe_plan *p, int64_t t, struct moe_token_sums *s)
{
	memset(s, 0, sizeof *s);
	for (int l = 0; l < p->layers; l++) {
		size_t i = (size_t)l * p->tokens + t;
		int64_t n = p->first[i + 1] - p->first[i];
		s->io_ns += p->io_ns[i], s->ops += p->ops[i];
		s->reads += n, s->batches += n > 0;
		for (int64_t j = p->first[i]; j < p->first[i + 1]; j++)
			s->bytes += p->len[j];
		for (int64_t c = p->cfirst[i]; c < p->cfirst[i + 1]; c++)
			s->copied += p->clen[c];
	}
}

/* layer_token's result when the cache logged more inserts than top_k */
#define MOE_ERR_LOG (-2)

/* One token of one layer: prefetch, accesses, the batch of reads. */
static int layer_token(struct layer_run *r, int l, int64_t t, struct acc *a)
{
	const struct llm_desc *m = r->m;
	int k = r->rt->meta.top_k, E = r->rt->meta.experts;
	const int16_t *ids = router_ids(r->rt, l, t);
	int64_t ahead = 0, wasted = 0, bytes, ops0 = r->s.c.inserts + r->s.c.evictions;
	r->b.n = 0;
	r->s.c.log_n = 0;
	int predicted = 1;
	if (r->trained) {
		const int16_t *pr = r->trained + ((size_t)l * r->rt->meta.tokens + t) * k;
		memset(r->pred, 0, E);
		memset(r->truth, 0, E);
		for (int i = 0; i < k; i++) {
			r->truth[ids[i]] = 1;
			if (pr[i] >= 0)
				r->pred[pr[i]] = 1;
		}
		predicted = l > 0; /* layer 0 has no previous layer to predict from */
	} else if (r->p->prefetch != MOE_PREFETCH_NONE) {
		predict_row(ids, k, E, r->p, r->rng, r->pred, r->truth);
	}
	if (r->trained || r->p->prefetch != MOE_PREFETCH_NONE) {
		for (int i = 0; predicted && i < k; i++) {
			a->pred_true[t] += r->pred[ids[i]];
			a->pred_n[t] += 1;
		}
		for (int e = 0; e < E; e++) /* wrong guesses not resident: read for nothing */
			if (r->pred[e] && !r->truth[e] && !r->s.c.resident[e]) {
				batch_add_expert(&r->b, m, r->p->layout, r->slot[e]);
				wasted += m->expert_bytes;
			}
	}
	for (int i = 0; i < k; i++) {
		int e = ids[i];
		int was = r->s.c.resident[e];
		int hit = r->ops->access(&r->s.c, e, t * k + i);
		a->hits[t] += hit;
		if (hit)
			continue;
		batch_add_expert(&r->b, m, r->p->layout, r->slot[e]);
		if (!was && r->p->prefetch != MOE_PREFETCH_NONE && r->pred[e])
			ahead += m->expert_bytes;
	}
	int n = batch_merge(&r->b, r->p->max_gap, &bytes);
	int par = r->p->parallelism < n ? r->p->parallelism : n;
	double ns = n ? flash_time_ns(&r->dev->flash, r->b.lens, n, par) : 0;
	double ahead_ns = bytes ? ns * (double)(ahead + wasted) / bytes : 0;
	a->io_ns[t] += ns;
	a->ahead_ns[t] += ahead_ns;
	r->ahead_lt[(size_t)l * r->rt->meta.tokens + t] = ahead_ns;
	r->demand_lt[(size_t)l * r->rt->meta.tokens + t] = ns - ahead_ns;
	a->ops[t] += (double)(r->s.c.inserts + r->s.c.evictions - ops0);
	a->wasted[t] += wasted;
	a->bytes[t] += bytes;
	a->reads[t] += n;
	if (r->s.c.log_n > r->s.c.log_cap) /* an access inserts at most once, so never */
		return MOE_ERR_LOG;
	a->copied[t] += (double)r->s.c.log_n * m->expert_bytes;
	if (!r->plan)
		return 0;
	return plan_add(r->plan, &r->b, n, l, t, ns, (double)(r->s.c.inserts + r->s.c.evictions - ops0)) ||
	       plan_add_copies(r->plan, m, &r->s.c, r->slot, l, t) ? -1 : 0;
}

static int layer_pass(struct layer_run *r, int l, struct acc *a)
{
	int E = r->rt->meta.experts;
	if (layer_init(&r->s, r->rt, l, r->p->expert_cache))
		return -1;
	if (r->p->layout == MOE_LAYOUT_COSEL) {
		if (cosel_order(r->rt, l, r->s.count, r->slot))
			return -1;
	} else {
		for (int e = 0; e < E; e++)
			r->slot[e] = e;
	}
	if (r->plan)
		memcpy(r->plan->slot + (size_t)l * E, r->slot, E * sizeof *r->slot);
	for (int64_t t = 0; t < r->rt->meta.tokens; t++) {
		int rc = layer_token(r, l, t, a);
		if (rc)
			return rc;
	}
	layer_free(&r->s);
	return 0;
}

int moe_layer_slots(const struct router_trace *rt, int l, int layout, int *slot)
{
	int E = rt->meta.experts;
	if (layout != MOE_LAYOUT_COSEL) {
		for (int e = 0; e < E; e++)
			slot[e] = e;
		return 0;
	}
	int64_t *count = calloc(E, sizeof *count);
	if (!count)
		return -1;
	int64_t n = rt->meta.tokens * rt->meta.top_k;
	for (int64_t i = 0; i < n; i++)
		count[rt->ids[(size_t)l * n + i]]++;
	int rc = cosel_order(rt, l, count, slot);
	free(count);
	return rc;
}

/* Compute per token: dense parts, routers, k experts (+ shared) per MoE
 * layer, the dense layers' FFN. */
static double token_compute_ns(const struct llm_desc *m, const struct compute_model *c,
			       int64_t context, int prefetch)
{
	double per_moe = ((double)m->experts_per_token * m->d_expert + m->d_shared) *
				 m->ffn_matrices * m->d_model + (double)m->d_model * m->experts;
	double ns = compute_dense_ns(c, m, context, NULL, NULL) +
		    m->moe_layers * compute_linear_ns(c, m, per_moe) +
		    m->dense_layers * compute_ffn_layer_ns(c, m, m->d_ffn);
	/* the trained predictor: one (experts x d_model) product per predicted layer */
	if (prefetch == MOE_PREFETCH_TRAINED)
		ns += (m->moe_layers - 1) * compute_linear_ns(c, m, (double)m->d_model * m->experts);
	return ns;
}

/* Mean pipelined token time (ns) over the counted tokens (moe.h). */
static double pipelined_ns(const struct layer_run *r, const struct compute_model *c,
			   double mem_ns)
{
	const struct llm_desc *m = r->m;
	const struct moe_params *p = r->p;
	int L = r->rt->meta.layers;
	int64_t T = r->rt->meta.tokens;
	double attn = 0, head = 0;
	double dense = compute_dense_ns(c, m, p->context_tokens, &attn, &head);
	double per_moe = ((double)m->experts_per_token * m->d_expert + m->d_shared) *
				 m->ffn_matrices * m->d_model + (double)m->d_model * m->experts;
	double layer_attn = m->layers ? attn / m->layers : 0;
	double moe_ns = compute_linear_ns(c, m, per_moe);
	double pred_ns = p->prefetch == MOE_PREFETCH_TRAINED
				 ? compute_linear_ns(c, m, (double)m->d_model * m->experts) : 0;
	double tail = dense - L * layer_attn + m->dense_layers * compute_ffn_layer_ns(c, m, m->d_ffn) +
		      mem_ns;
	double *io = malloc(2 * (size_t)L * sizeof *io), *cpu = io + L, sum = 0;
	if (!io)
		return NAN;
	for (int64_t t = p->warmup_tokens; t < T; t++) {
		for (int l = 0; l < L; l++) {
			io[l] = r->ahead_lt[(size_t)l * T + t];
			cpu[l] = r->demand_lt[(size_t)l * T + t] + layer_attn + moe_ns + (l ? pred_ns : 0);
		}
		sum += timeline_token_ns(TIMELINE_PIPELINED, io, cpu, L, p->depth, tail);
	}
	free(io);
	return sum / (double)(T - p->warmup_tokens);
}

static int check_run(const struct router_trace *rt, const struct llm_desc *m,
		     const struct device *dev, const struct moe_params *p, gsl_rng *rng,
		     struct lif_err *err)
{
	const struct router_meta *t = &rt->meta;
	if (!llm_is_moe(m))
		return err_set(err, ERR_INVAL, "moe: %s is not a mixture-of-experts model", m->name);
	if (t->experts != m->experts || t->top_k != m->experts_per_token ||
	    t->layers != m->moe_layers)
		return err_set(err, ERR_INVAL, "moe: the router trace (%d MoE layers, top-%d of %d) "
			       "does not match %s (%d MoE layers, top-%d of %d)", t->layers, t->top_k,
			       t->experts, m->name, m->moe_layers, m->experts_per_token, m->experts);
	char choices[128];
	if (!moe_cache_find(p->cache_policy))
		return err_set(err, ERR_INVAL, "moe: unknown cache policy '%s' (%s)", p->cache_policy,
			       conf_names_join(moe_policy_choice, choices, sizeof choices));
	if (p->expert_cache < 0 || p->expert_cache > m->experts)
		return err_set(err, ERR_INVAL, "moe: expert_cache %d outside [0, %d]", p->expert_cache,
			       m->experts);
	if (p->parallelism < 1)
		return err_set(err, ERR_INVAL, "moe: parallelism must be >= 1");
	if (p->overlap == TIMELINE_PIPELINED && p->depth < 1)
		return err_set(err, ERR_INVAL, "moe: depth must be >= 1");
	if (p->warmup_tokens < 0 || p->warmup_tokens >= t->tokens)
		return err_set(err, ERR_INVAL, "moe: warmup_tokens %lld leaves no token of %lld to count",
			       (long long)p->warmup_tokens, (long long)t->tokens);
	if (p->prefetch == MOE_PREFETCH_MODELED && !rng)
		return err_set(err, ERR_INVAL, "moe: the modeled predictor needs a random generator");
	if (p->prefetch == MOE_PREFETCH_TRAINED && !rt->inputs)
		return err_set(err, ERR_INVAL, "moe: prefetch = trained needs a router trace with router "
			       "inputs (lifsim record --inputs on an MoE checkpoint)");
	if (p->prefetch == MOE_PREFETCH_TRAINED && p->warmup_tokens < 1)
		return err_set(err, ERR_INVAL, "moe: prefetch = trained is fitted on the warm-up tokens: "
			       "warmup_tokens must be >= 1");
	return compute_check_model(&dev->compute, m, err);
}

double moe_mem_ns(const struct dram_model *d, double copied, double ops, double bytes_read)
{
	return dram_time_ns(d, dram_is_gpu(d) ? 0 : copied, ops, bytes_read);
}

static void summarize(const struct layer_run *r, const struct device *dev, const struct acc *a,
		      struct moe_result *out)
{
	const struct router_trace *rt = r->rt;
	const struct llm_desc *m = r->m;
	const struct moe_params *p = r->p;
	int64_t T = rt->meta.tokens, n = T - p->warmup_tokens;
	double io = 0, ahead = 0, ops = 0, bytes = 0, wasted = 0, reads = 0, hits = 0, pt = 0, pn = 0;
	double copied = 0;
	for (int64_t t = p->warmup_tokens; t < T; t++) {
		io += a->io_ns[t], ahead += a->ahead_ns[t], ops += a->ops[t], bytes += a->bytes[t];
		copied += a->copied[t];
		wasted += a->wasted[t], reads += a->reads[t], hits += a->hits[t];
		pt += a->pred_true[t], pn += a->pred_n[t];
	}
	memset(out, 0, sizeof *out);
	out->expert_cache = p->expert_cache;
	out->accesses = n * rt->meta.top_k * rt->meta.layers;
	out->hits = (int64_t)hits;
	out->expert_hit_rate = hits / out->accesses;
	out->expert_bytes_read_per_token = bytes / n;
	out->prefetch_wasted_bytes_per_token = wasted / n;
	out->reads_per_token = reads / n;
	out->io_ms = io / n * 1e-6;
	out->io_ahead_ms = ahead / n * 1e-6;
	out->expert_bytes_copied_per_token = copied / n;
	out->mem_ms = moe_mem_ns(&dev->dram, copied / n, ops / n, bytes / n) * 1e-6;
	out->compute_ms = token_compute_ns(m, &dev->compute, p->context_tokens, p->prefetch) * 1e-6;
	out->prefetch_recall = pn > 0 ? pt / pn : -1;
	out->total_ms = out->io_ms + out->mem_ms + out->compute_ms;
	if (p->overlap == TIMELINE_PIPELINED)
		out->total_ms = pipelined_ns(r, &dev->compute, out->mem_ms * 1e6) * 1e-6;
	out->tokens_per_s = 1e3 / out->total_ms;
	out->dram_bytes = moe_dram_bytes(m, p->expert_cache);
}

int moe_run(const struct router_trace *rt, const struct llm_desc *m, const struct device *dev,
	    const struct moe_params *p, gsl_rng *rng, struct moe_result *out,
	    struct lif_err *err)
{
	return moe_run_plan(rt, m, dev, p, rng, out, NULL, err);
}

int moe_run_plan(const struct router_trace *rt, const struct llm_desc *m,
		 const struct device *dev, const struct moe_params *p, gsl_rng *rng,
		 struct moe_result *out, struct moe_plan *plan, struct lif_err *err)
{
	if (check_run(rt, m, dev, p, rng, err))
		return err->code;
	if (plan) {
		size_t lt = (size_t)rt->meta.layers * rt->meta.tokens;
		*plan = (struct moe_plan){.layers = rt->meta.layers, .experts = m->experts,
					  .layout = p->layout, .tokens = rt->meta.tokens,
					  .region_bytes = moe_region_bytes(m),
					  .cache_bytes = (int64_t)p->expert_cache * m->expert_bytes};
		plan->first = calloc(lt + 1, sizeof *plan->first);
		plan->cfirst = calloc(lt + 1, sizeof *plan->cfirst);
		plan->io_ns = calloc(2 * lt + 1, sizeof *plan->io_ns);
		plan->ops = plan->io_ns ? plan->io_ns + lt : NULL;
		plan->slot = calloc((size_t)rt->meta.layers * m->experts, sizeof *plan->slot);
		if (!plan->first || !plan->io_ns || !plan->slot || !plan->cfirst)
			return err_set(err, ERR_NOMEM, "moe: out of memory for the plan");
	}
	int64_t T = rt->meta.tokens;
	int E = m->experts, cap = m->ffn_matrices * 2 * E;
	struct layer_run r = {.rt = rt, .m = m, .dev = dev, .p = p, .rng = rng,
			      .ops = moe_cache_find(p->cache_policy), .plan = plan};
	struct acc a;
	double *buf = calloc((size_t)T * 10, sizeof *buf);
	a.io_ns = buf, a.ahead_ns = buf + T, a.ops = buf + 2 * T, a.bytes = buf + 3 * T;
	a.wasted = buf + 4 * T, a.reads = buf + 5 * T, a.hits = buf + 6 * T;
	a.pred_true = buf + 7 * T, a.pred_n = buf + 8 * T, a.copied = buf + 9 * T;
	int16_t *trained = NULL;
	if (p->prefetch == MOE_PREFETCH_TRAINED && !(r.trained = trained = train_predictions(rt, p->warmup_tokens))) {
		free(buf);
		return err_set(err, ERR_NOMEM, "moe: cannot fit the trained predictor (out of memory or "
			       "a singular system)");
	}
	r.slot = malloc(E * sizeof *r.slot);
	r.pred = malloc(E);
	r.truth = malloc(E);
	r.b.x = malloc(cap * sizeof *r.b.x);
	r.b.lens = malloc(cap * sizeof *r.b.lens);
	r.b.offs = malloc(cap * sizeof *r.b.offs);
	r.b.cap = cap;
	r.ahead_lt = calloc(2 * (size_t)rt->meta.layers * T, sizeof *r.ahead_lt);
	r.demand_lt = r.ahead_lt ? r.ahead_lt + (size_t)rt->meta.layers * T : NULL;
	int rc = !buf || !r.slot || !r.pred || !r.truth || !r.b.x || !r.b.lens || !r.b.offs ||
		 !r.ahead_lt;
	for (int l = 0; !rc && l < rt->meta.layers; l++)
		rc = layer_pass(&r, l, &a);
	if (rc) {
		layer_free(&r.s);
		rc = rc == MOE_ERR_LOG ? err_set(err, ERR_INVAL, "moe: a layer's cache made more inserts "
						 "in one token than top_k (%d; a cache policy bug)",
						 rt->meta.top_k)
				       : err_set(err, ERR_NOMEM, "moe: out of memory");
	} else {
		summarize(&r, dev, &a, out);
	}
	free(buf);
	free(trained);
	free(r.ahead_lt);
	free(r.slot);
	free(r.pred);
	free(r.truth);
	free(r.b.x);
	free(r.b.lens);
	free(r.b.offs);
	return rc;
}
