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

/* The [validate] rows the replaying kinds (validate, moevalidate) share, for
 * a params struct with these fields: char weights[], probe_file[] (4096);
 * int engine, repeats, verify; int64_t tokens, arena; double scale,
 * probe_seconds. OV(f) is the struct's CONF_OFF; WEIGHTS, WARMUP and ARENA
 * are the help texts that differ (what the weight file holds, where the
 * warm-up tokens are set, what an arena of 0 means). One list, so that a
 * bound or a help text cannot drift between the kinds (the order is the
 * resolved config's). */
#define VALIDATE_REPLAY_ROWS(OV, WEIGHTS, WARMUP, ARENA) \
	{.section = "validate", .name = "weights", .type = CONF_STR, .offset = OV(weights), \
	 .size = 4096, CONF_NO_BOUNDS, .help = WEIGHTS}, \
	{.section = "validate", .name = "engine", .type = CONF_ENUM, .offset = OV(engine), \
	 .def = "io_uring", CONF_NO_BOUNDS, .names = io_engine_choice, .help = "io engine"}, \
	{.section = "validate", .name = "repeats", .type = CONF_INT, .offset = OV(repeats), \
	 .def = "3", .min = 1, .max = VALIDATE_MAXREP, .help = "replays per point (median)"}, \
	{.section = "validate", .name = "tokens", .type = CONF_I64, .offset = OV(tokens), \
	 .def = "16", .min = 1, .max = 1 << 30, .help = "timed tokens after " WARMUP}, \
	{.section = "validate", .name = "scale", .type = CONF_DOUBLE, .offset = OV(scale), \
	 .def = "1", .min = 1e-6, .max = 1, \
	 .help = "d_model scale the weight file was written with (lifsim layout --scale)"}, \
	{.section = "validate", .name = "verify", .type = CONF_BOOL, .offset = OV(verify), \
	 .def = "true", CONF_NO_BOUNDS, \
	 .help = "check the checksums of what is read (first repeat; untimed)"}, \
	{.section = "validate", .name = "arena", .type = CONF_BYTES, .offset = OV(arena), \
	 .def = "1GiB", .min = 0, .max = 1LL << 40, \
	 .help = "DRAM ring the replay's and the probes' reads land in (" ARENA ")"}
/* ... and the drift probes' rows, after the kind's own. */
#define VALIDATE_PROBE_ROWS(OV) \
	{.section = "validate", .name = "probe_file", .type = CONF_STR, .offset = OV(probe_file), \
	 .size = 4096, .def = "", CONF_NO_BOUNDS, \
	 .help = "file the drift probes read (empty: the weight file)"}, \
	{.section = "validate", .name = "probe_seconds", .type = CONF_DOUBLE, \
	 .offset = OV(probe_seconds), .def = "0.05", .min = 0.001, .max = 60, \
	 .help = "length of each drift probe (one before the first timed token, one after each)"}
/* replays per point at most */
#define VALIDATE_MAXREP 100

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
