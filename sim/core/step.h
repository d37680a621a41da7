/*
 * step: the simulator's decisions for one layer, one token at a time — the
 * contract the real path (replay) shares with the cost model, so predicted
 * and measured differ only in the cost model (ARCHITECTURE.md, "Data flow").
 *
 * A step_layer holds one layer's state: the window (the union of the
 * predicted sets of the last `window` tokens, pinned neurons excluded), the
 * paper's preallocated matrix (sim/core/memman.h) and a read planner
 * (sim/core/planner.h). step_layer_next(pred_row) advances one token:
 *   1. need = predicted - pinned - window          (neurons to load)
 *   2. plan the reads of `need` in the layout     (out->plan: extents with offsets)
 *   3. insert each needed neuron at the end of the matrix, in neuron order
 *      (out->first_row: the row of the first; rows follow in that order)
 *   4. the window moves on; the neurons that leave it are deleted, the last
 *      rows being copied into the holes (out->moves, in the order to apply).
 * Pure: no I/O. Everything out points to is valid until the next call.
 */
#ifndef LIFSIM_STEP_H
#define LIFSIM_STEP_H

#include <stdint.h>

#include "sim/base/err.h"
#include "sim/core/layout.h"
#include "sim/core/memman.h"
#include "sim/core/planner.h"

struct step_layer;

struct step_out {
	const uint8_t *need;            /* packed: the neurons loaded this token */
	int64_t npred;                  /* predicted neurons (pinned included) */
	int64_t nload;                  /* neurons loaded (bits of need) */
	int32_t first_row;              /* matrix row of the first loaded neuron */
	const struct planner *plan;     /* the reads (layer-relative offsets: see layout.h) */
	int32_t used_rows;              /* rows in use during the token, plus the predicted
					   pinned ones (the pinned block is computed sparsely) */
	const struct memman_move *moves;/* copies after the token, in order */
	int nmoves;
	int64_t ndie;                   /* neurons that left the window */
	int32_t window_rows;            /* rows in use after the token */
};

/* One layer of layout l_layout (layer `layer`). tokens caps the window's
 * memory (a window longer than the trace keeps everything); max_gap < 0 turns
 * read merging off; pinned (packed, may be NULL) never load. */
struct step_layer *step_layer_new(const struct layout *layout, int layer, int64_t tokens,
				  int window, int64_t max_gap, const uint8_t *pinned,
				  struct lif_err *err);
void step_layer_free(struct step_layer *s);

/* Advance one token whose predicted set is pred_row (packed d_ffn bits). */
int step_layer_next(struct step_layer *s, const uint8_t *pred_row, struct step_out *out,
		    struct lif_err *err);

/* The matrix (row <-> neuron maps) and its peak row count so far. */
const struct memman *step_layer_memman(const struct step_layer *s);
int32_t step_layer_peak_rows(const struct step_layer *s);

#endif
