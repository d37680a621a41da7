/*
 * replay: the simulator's decisions carried out for real (ARCHITECTURE.md, "Data
 * flow"): the same predicted sets, layout, pinned set and window
 * (sim_inputs_get), stepped by the same per-layer stepper (sim/core/step.h), with
 * real reads of a weight file (sim/real/wfile.h) through an io engine
 * (sim/real/io.h) into the paper's real preallocated per-layer matrix.
 *
 * Token-major, per token and layer (what each phase costs is timed with
 * CLOCK_MONOTONIC):
 *   io     read the planner's extents, `parallelism` deep; each extent is
 *          widened to the engine's direct-I/O block (a no-op at full scale,
 *          where slots are multiples of 4 KiB), into a staging buffer (the
 *          arena's next slice when there is one);
 *   place  copy each loaded neuron's pieces from the staging buffer into
 *          its matrix row (first_row onwards, neuron order). The paper reads
 *          straight into the row; reading merged extents (gaps, friends,
 *          separate regions) needs the staging copy. When the rows are held
 *          in another dtype than stored (fp32 over fp16/bf16), place also
 *          converts them: that conversion is the memory manager's work the
 *          cost model charges (models/dram.h, convert_bytes_per_s), so then
 *          place is in total_ms; a plain copy (same dtype) is not, as the
 *          cost model has no term for it (reported on its own);
 *   compute (optional) the token's operations as the compute model counts
 *          them (sim/real/rcompute.h: embeddings, per layer the norms, the
 *          q/k/v/o projections, attention over a KV cache of
 *          context_tokens + token tokens, the predictor's products, the FFN
 *          over the rows in use during the token; the head), fp32 through
 *          OpenBLAS sgemv; needs the DRAM dtype fp32;
 *   mem    after the token, the memory manager's row copies (copy the last
 *          used row into each hole), as memcpy of whole rows.
 * The checksums of every slot read are verified (untimed) unless turned off,
 * so a wrong offset cannot pass. Rows are the model's bundles as held in
 * DRAM: as stored, or (compute_dtype = fp32 over fp16/bf16 weights)
 * converted to fp32 by place.
 *
 * overlap = none: per layer read, place, compute, copy, one after another;
 * total_ms = io + mem + compute (+ place when it converts). overlap = pipelined (sim/core/timeline.h's structure, for
 * real): a reader thread steps, reads and places layer l + 1's rows while
 * this thread computes layer l, at most pipeline_depth layers ahead (layer
 * l's reads start once layer l - depth's compute has started); every
 * layer's copies run after the head; a token starts with empty pipes (the
 * reader starts its layer 0 when the token starts). total_ms is the
 * token's wall time (place included: it runs on the reader's side, so it
 * delays reads only when the reader is the bottleneck); io, place, mem and
 * compute stay the sums of their parts. Verification, when on, runs on the
 * reader too (in the token's wall time: `validate` verifies only with
 * overlap = none).
 *
 * replay_naive reads the file's whole FFN region per token in chunk-byte
 * reads, `parallelism` deep, in one stream, into the arena's slices in turn
 * (without one: 2 x parallelism buffers in turn), as calibrate's sequential
 * point does (the naive strategy with dense parts resident); verification,
 * when asked, is a separate untimed pass.
 */
#ifndef LIFSIM_REPLAY_H
#define LIFSIM_REPLAY_H

#include <stdint.h>
#include <stdio.h>

#include "sim/base/err.h"
#include "sim/real/io.h"
#include "sim/core/sim.h"
#include "sim/real/wfile.h"
#include "traces/trace.h"

struct replay_opts {
	int64_t first_token, tokens; /* replay tokens [0, first_token + tokens) and time
				      * [first_token, ...); tokens 0: to the end. The
				      * tokens before first_token are read and placed
				      * (the state) one layer after another, without
				      * compute */
	int verify;        /* check the checksums of what was read */
	int compute;       /* run the sparse FFN over the resident rows */
	int check_rows;    /* tests: after every token, check every matrix row holds
			    * its neuron's bytes (slow) */
	int64_t max_matrix_bytes; /* refuse larger preallocations; 0: 16 GiB */
	/* when set: called after each timed token (tok >= first_token), outside
	 * its timings (validate's drift probes); non-zero stops the replay */
	int (*after_token)(void *ctx, int64_t tok, struct lif_err *err);
	void *after_ctx;
	struct io_arena *arena; /* when set: each layer's reads land in its next
				 * slice (sim/real/io.h), not in one reused buffer */
	FILE *iolog;       /* when set: every read as a fio iolog v2 line
			    * ("PATH read OFFSET BYTES"); the caller writes the
			    * header and the add/open/close lines (replay_iolog_*) */
	int overlap;       /* enum timeline_overlap: none or pipelined */
	int pipeline_depth; /* pipelined: layers the reads may run ahead (<= 0: 1) */
	int64_t context_tokens; /* compute: KV-cache tokens before token 0 */
	const int *pred_rank;   /* compute: (layers) predictor rank per layer, or NULL */
	int64_t dense_bytes;    /* compute: dense weights before sets cycle (0: 1 GiB;
				 * sim/real/rcompute.h) */
	double *layer_ms;  /* when set: (tokens, layers, 3) per layer io, place and
			    * compute ms (layer 0's compute includes the embeddings) */
	int *events;       /* tests, pipelined: when set, (tokens, 2 x layers) the order
			    * things happened in each token: l + 1 when layer l's reads
			    * start, -(l + 1) when its compute starts */
};

struct replay_token {
	double io_ms, place_ms, mem_ms, compute_ms, total_ms;
	double head_ms;    /* the part of compute_ms after the last layer (the head) */
	int64_t bytes_read, reads, neurons_loaded, rows_copied;
};

/* Replay trace t's predicted sets (in, from sim_inputs_get over t and the
 * point) against w with engine io. per_token gets one entry per token of
 * t (tokens not replayed are zero). The weight file must match the point's
 * layout (wfile_match). */
int replay_sparse(const struct sim_inputs *in, const struct trace *t, const struct wfile *w,
		  struct io_engine *io, const struct replay_opts *o, struct replay_token *per_token,
		  struct lif_err *err);

/* fio iolog v2 framing around replay_opts.iolog's read lines: header, add
 * and open (begin), close (end). `fio --read_iolog=F --replay_no_stall=1`
 * then issues the same reads as the replay, without its pauses between
 * layers. */
void replay_iolog_begin(FILE *f, const char *path);
void replay_iolog_end(FILE *f, const char *path);

/* Read the whole FFN region `tokens` times in chunk-byte reads. */
int replay_naive(const struct wfile *w, struct io_engine *io, int64_t chunk, int64_t tokens,
		 int verify, struct io_arena *arena, struct replay_token *per_token,
		 struct lif_err *err);

/* Shrink a model description's d_model by f (0 < f <= 1; to a multiple of
 * 8 * heads, at least that) for small test files; the declared parameter
 * count is dropped and the name gets "@f". f = 1 leaves m alone. */
/* n weights of dtype at src into dst in dst_dtype: a plain copy when the
 * dtypes agree, else fp16 or bf16 to fp32 (place's conversion; calibrate
 * --compute times it). */
void replay_convert(char *dst, int dst_dtype, const char *src, int dtype, int64_t n);

int replay_scale_model(struct llm_desc *m, double f, struct lif_err *err);

/* `lifsim validate`'s files from the results of a validate sweep in dir:
 * dir/validation.csv (the results, one row per point) and dir/summary.csv
 * (metric,regime,n,median_abs_err,p90_abs_err,max_abs_err,bias,cv_meas for
 * io_ms, io_ms_corr, mem_ms, total_ms, total_ms_corr by regime latency,
 * bandwidth and all). Errors are prediction / measurement - 1; bias is
 * their mean; cv_meas the median coefficient of variation of the repeats. */
int replay_validate_summary(const char *dir, struct lif_err *err);

#endif
