/*
 * moereplay: the MoE simulator's reads carried out for real. The replay
 * consumes the plan of moe_run_plan (sim/core/moe.h): per token and MoE
 * layer, the merged extents the simulator costed for the point's cache
 * policy, prefetch, expert layout and max_gap, so the two cannot disagree on
 * what is read. Each extent is read from MoE layer l's region of an expert
 * weight file (sim/real/wfile.h, version 3), widened to the engine's direct
 * I/O block (a no-op when expert matrices are multiples of 4 KiB), one batch
 * per layer `parallelism` deep through an io engine (sim/real/io.h; O_DIRECT
 * for psync and io_uring), into the arena's next slice (or one staging
 * buffer). Timed with CLOCK_MONOTONIC per token:
 *   io   the layer batches' reads;
 *   mem  the plan's copies: each expert the cache inserts, copied from
 *        where it landed in the staging buffer into its slot of layer l's
 *        area of the DRAM expert cache (layers x plan cache_bytes, touched
 *        before timing); gap bytes, wrong guesses and experts the cache
 *        does not keep are not copied. The simulator charges the same bytes
 *        at the device's DRAM copy rate (sim/core/moe.h, moe_mem_ns).
 * total = io + mem (the compute is not replayed; validate compares io + mem
 * on both sides). The cache's state lives in the plan, so tokens before
 * first_token need no reads: only [first_token, first_token + tokens) are
 * read. With verify, every expert piece wholly read is checked against the
 * file's checksums (untimed), so a wrong offset cannot pass.
 */
#ifndef LIFSIM_MOEREPLAY_H
#define LIFSIM_MOEREPLAY_H

#include <stdint.h>

#include "sim/base/err.h"
#include "sim/core/moe.h"
#include "sim/real/io.h"
#include "sim/real/wfile.h"

struct moe_replay_opts {
	int64_t first_token, tokens; /* tokens 0: to the end */
	int verify;
	struct io_arena *arena;      /* or NULL: one staging buffer */
	/* called after each replayed token, untimed (validate's drift probes);
	 * non-zero stops the replay */
	int (*after_token)(void *ctx, int64_t tok, struct lif_err *err);
	void *after_ctx;
};

struct moe_replay_token {
	double io_ms, mem_ms, total_ms;
	int64_t bytes_read;  /* as planned (before widening to the direct I/O block) */
	int64_t bytes_io;    /* as issued (widened) */
	int64_t reads;
	int64_t bytes_copied, copies; /* into the expert cache */
};

/* Replay plan p (from moe_run_plan of model m) against expert file w (which
 * must match: wfile_moe_match) with engine io. out gets one entry per token
 * of the plan (tokens not replayed are zero). */
int moe_replay(const struct moe_plan *p, const struct llm_desc *m, const struct wfile *w,
	       struct io_engine *io, const struct moe_replay_opts *o, struct moe_replay_token *out,
	       struct lif_err *err);

#endif
