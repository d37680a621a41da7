/*
 * router_synth: synthetic MoE router traces (traces/router.h) for a model
 * description with experts (models/llm.h), seeded and deterministic.
 *
 * The generator, per MoE layer l and token t, fills the k slots of the row
 * one at a time, each with a distinct expert:
 *   - with probability `repeat` (temporal locality), an expert the same
 *     layer chose for token t-1, uniformly among those not yet in the row;
 *   - else, with probability `layer_corr` (layer-to-layer correlation,
 *     l > 0), the partner pi_l(e) of an expert e that layer l-1 chose for
 *     this token, where pi_l is a fixed random permutation per layer;
 *   - else a draw from the layer's popularity, Zipf-like: expert of rank r
 *     (a random permutation per layer) with weight (r + 1)^-zipf.
 * A candidate already in the row is replaced by a popularity draw. Gate
 * weights are exp(N(0, gate_sigma^2)) per slot, normalized to sum to 1
 * (norm_topk_prob), and the row is sorted by descending weight (router order).
 *
 * What the parameters aim at (traces/FORMAT.md, "Synthetic router traces",
 * gives the sources): routers are trained with load-balancing losses, so
 * popularity skew is mild (a top-32 static set of 512 experts covers ~10% of
 * selections where uniform gives 6.2%), while temporal locality is strong
 * (per-layer LRU-64 hits ~67%, LRU-128 ~81%, same model). The defaults are
 * [assumption]s in that direction, not fitted; `lifsim stats` on the result
 * prints what they give.
 */
#ifndef LIFSIM_ROUTER_SYNTH_H
#define LIFSIM_ROUTER_SYNTH_H

#include <stdint.h>

#include "models/llm.h"
#include "sim/base/conf.h"
#include "sim/base/err.h"
#include "traces/router.h"

struct router_synth_params {
	int64_t tokens;
	int64_t seed;
	double zipf;       /* popularity exponent over rank (0 = uniform) */
	double repeat;     /* P(a slot copies an expert of the previous token) */
	double layer_corr; /* P(a slot follows the previous layer's choice) */
	double gate_sigma; /* spread of the gate weights' log */
};

/* Section [synth] (the same keys `lifsim synth --set` takes for MoE models). */
extern const struct conf_opt router_synth_opts[];

void router_synth_defaults(struct router_synth_params *p);

/* Generate a router trace for m (llm_is_moe(m)). Caller frees. */
struct router_trace *router_synth_generate(const struct llm_desc *m,
					   const struct router_synth_params *p,
					   struct lif_err *err);

#endif
