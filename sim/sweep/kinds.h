/*
 * kinds: the point kinds of `lifsim sweep` beyond the runner's own `echo`
 * (sim/sweep/sweep.h describes the contract; sim/sweep/sweep_kinds.c lists them).
 */
#ifndef LIFSIM_KINDS_H
#define LIFSIM_KINDS_H

#include "sim/core/moe.h"
#include "sim/sweep/sweep.h"
#include "traces/router_synth.h"

/* [experiment] kind = simulate: one sim_run per point (sim/sweep/kind_simulate.c). */
extern const struct sweep_kind sweep_kind_simulate;

/* [experiment] kind = validate: predict and replay (sim/sweep/kind_validate.c). */
extern const struct sweep_kind sweep_kind_validate;
/* Its [experiment] and [validate] keys (the replay and layout verbs' flags
 * that mirror them parse through these rows). */
extern const struct conf_opt validate_opts[];

/* [experiment] kind = moe: expert caches over a router trace (sim/sweep/kind_moe.c). */
extern const struct sweep_kind sweep_kind_moe;

/* A kind = moe point ([experiment], [synth], [moe]): what moevalidate and
 * `lifsim replay --router-trace` share with it. */
struct moe_point {
	char kind[32];
	char model[4096];
	char device[4096];
	char trace[4096];
	struct router_synth_params s;
	struct moe_params p;
	int expert_cache;
	int64_t dram_budget;
	int bits, group, kernel;
};
extern const struct conf_opt moe_opts[];
/* Read a point (defaults, the document's values, paths resolved); extra
 * (may be NULL) takes its section's entries (the caller set its defaults). */
struct pointin_table;
int moe_point_read(const struct conf_doc *doc, struct moe_point *pt,
		   const struct pointin_table *extra, struct lif_err *err);
/* The point's MoE model (low-bit weights when asked). */
int moe_point_model(const struct moe_point *pt, struct llm_desc *m, struct lif_err *err);
/* The kind's context (router traces loaded once per distinct input). */
int moe_ctx_new(const struct sweep *sw, void **ctx, struct lif_err *err);
void moe_ctx_free(void *ctx);
/* The point's router trace, loaded or generated once (owned by ctx). */
const struct router_trace *moe_point_trace(void *ctx, const struct moe_point *pt,
					   const struct llm_desc *m, struct lif_err *err);

/* [experiment] kind = moevalidate: MoE points predicted and replayed with real
 * reads (sim/sweep/kind_moevalidate.c). */
extern const struct sweep_kind sweep_kind_moevalidate;

#endif
