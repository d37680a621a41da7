/*
 * planner: the reads that bring a set of neurons of one layer into DRAM.
 *
 * Given the layout and the neurons to load (a packed bitmap), the planner
 * marks the read units (layout bundles) they live in, walks them in file
 * order and emits extents (offset, bytes), merging a unit into the previous
 * extent when the gap between them is at most max_gap bytes (the gap is read
 * and thrown away: fewer, larger reads for some wasted bytes). max_gap < 0
 * turns merging off, so every unit is its own read; 0 merges only touching
 * units. For the friends layout, a neuron already brought in by an earlier
 * read of this token (as some neuron's friend) is not read again.
 * Pure: no I/O. The simulator costs the extents; replay reads them.
 */
#ifndef LIFSIM_PLANNER_H
#define LIFSIM_PLANNER_H

#include <stdint.h>

#include "sim/base/err.h"
#include "sim/core/layout.h"

struct extent {
	int64_t offset; /* from the start of layer 0's FFN in the layout */
	int64_t bytes;
};

/* Reusable per-thread state and the plan of the last call. */
struct planner {
	const struct layout *layout;
	int64_t max_gap;
	uint8_t *units;       /* (units per region / 8) scratch */
	uint8_t *covered;     /* friends: neurons read this token (packed) */
	struct extent *ext;   /* the plan: extents in file order */
	size_t n, cap;
	int64_t bytes_read;   /* sum of extent bytes (gaps included) */
	int64_t useful_bytes; /* bytes of the neurons asked for */
};

struct planner *planner_new(const struct layout *l, int64_t max_gap, struct lif_err *err);
void planner_free(struct planner *p);

/* Plan the reads of `need` (packed, d_ffn bits) in layer `layer`. The result
 * replaces the previous plan in p. */
int planner_plan(struct planner *p, int layer, const uint8_t *need, struct lif_err *err);

#endif
