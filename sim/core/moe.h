/*
 * moe: mixture-of-experts inference from flash, simulated over a router trace
 * (traces/router.h): an expert cache in DRAM per MoE layer, a router
 * predictor that prefetches, the experts' layout on flash, and the costs of
 * each token through the same flash, DRAM and compute models as the dense
 * path (models/flash.h, dram.h, compute.h). Pure: no I/O, no clock.
 *
 * Per token and MoE layer, the row's experts are served in router order; a
 * resident expert is a hit; a miss reads the expert from flash into DRAM,
 * and the cache policy (a const vtable, found by name) decides whether it
 * stays and what it evicts. Layers are independent caches of `expert_cache`
 * experts each. Every policy starts cold:
 *   lru     keep it, evict the least recently used;
 *   lfu     keep it, evict the least frequently selected so far (ties: LRU);
 *   static  keep only the `expert_cache` experts most selected over the
 *           whole trace (pinned once loaded, never evicted); others stream;
 *   belady  offline optimal (Belady's MIN with bypass): of the residents and
 *           the newcomer, drop the one whose next selection is furthest;
 *           no policy that holds at most expert_cache experts hits more.
 * Shared experts, routers, dense layers, attention and embeddings are
 * resident (llm_desc.resident_ffn_bytes, attn_bytes, embed_bytes).
 *
 * Prefetch (`prefetch`): before a layer runs, a router predictor names k
 * experts; `oracle` names the true ones, `modeled` each true one with
 * probability `prefetch_accuracy` (else a random wrong one, seeded),
 * `trained` the k highest scores of a linear predictor per layer l >= 1 that
 * reads layer l-1's router input (a trace recorded with `lifsim record
 * --inputs`): W_l (experts x d_model) fitted by ridge least squares to the
 * one-hot choices of layer l over the warm-up tokens only (the counted
 * tokens are held out), lambda = 1e-3 x the mean diagonal of X^T X
 * [assumption]; layer 0 has no previous layer and is not prefetched; its
 * cost, an (experts x d_model) product per layer l >= 1, is added to the
 * compute time. A
 * predicted expert that is not resident is read ahead; a wrong one is read
 * for nothing (wasted bytes, not kept). With the serial accounting used here
 * (overlap = none) reading ahead saves no time: io_ahead_ms reports the read
 * time a pipelined timeline could hide behind compute.
 *
 * Layout on flash (`expert_layout`): `expert` (one extent per expert,
 * experts of a layer in id order), `matrix` (gate, up, down of all experts in
 * three regions: three extents per expert), `cosel` (one extent per expert,
 * experts ordered so co-selected ones are adjacent, greedily from the
 * trace's own co-selection counts). A layer's misses of one token are one
 * batch of reads; extents at most `max_gap` bytes apart merge (the gap is
 * read too); the flash model costs the batch at min(parallelism, extents).
 * Offsets are relative to the layer's region of moe_region_bytes (experts x
 * expert_bytes); MoE layer l's region is the l-th in the expert weight file
 * (sim/real/wfile.h). Within an expert's extent (and within the matrix
 * layout's region of one matrix) the matrices come in the order gate, up,
 * down (gated) or up, down, each expert_matrix_bytes.
 *
 * The plan (moe_run_plan): every read the run costs, per MoE layer and
 * token, merged as costed, with its flash time and the cache's inserts and
 * evictions: what `lifsim replay` performs for real, so the two cannot
 * disagree on what is read.
 *
 * Costs per token (averaged over the tokens after `warmup_tokens`):
 *   io = sum over layers of the batch's flash time;
 *   mem = dram_time_ns(bytes copied, inserts + evictions, h2d = bytes read):
 *         a layer's merged extents (gap bytes, wrong guesses and experts the
 *         cache does not keep included) are read into a staging buffer, and
 *         each expert the cache inserts is copied from there into its cache
 *         slot: expert_bytes per insert (in pieces of expert_matrix_bytes in
 *         the matrix layout). On a GPU backend (dram_is_gpu) the cache is in
 *         VRAM and the host-to-GPU transfer of the bytes read is the copy:
 *         no DRAM copy is charged there;
 *   compute = compute_dense_ns + per MoE layer the router and k experts'
 *             rows (+ shared), per dense layer its FFN (compute_linear_ns);
 *   total = io + mem + compute (overlap = none: serial), or with overlap =
 *   pipelined the timeline of sim/core/timeline.h per token over the MoE
 *   layers: io[l] = the flash time of layer l's batch that prefetch read
 *   ahead (the share of its bytes that were predicted: hits of the
 *   prediction and wasted reads), which may run while earlier layers
 *   compute, `depth` layers ahead at most; cpu[l] = the rest of the batch
 *   (reads on demand, after layer l's router) + layer l's attention (1/layers
 *   of compute_dense_ns' attention) + its router and experts (+ the trained
 *   predictor); the tail = the head and embeddings, dense layers, a measured
 *   dense override and mem. Demand and ahead reads do not contend for the
 *   flash in this accounting: an upper bound on what overlap buys. Without
 *   prefetch nothing is read ahead and pipelined equals serial.
 */
#ifndef LIFSIM_MOE_H
#define LIFSIM_MOE_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

#include "models/device.h"
#include "models/dram.h"
#include "models/llm.h"
#include "sim/base/err.h"
#include "traces/router.h"

enum moe_prefetch { MOE_PREFETCH_NONE = 0, MOE_PREFETCH_ORACLE = 1, MOE_PREFETCH_MODELED = 2,
		   MOE_PREFETCH_TRAINED = 3 };
enum moe_layout { MOE_LAYOUT_EXPERT = 0, MOE_LAYOUT_MATRIX = 1, MOE_LAYOUT_COSEL = 2 };
/* The name of enum value i, or NULL past the last: the INI choices (each a
 * conf_names_fn over a name table indexed by the enum). */
const char *moe_prefetch_choice(int i);
const char *moe_layout_choice(int i);

/* One layer's cache state (the policies' private fields share it). */
struct moe_cache {
	int experts, capacity, resident_n;
	uint8_t *resident;  /* (experts) */
	int64_t *last_use;  /* (experts) request index of the last selection, -1 */
	int64_t *freq;      /* (experts) selections so far */
	uint8_t *pinned;    /* (experts) static: the hot set */
	const int64_t *next; /* belady: next request index of the same expert (INT64_MAX: none) */
	int64_t inserts, evictions;
	/* Where the residents live: each expert's cache slot (0..capacity-1, -1
	 * when not resident); an insert takes the slot its eviction freed (else
	 * the lowest never used); the inserts since the caller last reset
	 * log_n, as (expert, slot) pairs (NULL: not logged); log_n counts on past
	 * log_cap (the pairs past it are not kept), which moe_run reports as a bug. */
	int *cslot;      /* (experts) */
	int *free_slots; /* (capacity) stack of free slots */
	int free_n;
	int *log;        /* (2 * log_cap) */
	int log_n, log_cap;
};

/* A cache policy. */
struct moe_cache_ops {
	const char *name;
	/* Serve request i (flat index token * k + slot of this layer) for expert
	 * e: return 1 on a hit, 0 on a miss, updating the state. */
	int (*access)(struct moe_cache *c, int e, int64_t i);
};

extern const struct moe_cache_ops *const moe_cache_policies[]; /* NULL-terminated */
const struct moe_cache_ops *moe_cache_find(const char *name);
/* The name of moe_cache_policies[i], or NULL past the last (a conf_names_fn). */
const char *moe_policy_choice(int i);

struct moe_params {
	char cache_policy[16];    /* a moe_cache_policies name */
	int expert_cache;         /* experts per layer held in DRAM, 0..experts */
	int prefetch;             /* enum moe_prefetch */
	double prefetch_accuracy; /* modeled: P(a true expert is predicted) */
	int layout;               /* enum moe_layout */
	int parallelism;          /* outstanding reads */
	int64_t max_gap;          /* merge extents at most this far apart (< 0: never) */
	int64_t context_tokens;   /* KV cache length for attention's cost */
	int64_t warmup_tokens;    /* tokens simulated but not counted */
	int overlap;              /* enum timeline_overlap (sim/core/timeline.h) */
	int depth;                /* pipelined: layers read ahead at most (>= 1) */
};

struct moe_result {
	int expert_cache;
	int64_t accesses, hits;          /* counted tokens' selections */
	double expert_hit_rate;
	double expert_bytes_read_per_token; /* misses and wasted prefetches */
	double prefetch_wasted_bytes_per_token;
	double reads_per_token;          /* extents after merging */
	double expert_bytes_copied_per_token; /* inserts x expert_bytes (mem's copy) */
	double io_ms, io_ahead_ms, mem_ms, compute_ms, total_ms, tokens_per_s;
	double prefetch_recall;          /* counted tokens: true experts predicted / true experts
					    (over the layers that are predicted; -1: no prefetch) */
	int64_t dram_bytes;              /* resident + cache + one layer's k staged experts */
};

/* The reads of a run: per (MoE layer l, token t), layer-major, the merged
 * extents [first[l * tokens + t], first[l * tokens + t + 1]) of off/len
 * (bytes from the start of layer l's region), the flash time the model gave
 * them (io_ns) and the cache's inserts + evictions (ops). slot: (layers,
 * experts) each expert's slot in its layer's region (the layout's order).
 * The copies into the DRAM expert cache after (l, t)'s reads are
 * [cfirst[i], cfirst[i + 1]) of csrc/cdst/clen (i = l * tokens + t): clen
 * bytes from region offset csrc (inside one of the batch's extents) to byte
 * cdst of layer l's cache area of cache_bytes (capacity x expert_bytes:
 * the insert's cache slot x expert_bytes + the matrix's offset in it). */
struct moe_plan {
	int layers, experts, layout;
	int64_t tokens, region_bytes, cache_bytes;
	int64_t *first;      /* (layers * tokens + 1) */
	int64_t *off, *len;  /* (n) */
	int64_t n, cap;
	double *io_ns, *ops; /* (layers * tokens) */
	int *slot;           /* (layers * experts) */
	int64_t *cfirst;     /* (layers * tokens + 1) */
	int64_t *csrc, *cdst, *clen; /* (cn) */
	int64_t cn, ccap;
};
void moe_plan_free(struct moe_plan *p); /* frees the arrays, not p */

/* What a plan has token t do, summed over its layers: the predicted io time,
 * the cache's inserts and evictions, the bytes and extents read, the layers
 * that read anything (batches) and the bytes copied into the cache. */
struct moe_token_sums {
	double io_ns, ops;
	int64_t bytes, reads, batches, copied;
};
void moe_plan_token_sums(const struct moe_plan *p, int64_t t, struct moe_token_sums *s);

/* mem's time in ns (see above) of `copied` bytes copied into the cache,
 * `ops` inserts and evictions and `bytes_read` bytes read, per token. */
double moe_mem_ns(const struct dram_model *d, double copied, double ops, double bytes_read);

/* One MoE layer's region in the expert weight file: experts x expert_bytes. */
int64_t moe_region_bytes(const struct llm_desc *m);

/* Each expert's slot in MoE layer l's region under `layout` (enum
 * moe_layout): id order, or cosel's co-selection chain learnt from the whole
 * trace. slot has rt->meta.experts entries. -1 when out of memory. */
int moe_layer_slots(const struct router_trace *rt, int l, int layout, int *slot);

/* Where matrix `mat` (0 .. ffn_matrices - 1) of the expert in `slot` lies in
 * its layer's region under `layout` (expert_matrix_bytes long). */
int64_t moe_matrix_offset(const struct llm_desc *m, int layout, int slot, int mat);

/* DRAM that the model needs with `cache` experts per MoE layer. */
int64_t moe_dram_bytes(const struct llm_desc *m, int cache);

/* The largest expert cache (0..experts) that fits in dram_budget bytes, or -1
 * when not even the resident part and one layer's staging fit. */
int moe_cache_for_budget(const struct llm_desc *m, int64_t dram_budget);

/* Hits of one layer's request sequence under a policy with `capacity`
 * experts (for tests and the one-pass comparison). */
int moe_layer_hits(const struct router_trace *rt, int layer, const struct moe_cache_ops *ops,
		   int capacity, int64_t *hits, struct lif_err *err);

/* Simulate the whole trace. m must be an MoE model matching rt (experts,
 * top-k, MoE layers); dev must pass device_check; rng seeds the modeled
 * predictor (may be NULL otherwise). */
int moe_run(const struct router_trace *rt, const struct llm_desc *m, const struct device *dev,
	    const struct moe_params *p, gsl_rng *rng, struct moe_result *out,
	    struct lif_err *err);

/* moe_run, also filling plan (zeroed by the caller; moe_plan_free after,
 * also on failure). */
int moe_run_plan(const struct router_trace *rt, const struct llm_desc *m,
		 const struct device *dev, const struct moe_params *p, gsl_rng *rng,
		 struct moe_result *out, struct moe_plan *plan, struct lif_err *err);

#endif
