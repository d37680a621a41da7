/*
 * stats: statistics of an activation trace, the quantities windowing and
 * bundling depend on.
 *
 * Definitions (k is the window in tokens; see also traces/FORMAT.md):
 *   - sparsity of a layer: the fraction of (token, neuron) pairs inactive;
 *   - s_agg(k): the fraction of a layer's neurons active at least once in k
 *     consecutive tokens (s_agg(0) = 0, s_agg(1) = the per-token density);
 *   - load(k): the fraction of a layer's neurons that a token must load when
 *     the neurons active in the previous k tokens are resident: active now
 *     and not active in tokens t-k..t-1. In steady state
 *     load(k) = s_agg(k+1) - s_agg(k), the paper's incremental load;
 *   - resident(k) = s_agg(k): what a window of k tokens holds after a token.
 * Windows are averaged over every token where they are full (t >= k), so
 * the first tokens' cold start does not bias the steady state.
 *   - frequency: each neuron's activation rate; reported as a histogram and
 *     as the share of all activations due to the top x% of neurons;
 *   - closest friend: for a sample of neurons i, the neuron j that fires with
 *     i most often and P(j active | i active); and how often that friend is
 *     one of the 1% hottest neurons (why closest-friend bundling fails).
 * Pure: no I/O. stats_write_csv writes the tidy CSV at the edge.
 */
#ifndef LIFSIM_STATS_H
#define LIFSIM_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "sim/base/err.h"
#include "traces/trace.h"

#define STATS_MAX_K 32
#define STATS_FREQ_BINS 8
#define STATS_TOP_SHARES 6

struct stats_opts {
	int coact_samples;  /* neurons sampled per layer for closest friends (0 = skip) */
	int coact_min_count; /* only neurons active at least this often are sampled */
	uint64_t seed;       /* sampling seed */
	/* called after each layer (done of total layers), one call at a time
	 * whatever the thread count; NULL (the default) for none */
	void (*progress)(void *ctx, long long done, long long total);
	void *progress_ctx;
};

void stats_default_opts(struct stats_opts *o);

struct stats_layer {
	double sparsity;                 /* fraction inactive */
	double s_agg[STATS_MAX_K + 2];   /* s_agg(k), k = 0..STATS_MAX_K+1 */
	double load[STATS_MAX_K + 1];    /* load(k), k = 0..STATS_MAX_K */
	double freq_hist[STATS_FREQ_BINS];      /* fraction of neurons per frequency bin */
	double top_share[STATS_TOP_SHARES];     /* share of activations by the top x% */
	int coact_n;                     /* neurons sampled */
	double friend_prob_mean;         /* mean of P(friend | neuron) */
	double friend_prob_median;
	double friend_hot_frac;          /* friend is among the 1% hottest neurons */
	double friends_distinct_frac;    /* distinct friends / neurons sampled */
};

struct stats_result {
	char model[64];
	int layers, d_ffn;
	int64_t tokens;
	int max_k;                 /* largest k reported (<= STATS_MAX_K, < tokens) */
	struct stats_layer *layer; /* (layers) */
	struct stats_layer all;    /* mean over layers */
};

/* Upper edges of the frequency bins and the top-x fractions reported. */
extern const double stats_freq_edges[STATS_FREQ_BINS];
extern const double stats_top_fracs[STATS_TOP_SHARES];

/* Compute every statistic of t. out is filled; free with stats_result_free. */
int stats_compute(const struct trace *t, const struct stats_opts *o, int threads,
		  struct stats_result *out, struct lif_err *err);

void stats_result_free(struct stats_result *r);

/* Write the tidy CSV (columns: metric,layer,k,x,value) atomically. */
int stats_write_csv(const struct stats_result *r, const char *path, struct lif_err *err);

#endif
