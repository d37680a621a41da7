#include "traces/router_stats.h"

#include "sim/base/atomic.h"

#include <stdlib.h>
#include <string.h>

void router_stack_distances(const struct router_trace *rt, int layer, int64_t *hist,
			    int64_t *first)
{
	int E = rt->meta.experts, k = rt->meta.top_k, depth = 0;
	int16_t *stack = malloc(E * sizeof *stack); /* MRU first */
	memset(hist, 0, (E + 1) * sizeof *hist);
	*first = 0;
	for (int64_t t = 0; stack && t < rt->meta.tokens; t++) {
		const int16_t *id = router_ids(rt, layer, t);
		for (int i = 0; i < k; i++) {
			int p = 0;
			while (p < depth && stack[p] != id[i])
				p++;
			if (p == depth) {
				(*first)++;
				depth++;
			} else {
				hist[p + 1]++;
			}
			memmove(stack + 1, stack, p * sizeof *stack);
			stack[0] = id[i];
		}
	}
	free(stack);
}

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x < y) - (x > y);
}

static void popularity(const struct router_trace *rt, int l, struct router_stats_layer *s)
{
	int E = rt->meta.experts, k = rt->meta.top_k;
	int64_t T = rt->meta.tokens;
	for (int64_t t = 0; t < T; t++)
		for (int i = 0; i < k; i++)
			s->popularity[router_ids(rt, l, t)[i]] += 1;
	double *sorted = malloc(E * sizeof *sorted);
	if (!sorted)
		return;
	for (int e = 0; e < E; e++)
		sorted[e] = s->popularity[e] = T ? s->popularity[e] / T : 0;
	qsort(sorted, E, sizeof *sorted, cmp_desc);
	int top = E / 10 > 0 ? E / 10 : 1;
	double sum = 0;
	for (int e = 0; e < top; e++)
		sum += sorted[e];
	s->top_share = T ? sum / k : 0;
	free(sorted);
}

static void reuse(const struct router_trace *rt, int l, struct router_stats_layer *s)
{
	int E = rt->meta.experts, k = rt->meta.top_k;
	int64_t T = rt->meta.tokens, *last = malloc(E * sizeof *last);
	if (!last || !T) {
		free(last);
		return;
	}
	for (int e = 0; e < E; e++)
		last[e] = -1;
	for (int64_t t = 0; t < T; t++)
		for (int i = 0; i < k; i++) {
			int e = router_ids(rt, l, t)[i];
			int64_t d = last[e] < 0 ? -1 : t - last[e];
			if (d < 0)
				s->reuse_first += 1;
			else if (d > ROUTER_STATS_MAX_REUSE)
				s->reuse_far += 1;
			else
				s->reuse[d] += 1;
			last[e] = t;
		}
	double n = (double)T * k;
	for (int d = 1; d <= ROUTER_STATS_MAX_REUSE; d++)
		s->reuse[d] /= n;
	s->reuse_far /= n;
	s->reuse_first /= n;
	s->repeat = s->reuse[1];
	free(last);
}

static void lru_curve(const struct router_trace *rt, int l, struct router_stats_layer *s,
		      int64_t *pooled)
{
	int E = rt->meta.experts;
	int64_t *hist = calloc(E + 1, sizeof *hist), first, cum = 0;
	if (!hist)
		return;
	router_stack_distances(rt, l, hist, &first);
	double n = (double)rt->meta.tokens * rt->meta.top_k;
	for (int c = 0; c <= E; c++) {
		cum += c ? hist[c] : 0;
		s->lru_hit[c] = n > 0 ? cum / n : 0;
		pooled[c] += c ? hist[c] : 0;
	}
	free(hist);
}

/* Co-selection counts of one layer: C[a * E + b], a != b, in the same row. */
static void coselection(const struct router_trace *rt, int l, struct router_stats_layer *s,
			int64_t *C)
{
	int E = rt->meta.experts, k = rt->meta.top_k;
	memset(C, 0, (size_t)E * E * sizeof *C);
	for (int64_t t = 0; t < rt->meta.tokens; t++) {
		const int16_t *id = router_ids(rt, l, t);
		for (int i = 0; i < k; i++)
			for (int j = 0; j < k; j++)
				C[(size_t)id[i] * E + id[j]] += i != j;
	}
	double sum = 0;
	int n = 0;
	for (int a = 0; a < E; a++) {
		int64_t best = 0, cnt = (int64_t)(s->popularity[a] * rt->meta.tokens + 0.5);
		for (int b = 0; b < E; b++)
			best = C[(size_t)a * E + b] > best ? C[(size_t)a * E + b] : best;
		if (cnt > 0)
			sum += (double)best / cnt, n++;
	}
	s->cosel_best = n ? sum / n : 0;
	s->cosel_random = E > 1 ? (double)(k - 1) / (E - 1) : 0;
}

/* The k largest of score (E), as a mark per expert. */
static void top_k_mark(const double *score, int E, int k, uint8_t *mark)
{
	memset(mark, 0, E);
	for (int i = 0; i < k; i++) {
		int best = -1;
		for (int e = 0; e < E; e++)
			if (!mark[e] && (best < 0 || score[e] > score[best]))
				best = e;
		mark[best] = 1;
	}
}

/* In-sample one-layer-ahead prediction of layer l+1 from layer l. */
static void next_layer(const struct router_trace *rt, int l, struct router_stats_layer *s,
		       const struct router_stats_layer *next, int64_t *C)
{
	int E = rt->meta.experts, k = rt->meta.top_k;
	int64_t T = rt->meta.tokens;
	double *score = malloc(E * sizeof *score);
	uint8_t *mark = malloc(E), *pop = malloc(E);
	if (!score || !mark || !pop || !T)
		goto out;
	memset(C, 0, (size_t)E * E * sizeof *C);
	for (int64_t t = 0; t < T; t++)
		for (int i = 0; i < k; i++)
			for (int j = 0; j < k; j++)
				C[(size_t)router_ids(rt, l, t)[i] * E + router_ids(rt, l + 1, t)[j]]++;
	top_k_mark(next->popularity, E, k, pop);
	double hit = 0, hit_pop = 0;
	for (int64_t t = 0; t < T; t++) {
		memset(score, 0, E * sizeof *score);
		for (int i = 0; i < k; i++)
			for (int e = 0; e < E; e++)
				score[e] += C[(size_t)router_ids(rt, l, t)[i] * E + e];
		top_k_mark(score, E, k, mark);
		for (int j = 0; j < k; j++) {
			hit += mark[router_ids(rt, l + 1, t)[j]];
			hit_pop += pop[router_ids(rt, l + 1, t)[j]];
		}
	}
	s->next_layer_acc = hit / ((double)T * k);
	s->next_layer_pop = hit_pop / ((double)T * k);
out:
	free(score);
	free(mark);
	free(pop);
}

static int alloc_layer(struct router_stats_layer *s, int E)
{
	s->popularity = calloc(E, sizeof *s->popularity);
	s->lru_hit = calloc(E + 1, sizeof *s->lru_hit);
	s->next_layer_acc = s->next_layer_pop = -1;
	return s->popularity && s->lru_hit ? 0 : -1;
}

static void average(struct router_stats *r, const int64_t *pooled)
{
	struct router_stats_layer *a = &r->all;
	int L = r->layers, E = r->experts;
	double n = (double)r->tokens * r->top_k * L;
	for (int l = 0; l < L; l++) {
		const struct router_stats_layer *s = &r->layer[l];
		for (int e = 0; e < E; e++)
			a->popularity[e] += s->popularity[e] / L;
		for (int d = 1; d <= ROUTER_STATS_MAX_REUSE; d++)
			a->reuse[d] += s->reuse[d] / L;
		a->top_share += s->top_share / L, a->reuse_far += s->reuse_far / L;
		a->reuse_first += s->reuse_first / L, a->repeat += s->repeat / L;
		a->cosel_best += s->cosel_best / L, a->cosel_random = s->cosel_random;
		if (L > 1 && l < L - 1) {
			a->next_layer_acc += s->next_layer_acc / (L - 1);
			a->next_layer_pop += s->next_layer_pop / (L - 1);
		}
	}
	int64_t cum = 0;
	for (int c = 0; c <= E; c++) {
		cum += c ? pooled[c] : 0;
		a->lru_hit[c] = n > 0 ? cum / n : 0;
	}
}

int router_stats_compute(const struct router_trace *rt, struct router_stats *r,
			 struct lif_err *err)
{
	int L = rt->meta.layers, E = rt->meta.experts;
	memset(r, 0, sizeof *r);
	r->layers = L, r->experts = E, r->top_k = rt->meta.top_k, r->tokens = rt->meta.tokens;
	r->layer = calloc(L, sizeof *r->layer);
	int64_t *C = malloc((size_t)E * E * sizeof *C), *pooled = calloc(E + 1, sizeof *pooled);
	int rc = !r->layer || !C || !pooled || alloc_layer(&r->all, E);
	for (int l = 0; !rc && l < L; l++)
		rc = alloc_layer(&r->layer[l], E);
	if (rc) {
		free(C);
		free(pooled);
		return err_set(err, ERR_NOMEM, "router stats: out of memory");
	}
	r->all.next_layer_acc = r->all.next_layer_pop = 0;
	for (int l = 0; l < L; l++) {
		popularity(rt, l, &r->layer[l]);
		reuse(rt, l, &r->layer[l]);
		lru_curve(rt, l, &r->layer[l], pooled);
		coselection(rt, l, &r->layer[l], C);
	}
	for (int l = 0; l + 1 < L; l++)
		next_layer(rt, l, &r->layer[l], &r->layer[l + 1], C);
	average(r, pooled);
	if (L < 2)
		r->all.next_layer_acc = r->all.next_layer_pop = -1;
	free(C);
	free(pooled);
	return 0;
}

void router_stats_free(struct router_stats *r)
{
	for (int l = 0; r->layer && l < r->layers; l++) {
		free(r->layer[l].popularity);
		free(r->layer[l].lru_hit);
	}
	free(r->layer);
	free(r->all.popularity);
	free(r->all.lru_hit);
	memset(r, 0, sizeof *r);
}

static void write_layer(FILE *f, const struct router_stats *r, const struct router_stats_layer *s,
			const char *layer)
{
	for (int e = 0; e < r->experts; e++)
		fprintf(f, "popularity,%s,%d,%.17g\n", layer, e, s->popularity[e]);
	fprintf(f, "top10_share,%s,,%.17g\n", layer, s->top_share);
	for (int d = 1; d <= ROUTER_STATS_MAX_REUSE; d++)
		fprintf(f, "reuse_distance,%s,%d,%.17g\n", layer, d, s->reuse[d]);
	fprintf(f, "reuse_far,%s,,%.17g\nreuse_first,%s,,%.17g\nrepeat,%s,,%.17g\n", layer,
		s->reuse_far, layer, s->reuse_first, layer, s->repeat);
	for (int c = 0; c <= r->experts; c++)
		fprintf(f, "lru_hit_rate,%s,%d,%.17g\n", layer, c, s->lru_hit[c]);
	fprintf(f, "cosel_best,%s,,%.17g\ncosel_random,%s,,%.17g\n", layer, s->cosel_best, layer,
		s->cosel_random);
	if (s->next_layer_acc >= 0)
		fprintf(f, "next_layer_acc,%s,,%.17g\nnext_layer_pop,%s,,%.17g\n", layer,
			s->next_layer_acc, layer, s->next_layer_pop);
}

int router_stats_write_csv(const struct router_stats *r, const char *path, struct lif_err *err)
{
	struct atomic_file af;
	if (atomic_open(&af, path, err))
		return err->code;
	fprintf(af.fp, "metric,layer,x,value\n");
	char name[16];
	for (int l = 0; l < r->layers; l++) {
		snprintf(name, sizeof name, "%d", l);
		write_layer(af.fp, r, &r->layer[l], name);
	}
	write_layer(af.fp, r, &r->all, "all");
	return atomic_commit(&af, err);
}
