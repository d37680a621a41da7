#include "sim/core/step.h"

#include <stdlib.h>
#include <string.h>

/* The union of the last k rows of a stream of bit sets, in O(1) row
 * operations per row (amortized): the stream is cut into blocks of k rows;
 * a window is a suffix of the previous block (suffix ORs, computed once per
 * block) plus a prefix of the current one (a running OR). */
struct winor {
	int k, nw;
	int64_t pos;        /* rows pushed so far */
	uint64_t *block;    /* (k, nw) rows of the current block */
	uint64_t *suffix;   /* (k + 1, nw) suffix ORs of the previous block; row k is 0 */
	uint64_t *prefix;   /* (nw) OR of the current block so far */
};

static void winor_free(struct winor *w)
{
	free(w->block), free(w->suffix), free(w->prefix);
}

static int winor_init(struct winor *w, int k, int nw)
{
	memset(w, 0, sizeof *w);
	w->k = k, w->nw = nw;
	w->block = calloc((size_t)(k > 0 ? k : 1) * nw, sizeof *w->block);
	w->suffix = calloc((size_t)(k + 1) * nw, sizeof *w->suffix);
	w->prefix = calloc(nw, sizeof *w->prefix);
	return w->block && w->suffix && w->prefix ? 0 : ERR_NOMEM;
}

/* Push row q; u receives the OR of the last k rows (q included). */
static void winor_push(struct winor *w, const uint64_t *q, uint64_t *u)
{
	const int k = w->k, nw = w->nw;
	if (k == 0) {
		memset(u, 0, nw * sizeof *u);
		return;
	}
	int i = (int)(w->pos % k); /* index in the current block */
	memcpy(w->block + (size_t)i * nw, q, nw * sizeof *q);
	const uint64_t *suf = w->suffix + (size_t)(i + 1) * nw;
	for (int j = 0; j < nw; j++) {
		w->prefix[j] |= q[j];
		u[j] = suf[j] | w->prefix[j];
	}
	w->pos++;
	if (i == k - 1) { /* block complete: its suffix ORs serve the next block */
		memset(w->suffix + (size_t)k * nw, 0, nw * sizeof *w->suffix);
		for (int r = k - 1; r >= 0; r--)
			for (int j = 0; j < nw; j++)
				w->suffix[(size_t)r * nw + j] =
					w->block[(size_t)r * nw + j] | w->suffix[(size_t)(r + 1) * nw + j];
		memset(w->prefix, 0, nw * sizeof *w->prefix);
	}
}

/* One layer's state. */
struct step_layer {
	const struct layout *layout;
	int layer, d, rb, nw;
	uint64_t *words;    /* 5 bit sets of nw + 1 words: predicted, pinned, need, R, U */
	int32_t *dying;     /* (d) */
	struct memman_move *moves;
	struct memman *mm;
	struct planner *pl;
	struct winor win;
};

void step_layer_free(struct step_layer *s)
{
	if (!s)
		return;
	free(s->words), free(s->dying), free(s->moves);
	memman_free(s->mm);
	planner_free(s->pl);
	winor_free(&s->win);
	free(s);
}

/* Copy a packed row of rb bytes into nw zero-padded 64-bit words. */
static inline void load_words(uint64_t *w, const uint8_t *row, int rb, int nw)
{
	w[nw - 1] = 0;
	memcpy(w, row, rb);
}


/* The five word sets of s. */
#define SET(s, i) ((s)->words + (size_t)(i) * ((s)->nw + 1))

struct step_layer *step_layer_new(const struct layout *layout, int layer, int64_t tokens,
				  int window, int64_t max_gap, const uint8_t *pinned,
				  struct lif_err *err)
{
	struct step_layer *s = calloc(1, sizeof *s);
	if (!s) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	const int d = layout->d_ffn;
	s->layout = layout, s->layer = layer, s->d = d;
	s->rb = (d + 7) / 8, s->nw = (s->rb + 7) / 8;
	if (window > tokens)
		window = (int)tokens; /* a window longer than the trace keeps everything */
	s->words = calloc(5 * (size_t)(s->nw + 1), sizeof *s->words);
	s->dying = malloc(d * sizeof *s->dying);
	s->moves = malloc(d * sizeof *s->moves);
	if (!s->words || !s->dying || !s->moves || winor_init(&s->win, window, s->nw)) {
		err_set(err, ERR_NOMEM, "out of memory");
		step_layer_free(s);
		return NULL;
	}
	if (!(s->mm = memman_new(d, err)) || !(s->pl = planner_new(layout, max_gap, err))) {
		step_layer_free(s);
		return NULL;
	}
	if (pinned)
		load_words(SET(s, 1), pinned, s->rb, s->nw);
	return s;
}

int step_layer_next(struct step_layer *s, const uint8_t *pred_row, struct step_out *out,
		    struct lif_err *err)
{
	const int nw = s->nw;
	uint64_t *P = SET(s, 0), *pin = SET(s, 1), *need = SET(s, 2), *R = SET(s, 3), *U = SET(s, 4);
	int64_t nload = 0, npred = 0, ndie = 0, npinned = 0;
	/* 1: what must be read: predicted, not pinned, not in the window */
	load_words(P, pred_row, s->rb, nw);
	for (int j = 0; j < nw; j++) {
		npred += __builtin_popcountll(P[j]);
		npinned += __builtin_popcountll(P[j] & pin[j]);
		P[j] &= ~pin[j];
		need[j] = P[j] & ~R[j];
		nload += __builtin_popcountll(need[j]);
	}
	/* 2: the reads */
	if (planner_plan(s->pl, s->layer, (const uint8_t *)need, err))
		return err->code;
	/* 3: the loaded neurons go at the end of the matrix */
	out->first_row = s->mm->used;
	for (int j = 0; j < nw; j++)
		for (uint64_t b = need[j]; b; b &= b - 1)
			memman_insert(s->mm, j * 64 + __builtin_ctzll(b));
	out->used_rows = s->mm->used + (int32_t)npinned;
	/* 4: the window moves on; delete what leaves it */
	winor_push(&s->win, P, U);
	for (int j = 0; j < nw; j++) {
		for (uint64_t b = (R[j] | P[j]) & ~U[j]; b; b &= b - 1)
			s->dying[ndie++] = j * 64 + __builtin_ctzll(b);
		R[j] = U[j];
	}
	out->nmoves = memman_delete(s->mm, s->dying, (int)ndie, s->moves);
	out->need = (const uint8_t *)need;
	out->npred = npred, out->nload = nload, out->ndie = ndie;
	out->plan = s->pl;
	out->moves = s->moves;
	out->window_rows = s->mm->used;
	return 0;
}

const struct memman *step_layer_memman(const struct step_layer *s)
{
	return s->mm;
}

int32_t step_layer_peak_rows(const struct step_layer *s)
{
	return s->mm->peak;
}
