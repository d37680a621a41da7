/*
 * layout: where each FFN neuron's weights live in the weight file, one const
 * vtable per strategy (ARCHITECTURE.md, "Layout strategies"):
 *   separate  up columns, (gate columns,) down rows in 2 (3) regions: one
 *             read per matrix per neuron, each d_model * bytes;
 *   rowcol    column i of up (and gate) beside row i of down: one read of
 *             ffn_matrices * d_model * bytes per neuron (the paper's bundling);
 *   hot       rowcol with neurons in decreasing frequency, so hot ones sit
 *             together and reads merge;
 *   coact     rowcol with neurons chained by co-activation (each placed after
 *             the neuron it fires with most), so co-active ones sit together;
 *   friends   the paper's closest-friend bundles (Appendix D): slot i holds
 *             neuron i and its closest friend, so a read brings both; hot
 *             neurons are everyone's friend and get read over and over.
 * The ordering layouts learn from the first `train_tokens` tokens of a trace.
 *
 * A layout is geometry only: per layer, `regions` regions of d_ffn slots of
 * `slot_bytes` each; neuron i is at slot pos[i] in every region; reads are in
 * units of `bundle` consecutive slots. Offsets are relative to the start of
 * the FFN of layer 0; the weight-file writer (real path) adds its header and
 * alignment. Pure: no I/O.
 */
#ifndef LIFSIM_LAYOUT_H
#define LIFSIM_LAYOUT_H

#include <stdint.h>

#include "models/llm.h"
#include "sim/base/err.h"
#include "traces/trace.h"

enum layout_kind { LAYOUT_SEPARATE, LAYOUT_ROWCOL, LAYOUT_HOT, LAYOUT_COACT, LAYOUT_FRIENDS };

struct layout {
	int kind;            /* enum layout_kind */
	int layers, d_ffn;
	int regions;         /* separate: ffn_matrices; otherwise 1 */
	int bundle;          /* slots per read unit */
	int64_t piece_bytes; /* one neuron's bytes in one region (d_model * bytes, or the bundle) */
	int64_t slot_bytes;  /* bytes of one slot (friends: two neurons) */
	int64_t region_bytes;/* d_ffn * slot_bytes */
	int64_t layer_bytes; /* regions * region_bytes */
	int32_t *pos;        /* (layers, d_ffn) slot of each neuron */
	int32_t *friend_of;  /* friends: (layers, d_ffn) the neuron stored beside it, or -1 */
};

struct actlist;

struct layout_ops {
	const char *name;
	int kind;
	int needs_trace;    /* learns an order from the trace */
	int split_matrices; /* one region per FFN matrix (else the matrices bundled) */
	int pairs;          /* a slot holds a neuron and its closest friend (friend_of) */
	int reorders;       /* neuron i need not sit in slot i */
	/* Fill pos (and friend_of) for every layer. */
	int (*place)(struct layout *l, const struct trace *t, int train_tokens, int threads,
		     struct lif_err *err);
	/* Layouts that learn: place one layer from its first n tokens' activations
	 * c and its neurons by decreasing count (order). */
	int (*place_layer)(struct layout *l, const struct actlist *c, int64_t n, int layer,
			   const int32_t *order);
};

/* The strategies, and lookup by name or kind. */
extern const struct layout_ops *const layout_strategies[];
const struct layout_ops *layout_find(const char *name);
const struct layout_ops *layout_by_kind(int kind);
/* The name of layout_strategies[i], or NULL past the last: the INI and CLI
 * choices (a conf_names_fn). */
const char *layout_choice(int i);

/* Build a layout of model m. t may be NULL for layouts that need no trace.
 * bundle >= 1 slots per read unit. */
struct layout *layout_new(int kind, const struct llm_desc *m, const struct trace *t,
			  int bundle, int train_tokens, int threads, struct lif_err *err);
void layout_free(struct layout *l);

/* Neuron i sits alone in slot i, one neuron per read unit: the read units are
 * the neurons. */
int layout_is_identity(const struct layout *l);

/* order (d) = neuron ids by decreasing count, ties by id. */
void layout_order_by_count(const int64_t *counts, int d, int32_t *order);

/* Offset of slot `slot` of region r of layer `layer`. */
static inline int64_t layout_offset(const struct layout *l, int layer, int region, int64_t slot)
{
	return (int64_t)layer * l->layer_bytes + (int64_t)region * l->region_bytes +
	       slot * l->slot_bytes;
}

#endif
