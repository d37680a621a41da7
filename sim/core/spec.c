/* spec: speculative decoding's loads; see sim/core/spec.h. */
#include "sim/core/spec.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int spec_accepted(double alpha, int lambda, uint64_t seed, int64_t step)
{
	uint64_t s = mix(seed ^ mix((uint64_t)step));
	int a = 0;
	while (a < lambda) {
		s = mix(s);
		if ((double)(s >> 11) * 0x1.0p-53 >= alpha)
			break;
		a++;
	}
	return a;
}

struct spec_layer {
	const struct layout *layout;
	int layer, d, window;
	int64_t t;          /* tokens emitted so far */
	int64_t *last;      /* (d) last emitted token that predicted the neuron; -1 none */
	uint8_t *pinned;    /* (d) */
	uint8_t *in_u;      /* (d) scratch: in this step's union */
	uint8_t *need;      /* packed scratch for the planner */
	int32_t *dying;
	struct memman_move *moves;
	struct memman *mm;
	struct planner *pl;
};

void spec_layer_free(struct spec_layer *s)
{
	if (!s)
		return;
	free(s->last), free(s->pinned), free(s->in_u), free(s->need), free(s->dying);
	free(s->moves);
	memman_free(s->mm);
	planner_free(s->pl);
	free(s);
}

struct spec_layer *spec_layer_new(const struct layout *layout, int layer, int window,
				  int64_t max_gap, const uint8_t *pinned, struct lif_err *err)
{
	struct spec_layer *s = calloc(1, sizeof *s);
	const int d = layout->d_ffn;
	if (s) {
		s->layout = layout, s->layer = layer, s->d = d, s->window = window;
		s->last = malloc(d * sizeof *s->last);
		s->pinned = calloc(d, 1), s->in_u = calloc(d, 1);
		s->need = calloc((d + 7) / 8 + 8, 1);
		s->dying = malloc(d * sizeof *s->dying);
		s->moves = malloc(d * sizeof *s->moves);
	}
	if (!s || !s->last || !s->pinned || !s->in_u || !s->need || !s->dying || !s->moves) {
		spec_layer_free(s);
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	for (int i = 0; i < d; i++) {
		s->last[i] = -1;
		s->pinned[i] = pinned ? (uint8_t)((pinned[i / 8] >> (i % 8)) & 1) : 0;
	}
	if (!(s->mm = memman_new(d, err)) || !(s->pl = planner_new(layout, max_gap, err))) {
		spec_layer_free(s);
		return NULL;
	}
	return s;
}

static inline int bit(const uint8_t *row, int i) { return (row[i / 8] >> (i % 8)) & 1; }

int spec_layer_step(struct spec_layer *s, const uint8_t *const *rows, int n, int emitted,
		    struct spec_out *out, struct lif_err *err)
{
	if (n < 1 || emitted < 1 || emitted > n)
		return err_set(err, ERR_INVAL, "spec: %d tokens emitted of %d verified", emitted, n);
	const int d = s->d;
	int64_t nunion = 0, nload = 0, npinned = 0;
	memset(s->need, 0, (d + 7) / 8);
	/* 1, 2: the union, and what of it is not in the matrix */
	for (int i = 0; i < d; i++) {
		int u = 0;
		for (int j = 0; j < n && !u; j++)
			u = bit(rows[j], i);
		s->in_u[i] = (uint8_t)u;
		if (!u)
			continue;
		nunion++;
		if (s->pinned[i]) {
			npinned++;
			continue;
		}
		if (s->mm->neuron_row[i] < 0) {
			s->need[i / 8] |= (uint8_t)(1u << (i % 8));
			nload++;
		}
	}
	if (planner_plan(s->pl, s->layer, s->need, err))
		return err->code;
	/* 3: append the loaded neurons, in neuron order */
	for (int i = 0; i < d; i++)
		if (bit(s->need, i))
			memman_insert(s->mm, i);
	out->used_rows = s->mm->used + (int32_t)npinned;
	/* 4: the window follows the emitted tokens */
	for (int j = 0; j < emitted; j++)
		for (int i = 0; i < d; i++)
			if (bit(rows[j], i) && !s->pinned[i])
				s->last[i] = s->t + j;
	s->t += emitted;
	int64_t ndie = 0;
	/* in neuron order, as the stepper deletes (the copies depend on it) */
	for (int32_t i = 0; i < d; i++)
		if (s->mm->neuron_row[i] >= 0 && (s->window == 0 || s->last[i] < s->t - s->window))
			s->dying[ndie++] = i;
	out->nmoves = memman_delete(s->mm, s->dying, (int)ndie, s->moves);
	out->nunion = nunion, out->nload = nload, out->ndie = ndie;
	out->window_rows = s->mm->used;
	out->plan = s->pl;
	return 0;
}

int32_t spec_layer_peak_rows(const struct spec_layer *s)
{
	return s->mm->peak;
}
