#include "sim/core/planner.h"

#include <stdlib.h>
#include <string.h>

struct planner *planner_new(const struct layout *l, int64_t max_gap, struct lif_err *err)
{
	struct planner *p = calloc(1, sizeof *p);
	int64_t units = (l->d_ffn + l->bundle - 1) / l->bundle;
	if (p) {
		p->layout = l;
		p->max_gap = max_gap;
		p->units = calloc((units + 7) / 8 + 16, 1);
		p->covered = calloc((l->d_ffn + 7) / 8 + 8, 1);
		p->cap = 1024;
		p->ext = malloc(p->cap * sizeof *p->ext);
	}
	if (!p || !p->units || !p->covered || !p->ext) {
		planner_free(p);
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	return p;
}

void planner_free(struct planner *p)
{
	if (!p)
		return;
	free(p->units);
	free(p->covered);
	free(p->ext);
	free(p);
}

static int push(struct planner *p, int64_t off, int64_t bytes)
{
	if (p->n > 0 && p->max_gap >= 0) {
		struct extent *e = &p->ext[p->n - 1];
		int64_t gap = off - (e->offset + e->bytes);
		if (gap >= 0 && gap <= p->max_gap) {
			p->bytes_read += gap + bytes;
			e->bytes = off + bytes - e->offset;
			return 0;
		}
	}
	if (p->n == p->cap) {
		size_t cap = 2 * p->cap;
		void *x = realloc(p->ext, cap * sizeof *p->ext);
		if (!x)
			return ERR_NOMEM;
		p->ext = x;
		p->cap = cap;
	}
	p->ext[p->n].offset = off;
	p->ext[p->n++].bytes = bytes;
	p->bytes_read += bytes;
	return 0;
}

/* Mark the read units holding the needed neurons; returns how many neurons. */
static int64_t mark_units(struct planner *p, int layer, const uint8_t *need)
{
	const struct layout *l = p->layout;
	const int32_t *pos = l->pos + (size_t)layer * l->d_ffn;
	const int32_t *fr = l->friend_of ? l->friend_of + (size_t)layer * l->d_ffn : NULL;
	const int rb = (l->d_ffn + 7) / 8;
	int64_t n = 0;
	if (fr)
		memset(p->covered, 0, rb);
	for (int j = 0; j < rb; j += 8) {
		uint64_t w = 0;
		memcpy(&w, need + j, rb - j < 8 ? (size_t)(rb - j) : 8);
		for (; w; w &= w - 1) {
			int i = j * 8 + __builtin_ctzll(w);
			n++;
			if (fr && ((p->covered[i >> 3] >> (i & 7)) & 1))
				continue; /* came in beside a friend read earlier */
			int64_t u = pos[i] / l->bundle;
			p->units[u >> 3] |= (uint8_t)(1u << (u & 7));
			if (fr && fr[i] >= 0)
				p->covered[fr[i] >> 3] |= (uint8_t)(1u << (fr[i] & 7));
		}
	}
	return n;
}

int planner_plan(struct planner *p, int layer, const uint8_t *need, struct lif_err *err)
{
	const struct layout *l = p->layout;
	const int64_t units = (l->d_ffn + l->bundle - 1) / l->bundle, ub = (units + 7) / 8;
	p->n = 0;
	p->bytes_read = 0;
	int64_t neurons = 0;
	if (layout_is_identity(l)) {
		/* neuron i sits in slot i: the units are the needed neurons */
		const int rb = (l->d_ffn + 7) / 8;
		memcpy(p->units, need, rb);
		memset(p->units + rb, 0, 8);
		for (int j = 0; j < rb; j++)
			neurons += __builtin_popcount(need[j]);
	} else {
		memset(p->units, 0, ub + 8);
		neurons = mark_units(p, layer, need);
	}
	p->useful_bytes = neurons * l->piece_bytes * l->regions;
	for (int r = 0; r < l->regions; r++)
		for (int64_t j = 0; j < ub; j += 8) {
			uint64_t w;
			memcpy(&w, p->units + j, 8); /* units has 8 bytes of zero padding */
			for (; w; w &= w - 1) {
				int64_t u = j * 8 + __builtin_ctzll(w), s0 = u * l->bundle;
				int64_t slots = s0 + l->bundle <= l->d_ffn ? l->bundle : l->d_ffn - s0;
				if (push(p, layout_offset(l, layer, r, s0), slots * l->slot_bytes))
					return err_set(err, ERR_NOMEM, "out of memory planning reads");
			}
		}
	return 0;
}
