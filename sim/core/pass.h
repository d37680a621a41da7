/*
 * pass: the simulator's decisions for one layer, one token at a time, at the
 * speed of the packed bits — what sim/core/sim.c costs. It decides exactly as
 * sim/core/step.h does (the reference, which replay executes; tests compare
 * the two on random traces) but keeps only what the cost model needs:
 *   - the window by word operations over packed rows (no per-neuron work);
 *   - the reads as a histogram of extent sizes in file order (first
 *     occurrence first, the order the cost model sums in), found by walking
 *     runs of set read units (a run is one merged extent), not unit by unit;
 *   - the memory manager's copies as a count (window 0 needs no matrix:
 *     every row loaded is dropped after its token, nothing is copied).
 * Pure: no I/O. A pass_layer is used by one thread at a time.
 */
#ifndef LIFSIM_PASS_H
#define LIFSIM_PASS_H

#include <stdint.h>

#include "sim/base/err.h"
#include "sim/core/layout.h"

struct pass_layer;

/* One token of one layer. sizes/counts are valid until the next call. */
struct pass_out {
	int64_t npred;         /* predicted neurons (pinned included) */
	int64_t nload;         /* neurons loaded */
	int64_t ndie;          /* neurons that left the window */
	int32_t used_rows;     /* rows in use during the token plus the predicted pinned ones */
	int32_t window_rows;   /* rows in use after the token */
	int32_t nmoves;        /* row copies that kept the matrix dense */
	int64_t bytes_read;    /* extent bytes, gaps included */
	int64_t useful_bytes;  /* bytes of the neurons asked for */
	int nsizes;            /* distinct extent sizes, in order of first occurrence */
	const int64_t *sizes;  /* (nsizes) bytes */
	const int32_t *counts; /* (nsizes) extents of that size */
};

/* What a pass computes: the reads (depend on the layout), the matrix (does
 * not: the layouts of a sweep share it). Fields of pass_out not computed
 * are 0. */
enum pass_what { PASS_READS = 1, PASS_MATRIX = 2, PASS_ALL = 3 };

/* Layer `layer` of a d_ffn-wide model in layout (may be NULL without
 * PASS_READS); other arguments as step_layer_new (sim/core/step.h). */
struct pass_layer *pass_layer_new(const struct layout *layout, int layer, int d_ffn,
				  int64_t tokens, int window, int64_t max_gap,
				  const uint8_t *pinned, int what, struct lif_err *err);
void pass_layer_free(struct pass_layer *s);

/* Advance one token whose predicted set is pred_row (packed d_ffn bits). */
int pass_layer_next(struct pass_layer *s, const uint8_t *pred_row, struct pass_out *out,
		    struct lif_err *err);

/* Largest number of matrix rows in use so far (the preallocation). */
int32_t pass_layer_peak_rows(const struct pass_layer *s);

/* Bytes s allocated (without PASS_READS' planner): set by d_ffn and the
 * window, never by the tokens. */
int64_t pass_layer_bytes(const struct pass_layer *s);

/* The neurons the last pass_layer_next loaded (packed words, bits past
 * d_ffn clear; valid until the next call): what the reads of any layout
 * plan, so the layouts of a sweep plan from one pass (pass_reads). */
const uint64_t *pass_layer_need(const struct pass_layer *s);

/* A layout's read planner for one layer: the reads of a need set, as
 * pass_layer_next plans them with PASS_READS (it uses one). */
struct pass_reads;
struct pass_reads *pass_reads_new(const struct layout *layout, int layer, int64_t max_gap,
				  struct lif_err *err);
void pass_reads_free(struct pass_reads *r);

/* Plan the reads of need (packed words as pass_layer_need, nload bits set):
 * sets bytes_read, useful_bytes, nsizes, sizes and counts of out (valid until
 * the next call), nothing else. */
int pass_reads_plan(struct pass_reads *r, const uint64_t *need, int64_t nload,
		    struct pass_out *out, struct lif_err *err);

/* The runs of set bits of one need set, counted by length: what the reads of
 * every layout that reads neurons in place (bundle 1, no reordering, no
 * friends) follow from. Set valid = 0 for each new need set; the first such
 * layout counts them, the others reuse the count. */
struct pass_runs {
	int valid, long_run, maxm; /* long_run: a run of 64 or more (then unused) */
	int64_t n;                 /* bits set */
	int32_t cnt[64];           /* runs of each length */
	int64_t first[64];         /* where the first run of that length starts */
};

/* Count the runs of units (uw words, bits past the last unit clear) into h
 * (valid = 1; long_run = 1 and the rest unset when a run is 64 or longer). */
void pass_count_runs(const uint64_t *units, int64_t uw, struct pass_runs *h);

/* Count runs with the SIMD kernel when the CPU has one (on = 1, the default)
 * or word by word (on = 0): the tests compare the two. */
void pass_use_simd(int on);

/* pass_reads_plan with the run counts shared across layouts (runs may be NULL). */
int pass_reads_plan_shared(struct pass_reads *r, const uint64_t *need, int64_t nload,
			   struct pass_runs *runs, struct pass_out *out, struct lif_err *err);

#endif
