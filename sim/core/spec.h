/*
 * spec: speculative decoding's loads (issue 14, item 5). A draft model
 * proposes lambda tokens; the target verifies them in one pass over the
 * lambda + 1 positions t..t+lambda, and emits a + 1 tokens: the a leading
 * drafts it accepts (each with probability alpha, until the first rejection)
 * and its own next token.
 *
 * Per layer, one verification step:
 *   1. U    = the union of the predicted sets of the verified positions
 *             (the trace's tokens t..t+n-1 stand for them: the rejected
 *             drafts' own sets are unknown [assumption]), minus the pinned;
 *   2. need = U minus the rows already in the matrix (the window);
 *   3. the loaded neurons are appended to the paper's matrix (memman.h);
 *   4. the window follows the emitted tokens only: a neuron stays when one
 *      of the last `window` emitted tokens predicted it; the rest, the
 *      rejected drafts' neurons included, are deleted (last rows copied into
 *      the holes).
 * With lambda = 0 (n = 1, one token emitted) this is sim/core/step.h's
 * stepper, load for load (tests compare them). Pure: no clock, no I/O.
 */
#ifndef LIFSIM_SPEC_H
#define LIFSIM_SPEC_H

#include <stdint.h>

#include "sim/base/err.h"
#include "sim/core/layout.h"
#include "sim/core/memman.h"
#include "sim/core/planner.h"

/* Drafts accepted in verification step `step`: each of the lambda drafts in
 * turn with probability alpha, stopping at the first rejection; the draw is
 * a function of (seed, step) only. */
int spec_accepted(double alpha, int lambda, uint64_t seed, int64_t step);

struct spec_layer;

struct spec_out {
	int64_t nunion;             /* |U| with the pinned: rows the pass computes */
	int64_t nload;              /* neurons loaded */
	int64_t ndie;               /* neurons deleted after the step */
	int nmoves;                 /* row copies of the deletes */
	int32_t used_rows;          /* matrix rows during the pass + predicted pinned */
	int32_t window_rows;        /* rows after the step */
	const struct planner *plan; /* the reads of the loaded neurons */
};

struct spec_layer *spec_layer_new(const struct layout *layout, int layer, int window,
				  int64_t max_gap, const uint8_t *pinned, struct lif_err *err);
void spec_layer_free(struct spec_layer *s);

/* One step: rows[j] (j < n, n >= 1) the packed predicted sets of the
 * verified positions, emitted in 1..n the tokens the window follows. */
int spec_layer_step(struct spec_layer *s, const uint8_t *const *rows, int n, int emitted,
		    struct spec_out *out, struct lif_err *err);

int32_t spec_layer_peak_rows(const struct spec_layer *s);

#endif
