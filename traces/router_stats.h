/*
 * router_stats: statistics of a router trace (traces/router.h), one pass.
 *
 * Per MoE layer, over the trace's tokens (a "selection" is one (token,
 * expert) pair of a row; rows are taken in router order):
 *   popularity[e]   fraction of tokens that select expert e;
 *   top_share       share of all selections made by the most popular 10%
 *                   of experts (at least one);
 *   reuse[d]        fraction of selections whose expert was last selected in
 *                   this layer d tokens earlier (d = 1..ROUTER_STATS_MAX_REUSE;
 *                   reuse_far: more than that; reuse_first: never before);
 *   repeat          = reuse[1]: P(an expert of token t was also chosen at t-1);
 *   lru_hit[c]      hit rate of an LRU cache of c experts (c = 0..experts)
 *                   serving the selections in order, from the Mattson stack
 *                   distances of one pass (a selection hits a cache of c
 *                   when fewer than c distinct experts were used since its
 *                   expert's last use; first uses always miss);
 *   cosel_best      mean over experts of P(its most frequent partner is in
 *                   the same row | it is selected); cosel_random is the same
 *                   for independent choices, (k-1)/(E-1);
 *   next_layer_acc  (layers but the last) the fraction of layer l+1's
 *                   experts found among the k that co-occurred most often
 *                   with layer l's experts (an in-sample one-layer-ahead
 *                   predictor); next_layer_pop: the same by layer l+1's
 *                   popularity alone.
 * `all` averages the layers (lru_hit: pooled over selections).
 */
#ifndef LIFSIM_ROUTER_STATS_H
#define LIFSIM_ROUTER_STATS_H

#include <stdint.h>

#include "sim/base/err.h"
#include "traces/router.h"

#define ROUTER_STATS_MAX_REUSE 64

struct router_stats_layer {
	double *popularity; /* (experts) */
	double top_share;
	double reuse[ROUTER_STATS_MAX_REUSE + 1]; /* index d; [0] unused */
	double reuse_far, reuse_first;
	double repeat;
	double *lru_hit;    /* (experts + 1) */
	double cosel_best, cosel_random;
	double next_layer_acc, next_layer_pop; /* -1 for the last layer */
};

struct router_stats {
	int layers, experts, top_k;
	int64_t tokens;
	struct router_stats_layer *layer; /* (layers) */
	struct router_stats_layer all;
};

/* Compute every statistic. r is filled even on failure (free it). */
int router_stats_compute(const struct router_trace *rt, struct router_stats *r,
			 struct lif_err *err);
void router_stats_free(struct router_stats *r);

/* LRU stack distances of one layer: hist[d] (d = 1..experts) counts
 * selections at distance d, *first the first uses. hist has experts + 1
 * entries. Exposed for tests and the simulator. */
void router_stack_distances(const struct router_trace *rt, int layer, int64_t *hist,
			    int64_t *first);

/* Tidy CSV metric,layer,x,value (layer `all` = mean) written atomically. */
int router_stats_write_csv(const struct router_stats *r, const char *path, struct lif_err *err);

#endif
