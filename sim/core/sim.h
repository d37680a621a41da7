/*
 * sim: the simulator core. Given a trace, a model description, a device
 * profile and the knobs of one sweep point, it decides what each token loads
 * and what that costs, and returns numbers. It reads no clock and does no
 * file I/O (ARCHITECTURE.md, "The cost model", "Decisions the simulator models").
 *
 * Per token t and layer l (strategy = sparse):
 *   1. predicted set P(t)     = the predictor's choice (sim/core/pred.h), minus the
 *                               pinned (hybrid) neurons, which never move;
 *   2. resident set R(t)      = neurons predicted in the last `window` tokens,
 *                               t-window .. t-1 (window = k: the neurons of
 *                               the k previous tokens stay; k = 0 is no reuse);
 *   3. load L(t)              = P(t) minus R(t); read with the layout's
 *                               extents (sim/core/planner.h), costed by the flash
 *                               model at `parallelism` outstanding reads;
 *   4. memory management      = insert L(t) (append) and, after the token,
 *                               delete the neurons that leave the window
 *                               (predicted last at t-window), copying the
 *                               last rows into the holes (sim/core/memman.h);
 *   5. compute                = dense parts plus the FFN over the rows in use
 *                               (`ffn_rows = window`, the paper's matrix, plus
 *                               the predicted pinned neurons) or only the
 *                               predicted rows (`predicted`).
 * So the window holds s_agg(k) of the predicted sets after each token and a
 * token loads s_agg(k+1) - s_agg(k) in steady state (traces/stats.h).
 * strategy = naive reads every non-resident weight each token (the whole
 * model, or what a hybrid split leaves on flash) in `naive_chunk` reads and
 * computes densely.
 *
 * bits = 1..4 stores the attention and FFN linear weights (on flash and in
 * DRAM) in the format of models/gemv/gemv.h, `group` weights per fp16 scale and
 * centre: a d_model-wide row takes gemv_bytes(1, d_model, bits, group)
 * bytes, so bundles, layouts, reads, copies and DRAM shrink with the bits;
 * embeddings keep dtype. Their compute time is the device's measured
 * `kernel` speed (models/compute.h); a profile without it is an error.
 *
 * Predictors (strategy = sparse, predictor other than none): layer l's
 * low-rank predictor has rank predictor_rank, or predictor_rank_last in the
 * last predictor_last_layers layers (sim_pred_rank); its weights, r x
 * (d_model + d_ffn) in DRAM's dtype, count in DRAM and its two products in
 * compute (models/compute.h, compute_pred_layer_ns).
 *
 * overlap = pipelined puts each token's layers on a timeline
 * (sim/core/timeline.h): layer l + 1's reads run during layer l's compute,
 * at most pipeline_depth layers ahead; the memory manager's work of the
 * token runs after its last layer. io_ms, mem_ms and compute_ms stay the
 * sums of the parts; total_ms (and its percentiles) is the timeline's.
 *
 * Speculative decoding (spec_lambda > 0, strategy = sparse; sim/core/spec.h):
 * a draft model (`draft`, fully in DRAM at compute_dtype, its dense compute
 * costed per drafted token) proposes spec_lambda tokens; the target verifies
 * the lambda + 1 positions in one pass: it loads the union of their
 * predicted sets minus the window, computes the rows in use with lambda + 1
 * times the flops but one read of the weights and KV cache, and emits the
 * accepted drafts (each with probability spec_alpha until the first
 * rejection, seeded by predictor_seed) plus its own token; the window
 * follows the emitted tokens. Every cost is reported per emitted token
 * (tokens = emitted tokens after warmup; total_ms_p50/p99 over steps, per
 * emitted token); dram_bytes includes the draft model.
 *
 * DRAM use is reported by component (embeddings, attention, predictor,
 * pinned FFN, window: the peak rows of the preallocated matrices); a point
 * over `dram_budget` is an error that says by how much. `hybrid = auto` pins
 * the hottest (or first) FFN neurons into whatever the budget leaves.
 */
#ifndef LIFSIM_SIM_H
#define LIFSIM_SIM_H

#include <stdint.h>

#include "models/device.h"
#include "models/llm.h"
#include "sim/base/conf.h"
#include "sim/base/err.h"
#include "sim/core/layout.h"
#include "sim/core/pred.h"
#include "traces/trace.h"

struct predictor;

enum sim_strategy { SIM_SPARSE, SIM_NAIVE };
enum sim_hybrid_policy { SIM_HYBRID_HOT, SIM_HYBRID_FIRST };
enum sim_ffn_rows { SIM_ROWS_WINDOW, SIM_ROWS_PREDICTED };

/* The knobs of one point: section [sim] of an experiment (sim_opts). */
struct sim_params {
	int strategy;          /* enum sim_strategy */
	int predictor;         /* enum pred_kind */
	double recall;         /* modeled/random predictor */
	double fp_rate;
	int64_t predictor_seed;
	char predictor_file[512]; /* lowrank: trained predictors (registered with the cache) */
	int predictor_rank;    /* rank of the predictor whose DRAM and compute are counted */
	int predictor_rank_last;   /* rank of the last predictor_last_layers layers' predictors */
	int predictor_last_layers; /* (the paper: OPT 128 / 1024, Falcon 256 / 1152, last 4) */
	int window;            /* k: tokens whose neurons stay resident */
	int layout;            /* enum layout_kind */
	int bundle;            /* neurons per read unit */
	int layout_train_tokens; /* tokens the ordering layouts learn from */
	int merge;             /* merge neighbouring reads at all */
	int64_t max_gap;       /* read through gaps up to this many bytes */
	int parallelism;       /* outstanding reads */
	char hybrid[16];       /* fraction of FFN neurons pinned in DRAM, or "auto" */
	int hybrid_policy;     /* enum sim_hybrid_policy */
	int naive_keep_dense;  /* naive: attention and embeddings stay in DRAM */
	int64_t naive_chunk;   /* naive: bytes per sequential read */
	int64_t dram_budget;   /* bytes; 0 = none */
	double dram_budget_frac; /* of the model's bytes; 0 = none */
	int dtype;             /* enum llm_dtype of the weights on flash (LLM_NDTYPES: the model's) */
	int compute_dtype;     /* enum llm_dtype of the weights in DRAM (LLM_NDTYPES: as on flash) */
	int bits;              /* 0 = linear weights at dtype; 1..4: low-bit GEMV format */
	int group;             /* index into "32|64": weights per scale group when bits > 0 */
	int kernel;            /* enum compute_kernel: whose measured speed costs bits > 0 */
	int ffn_rows;          /* enum sim_ffn_rows */
	int warmup_tokens;     /* tokens excluded from the means (cold start) */
	int64_t context_tokens;/* KV-cache length before the first token */
	int overlap;           /* enum timeline_overlap (sim/core/timeline.h) */
	int spec_lambda;       /* speculative decoding: drafted tokens per step (0: off) */
	double spec_alpha;     /* probability a draft is accepted */
	char draft_model[512]; /* the draft model's description (a path) */
	struct llm_desc draft; /* ... loaded by the caller (the core does no I/O);
				* not a key */
	int pipeline_depth;    /* pipelined: layers whose reads may run ahead of compute */
};

extern const struct conf_opt sim_opts[];
void sim_default_params(struct sim_params *p);

/* Per-token costs (optional output, one per token). */
struct sim_token {
	double io_ms, mem_ms, compute_ms, total_ms;
	int64_t bytes_read, reads, neurons_loaded;
};

struct sim_result {
	int64_t tokens;               /* tokens in the means (after warmup) */
	double bytes_read_per_token;
	double reads_per_token;
	double mean_read_bytes;
	double useful_bytes_per_token; /* bytes of the neurons asked for (no gaps, no friends) */
	double io_ms, mem_ms, compute_ms, total_ms; /* means per token (overlap = pipelined:
						    * total_ms is the timeline's, less than
						    * the sum of the parts) */
	double total_ms_p50, total_ms_p99;
	double load_frac_per_token;   /* neurons loaded / (layers * d_ffn) */
	double predicted_frac;        /* predicted / all neurons (incl. pinned) */
	double window_frac;           /* mean resident window / (layers * d_ffn) */
	double mem_bytes_copied_per_token;
	double recall, fp_rate;       /* achieved by the predictor */
	double hybrid_frac;           /* FFN fraction pinned */
	double pin_frac;              /* the fraction asked of the pinning policy (resolves auto) */
	int64_t dram_bytes;           /* total, by component below */
	int64_t dram_embed_bytes, dram_attn_bytes, dram_predictor_bytes;
	int64_t dram_pinned_bytes, dram_window_bytes;
	int64_t dram_budget_bytes;    /* 0 = none */
	int64_t dram_ffn_bytes;       /* the whole FFN in DRAM's dtype (what hybrid = 1 pins) */
	/* GPU backend only (models/dram.h; 0 on a CPU backend): */
	double h2d_bytes_per_token;   /* host-to-GPU bytes per token: the loaded FFN rows
				       * (sparse), every non-resident weight (naive) */
	int64_t vram_bytes;           /* VRAM needed: dram_bytes + vram_kv_bytes + vram_stage_bytes */
	int64_t vram_kv_bytes;        /* KV cache at the last position: 2 x layers x kv_heads x
				       * head_dim x (context_tokens + trace tokens), DRAM's dtype */
	int64_t vram_stage_bytes;     /* naive: the weights moved in for a token (0 when sparse:
				       * loaded rows land in the preallocated matrix, dram_window_bytes) */
	int64_t vram_capacity_bytes;  /* the device's [dram] vram_bytes */
};

/* Precomputed inputs shared by every point of a sweep over one trace:
 * predicted sets, layouts and frequencies are built on first use and cached
 * (thread-safe). */
struct sim_cache;

struct sim_cache *sim_cache_new(const struct trace *t, const struct llm_desc *m,
				struct lif_err *err);
void sim_cache_free(struct sim_cache *c);

/* Where a streaming cache reads its trace: tokens [t0, t0 + n) of every
 * layer, layer-major, bits (layers, n, row_bytes) and, when band is not NULL,
 * the band (layers, n, 2 row_bytes). The core does no I/O: the caller's read
 * does (a traces/trace.h reader, or memory in the tests). */
struct sim_source {
	void *ctx;
	int (*read)(void *ctx, int64_t t0, int64_t n, uint8_t *bits, uint8_t *band,
		    struct lif_err *err);
	int64_t block;   /* tokens per block, >= 1 */
	int has_band;    /* read can give the band */
	const char *path; /* the trace file, named when a block does not fit in memory (may be NULL) */
};

/* A cache over a trace streamed by blocks: meta is the trace's metadata
 * (bits NULL; copied), src (copied) gives its data. Hinted sparse points
 * whose predictor works token by token (all but the trained ones) are
 * decided in one pass over the blocks per predicted sets and pinned set,
 * every window at once, carrying each layer's window, memory manager and
 * read planners from block to block: memory is the model's width times the
 * largest window plus a block, and the decisions (their per-token rows).
 * What needs more of the trace than a block reads it through src: the
 * layouts and the hot pinning its first layout_train_tokens tokens; other
 * points (trained predictors, hybrid = auto, speculative decoding, the
 * reference, sim_inputs_get) the whole trace, read once on first use and
 * kept. A trace of one block is read whole once and decided as
 * sim_cache_new's (by window, predicted sets cached). Results are the same,
 * byte for byte, as sim_cache_new's. */
struct sim_cache *sim_cache_new_stream(const struct trace *meta, const struct sim_source *src,
				       const struct llm_desc *m, struct lif_err *err);

/* Bytes the streaming passes allocated for their work at most (block
 * buffers, each layer's window, planners and one block of decisions; not
 * the decisions kept): what tests check does not grow with the tokens. */
int64_t sim_cache_stream_peak_bytes(struct sim_cache *c);

/* Decide through the reference stepper (sim/core/step.h) instead of the fast
 * pass (sim/core/pass.h); the results are the same, byte for byte (tests
 * compare them). Set before the first sim_run. */
void sim_cache_set_reference(struct sim_cache *c, int on);

/* Make the trained predictors p (borrowed; outlive the cache) known under
 * path, for points with predictor = lowrank and predictor_file = path. The
 * caller loads the file: the core does no I/O. */
int sim_cache_add_predictor(struct sim_cache *c, const char *path, const struct predictor *p,
			    struct lif_err *err);

/* The points a sweep will run (copied; the first call counts, later ones
 * are ignored). A point's decisions are then built together with those of
 * every hinted point that shares its predicted sets, pinned neurons and
 * window: one pass over the trace's bits for all their layouts, layers on
 * sim_run's threads (the results do not change, only when the work is done). */
int sim_cache_hint(struct sim_cache *c, const struct sim_params *p, size_t n, struct lif_err *err);

/* Run one point. per_token (may be NULL) receives trace->tokens entries.
 * threads: for building cached inputs. */
int sim_run(struct sim_cache *c, const struct device *dev, const struct sim_params *p,
	    int threads, struct sim_result *out, struct sim_token *per_token, struct lif_err *err);

/* What a sparse point decides with, for a consumer that steps through the
 * decisions itself (replay; sim/core/step.h): the predicted sets, the layout, the
 * pinned neurons. pin_frac is sim_result.pin_frac of a sim_run of the point
 * (which resolves hybrid = auto). pred and layout
 * belong to the cache; pinned to the inputs (sim_inputs_release). */
struct sim_inputs {
	const uint8_t *pred;          /* (layers, tokens, row_bytes) predicted sets */
	const struct layout *layout;  /* flash geometry */
	uint8_t *pinned;              /* (layers, row_bytes) or NULL */
	double hybrid_frac;           /* fraction actually pinned */
	struct llm_desc stored, dram; /* the model as on flash, as in DRAM */
	int window;
	int64_t max_gap;              /* for the planner; -1: no merging */
};

int sim_inputs_get(struct sim_cache *c, const struct sim_params *p, double pin_frac,
		   int threads, struct sim_inputs *out, struct lif_err *err);
void sim_inputs_release(struct sim_inputs *in);

/* Rank of layer l's predictor of a point on a model of `layers` layers (0:
 * no predictor is costed: naive strategy or predictor = none). */
int sim_pred_rank(const struct sim_params *p, int layers, int l);

/* Check parameters against a model (ranges that depend on it). */
int sim_check_params(const struct sim_params *p, const struct llm_desc *m, struct lif_err *err);

#endif
