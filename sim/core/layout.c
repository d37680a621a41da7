#include "sim/core/layout.h"

#include "traces/actlist.h"

#include <stdlib.h>
#include <string.h>

#define NEIGHBOURS 4

/* The m neurons each neuron co-fires with most (-1 where none), ties to the
 * lower id. nbr is (d, m). */
static int coact_neighbours(const struct actlist *c, int64_t n, int d, int m, int32_t *nbr)
{
	int32_t *co = calloc(d, sizeof *co), *touched = malloc(d * sizeof *touched);
	int64_t *first = malloc(d * sizeof *first), *next = NULL;
	int64_t total = c->start[n];
	next = malloc((total + 1) * sizeof *next);
	int32_t *tok_of = malloc((total + 1) * sizeof *tok_of);
	if (!co || !touched || !first || !next || !tok_of) {
		free(co), free(touched), free(first), free(next), free(tok_of);
		return ERR_NOMEM;
	}
	/* per neuron, a linked list of the tokens where it fires */
	for (int i = 0; i < d; i++)
		first[i] = -1;
	for (int64_t k = n - 1; k >= 0; k--)
		for (int64_t p = c->start[k]; p < c->start[k + 1]; p++) {
			int i = c->ids[p];
			next[p] = first[i];
			tok_of[p] = (int32_t)k;
			first[i] = p;
		}
	for (int i = 0; i < d; i++) {
		int nt = 0;
		for (int64_t p = first[i]; p >= 0; p = next[p]) {
			int64_t k = tok_of[p];
			for (int64_t q = c->start[k]; q < c->start[k + 1]; q++) {
				int j = c->ids[q];
				if (j != i && co[j]++ == 0)
					touched[nt++] = j;
			}
		}
		for (int s = 0; s < m; s++) {
			int best = -1;
			for (int u = 0; u < nt; u++) {
				int j = touched[u];
				if (co[j] > 0 && (best < 0 || co[j] > co[best] || (co[j] == co[best] && j < best)))
					best = j;
			}
			nbr[(size_t)i * m + s] = best;
			if (best >= 0)
				co[best] = -co[best]; /* taken: hide it from the next round */
		}
		for (int u = 0; u < nt; u++)
			co[touched[u]] = 0;
	}
	free(co), free(touched), free(first), free(next), free(tok_of);
	return 0;
}

static int place_identity(struct layout *l, const struct trace *t, int train_tokens, int threads,
			  struct lif_err *err)
{
	for (int64_t k = 0; k < (int64_t)l->layers * l->d_ffn; k++)
		l->pos[k] = (int32_t)(k % l->d_ffn);
	return 0;
}

/* Neurons sorted by decreasing count (ties by id). */
static int by_count_desc(const void *a, const void *b, void *ctx)
{
	const int64_t *counts = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	if (counts[x] != counts[y])
		return counts[x] < counts[y] ? 1 : -1;
	return (x > y) - (x < y);
}

void layout_order_by_count(const int64_t *counts, int d, int32_t *order)
{
	for (int i = 0; i < d; i++)
		order[i] = i;
	qsort_r(order, d, sizeof *order, by_count_desc, (void *)counts);
}

static int64_t train_len(const struct trace *t, int train_tokens)
{
	return train_tokens > 0 && train_tokens < t->meta.tokens ? train_tokens : t->meta.tokens;
}

/* hot: neurons in decreasing frequency. */
static int place_hot(struct layout *l, const struct actlist *c, int64_t n, int layer,
		     const int32_t *order)
{
	int32_t *pos = l->pos + (size_t)layer * l->d_ffn;
	for (int k = 0; k < l->d_ffn; k++)
		pos[order[k]] = k;
	return 0;
}

/* The NEIGHBOURS most co-active neurons of each neuron (d, NEIGHBOURS), or
 * NULL when out of memory. */
static int32_t *neighbours(const struct actlist *c, int64_t n, int d)
{
	int32_t *nbr = malloc((size_t)d * NEIGHBOURS * sizeof *nbr);
	if (nbr && coact_neighbours(c, n, d, NEIGHBOURS, nbr)) {
		free(nbr);
		return NULL;
	}
	return nbr;
}

/* friends: slot i holds neuron i and its most co-active neighbour. */
static int place_friends(struct layout *l, const struct actlist *c, int64_t n, int layer,
			 const int32_t *order)
{
	const int d = l->d_ffn;
	int32_t *pos = l->pos + (size_t)layer * d, *nbr = neighbours(c, n, d);
	if (!nbr)
		return ERR_NOMEM;
	for (int i = 0; i < d; i++) {
		pos[i] = i;
		l->friend_of[(size_t)layer * d + i] = nbr[(size_t)i * NEIGHBOURS];
	}
	free(nbr);
	return 0;
}

/* coact: chain each neuron after its best unplaced neighbour (the hottest
 * unplaced neuron when it has none). */
static int place_coact(struct layout *l, const struct actlist *c, int64_t n, int layer,
		       const int32_t *order)
{
	const int d = l->d_ffn;
	int32_t *pos = l->pos + (size_t)layer * d, *nbr = neighbours(c, n, d);
	uint8_t *placed = calloc(d, 1);
	if (!nbr || !placed) {
		free(nbr), free(placed);
		return ERR_NOMEM;
	}
	int k = 0, next_hot = 0, cur = -1;
	while (k < d) {
		int nxt = -1;
		for (int s = 0; cur >= 0 && s < NEIGHBOURS && nxt < 0; s++) {
			int j = nbr[(size_t)cur * NEIGHBOURS + s];
			if (j >= 0 && !placed[j])
				nxt = j;
		}
		while (nxt < 0 && placed[order[next_hot]])
			next_hot++;
		if (nxt < 0)
			nxt = order[next_hot];
		placed[nxt] = 1;
		pos[nxt] = k++;
		cur = nxt;
	}
	free(nbr), free(placed);
	return 0;
}

/* Per-layer placement by trace statistics: the layout's place_layer. */
static int place_layer(struct layout *l, const struct trace *t, int64_t n, int layer)
{
	const int d = l->d_ffn;
	struct actlist c = {0};
	int64_t *counts = malloc(d * sizeof *counts);
	int32_t *order = malloc(d * sizeof *order);
	int rc = counts && order ? actlist_build(t, layer, n, &c) : ERR_NOMEM;
	if (!rc) {
		actlist_counts(&c, d, counts);
		layout_order_by_count(counts, d, order);
		rc = layout_by_kind(l->kind)->place_layer(l, &c, n, layer, order);
	}
	actlist_free(&c);
	free(counts), free(order);
	return rc;
}

static int place_learned(struct layout *l, const struct trace *t, int train_tokens, int threads,
			 struct lif_err *err)
{
	if (!t)
		return err_set(err, ERR_INVAL, "layout %s needs a trace to learn its order from",
			       layout_by_kind(l->kind)->name);
	if (t->meta.layers != l->layers || t->meta.d_ffn != l->d_ffn)
		return err_set(err, ERR_INVAL, "trace has %d layers x %d neurons but the model %d x %d",
			       t->meta.layers, t->meta.d_ffn, l->layers, l->d_ffn);
	int64_t n = train_len(t, train_tokens);
	int bad = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad)
	for (int layer = 0; layer < l->layers; layer++)
		bad |= place_layer(l, t, n, layer) != 0;
	return bad ? err_set(err, ERR_NOMEM, "out of memory building the layout") : 0;
}

static const struct layout_ops op_separate = {
	.name = "separate",
	.kind = LAYOUT_SEPARATE,
	.needs_trace = 0,
	.split_matrices = 1,
	.place = place_identity,
};
static const struct layout_ops op_rowcol = {
	.name = "rowcol",
	.kind = LAYOUT_ROWCOL,
	.needs_trace = 0,
	.place = place_identity,
};
static const struct layout_ops op_hot = {
	.name = "hot",
	.kind = LAYOUT_HOT,
	.needs_trace = 1,
	.reorders = 1,
	.place = place_learned,
	.place_layer = place_hot,
};
static const struct layout_ops op_coact = {
	.name = "coact",
	.kind = LAYOUT_COACT,
	.needs_trace = 1,
	.reorders = 1,
	.place = place_learned,
	.place_layer = place_coact,
};
static const struct layout_ops op_friends = {
	.name = "friends",
	.kind = LAYOUT_FRIENDS,
	.needs_trace = 1,
	.pairs = 1,
	.place = place_learned,
	.place_layer = place_friends,
};

const struct layout_ops *const layout_strategies[] = {&op_separate, &op_rowcol, &op_hot,
						      &op_coact, &op_friends, NULL};

const char *layout_choice(int i)
{
	int n = (int)(sizeof layout_strategies / sizeof *layout_strategies) - 1;
	return i >= 0 && i < n ? layout_strategies[i]->name : NULL;
}

int layout_is_identity(const struct layout *l)
{
	const struct layout_ops *ops = layout_by_kind(l->kind);
	return l->bundle == 1 && !l->friend_of && !(ops && ops->reorders);
}

const struct layout_ops *layout_find(const char *name)
{
	for (int i = 0; layout_strategies[i]; i++)
		if (!strcmp(layout_strategies[i]->name, name))
			return layout_strategies[i];
	return NULL;
}

const struct layout_ops *layout_by_kind(int kind)
{
	for (int i = 0; layout_strategies[i]; i++)
		if (layout_strategies[i]->kind == kind)
			return layout_strategies[i];
	return NULL;
}

struct layout *layout_new(int kind, const struct llm_desc *m, const struct trace *t,
			  int bundle, int train_tokens, int threads, struct lif_err *err)
{
	const struct layout_ops *ops = layout_by_kind(kind);
	if (!ops) {
		err_set(err, ERR_INVAL, "unknown layout kind %d", kind);
		return NULL;
	}
	if (bundle < 1 || bundle > m->d_ffn) {
		err_set(err, ERR_INVAL, "bundle %d must be in [1, d_ffn=%d]", bundle, m->d_ffn);
		return NULL;
	}
	struct layout *l = calloc(1, sizeof *l);
	if (!l) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	int64_t neuron_bytes = m->row_bytes; /* one matrix's row of the neuron */
	l->kind = kind, l->layers = m->layers, l->d_ffn = m->d_ffn, l->bundle = bundle;
	l->regions = ops->split_matrices ? m->ffn_matrices : 1;
	l->piece_bytes = ops->split_matrices ? neuron_bytes : m->bundle_bytes;
	l->slot_bytes = ops->pairs ? 2 * m->bundle_bytes : l->piece_bytes;
	l->region_bytes = l->slot_bytes * m->d_ffn;
	l->layer_bytes = l->region_bytes * l->regions;
	l->pos = malloc((size_t)m->layers * m->d_ffn * sizeof *l->pos);
	if (ops->pairs)
		l->friend_of = malloc((size_t)m->layers * m->d_ffn * sizeof *l->friend_of);
	if (!l->pos || (ops->pairs && !l->friend_of)) {
		err_set(err, ERR_NOMEM, "out of memory");
		layout_free(l);
		return NULL;
	}
	if (ops->place(l, t, train_tokens, threads, err)) {
		layout_free(l);
		return NULL;
	}
	return l;
}

void layout_free(struct layout *l)
{
	if (!l)
		return;
	free(l->pos);
	free(l->friend_of);
	free(l);
}
