#include "sim/core/step.h"
#include "sim/core/winor.h"

#include <stdlib.h>
#include <string.h>


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
