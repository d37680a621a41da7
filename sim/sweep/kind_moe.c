/*
 * kind_moe: the `moe` point kind of `lifsim sweep` (sim/sweep/sweep.h): one
 * point = one moe_run (sim/core/moe.h) of a router trace through an expert
 * cache, a layout and a device.
 *
 *   [experiment]  kind = moe, model = PATH (an MoE models/llms file),
 *                 device = PATH, trace = PATH.h5 (a router trace) or `synth`
 *                 (generated from [synth] and the model, in memory)
 *   [synth]       router generator parameters (traces/router_synth.h)
 *   [moe]         cache_policy, expert_cache or dram_budget, prefetch,
 *                 prefetch_accuracy, expert_layout, parallelism, max_gap,
 *                 context_tokens, warmup_tokens, overlap, depth, bits, group,
 *                 kernel
 * With dram_budget > 0 the expert cache is the largest that fits beside the
 * resident part (moe_cache_for_budget) and expert_cache must be left at -1;
 * a budget below the resident part gives a row with fits = 0 and NaN costs.
 * Router traces are loaded (or generated) once per distinct value.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/core/moe.h"
#include "sim/core/timeline.h"
#include "sim/sweep/kinds.h"
#include "sim/sweep/pointin.h"
#include "traces/router_synth.h"

#define O(f) CONF_OFF(struct moe_point, f)
const struct conf_opt moe_opts[] = {
	{.section = "experiment", .name = "kind", .type = CONF_STR, .offset = O(kind), .size = 32,
	 .def = "moe", CONF_NO_BOUNDS, .help = "what a point computes"},
	{.section = "experiment", .name = "model", .type = CONF_STR, .offset = O(model),
	 .size = 4096, CONF_NO_BOUNDS, .help = "MoE model description (models/llms/NAME.ini)"},
	{.section = "experiment", .name = "device", .type = CONF_STR, .offset = O(device),
	 .size = 4096, CONF_NO_BOUNDS, .help = "device profile (models/devices/NAME.ini)"},
	{.section = "experiment", .name = "trace", .type = CONF_STR, .offset = O(trace),
	 .size = 4096, .def = "synth", CONF_NO_BOUNDS,
	 .help = "router trace file, or synth to generate one from [synth]"},
	{.section = "moe", .name = "cache_policy", .type = CONF_STR, .offset = O(p.cache_policy),
	 .size = 16, .def = "lru", CONF_NO_BOUNDS,
	 .names = moe_policy_choice, .help = "expert cache policy"},
	{.section = "moe", .name = "expert_cache", .type = CONF_INT, .offset = O(expert_cache),
	 .def = "-1", .min = -1, .max = 4096,
	 .help = "experts per MoE layer held in DRAM (-1: from dram_budget)"},
	{.section = "moe", .name = "dram_budget", .type = CONF_BYTES, .offset = O(dram_budget),
	 .def = "0", .min = 0, .max = 1e15,
	 .help = "DRAM for the model; the expert cache is what fits beside the resident part (0: give expert_cache)"},
	{.section = "moe", .name = "prefetch", .type = CONF_ENUM, .offset = O(p.prefetch),
	 .def = "none", CONF_NO_BOUNDS, .names = moe_prefetch_choice,
	 .help = "router predictor that reads experts ahead"},
	{.section = "moe", .name = "prefetch_accuracy", .type = CONF_DOUBLE,
	 .offset = O(p.prefetch_accuracy), .def = "0.8", .min = 0, .max = 1,
	 .help = "modeled predictor: P(a selected expert is predicted)"},
	{.section = "moe", .name = "expert_layout", .type = CONF_ENUM, .offset = O(p.layout),
	 .def = "expert", CONF_NO_BOUNDS, .names = moe_layout_choice,
	 .help = "experts on flash: one extent each, per matrix, or co-selected adjacent"},
	{.section = "moe", .name = "parallelism", .type = CONF_INT, .offset = O(p.parallelism),
	 .def = "8", .min = 1, .max = 1024, .help = "outstanding reads"},
	{.section = "moe", .name = "max_gap", .type = CONF_BYTES, .offset = O(p.max_gap),
	 .def = "0", .min = -1, .max = 1e12,
	 .help = "merge reads at most this many bytes apart (-1: never)"},
	{.section = "moe", .name = "context_tokens", .type = CONF_I64,
	 .offset = O(p.context_tokens), .def = "512", .min = 0, .max = 1e9,
	 .help = "KV cache length for attention's cost"},
	{.section = "moe", .name = "warmup_tokens", .type = CONF_I64, .offset = O(p.warmup_tokens),
	 .def = "0", .min = 0, .max = 1e9,
	 .help = "tokens simulated before counting (the cache starts cold)"},
	{.section = "moe", .name = "overlap", .type = CONF_ENUM, .offset = O(p.overlap), .def = "none",
	 CONF_NO_BOUNDS, .choices = TIMELINE_OVERLAP_CHOICES,
	 .help = "none: io + mem + compute; pipelined: prefetched reads overlap earlier layers' compute"},
	{.section = "moe", .name = "depth", .type = CONF_INT, .offset = O(p.depth), .def = "1",
	 .min = 1, .max = 1024, .help = "pipelined: layers read ahead at most"},
	{.section = "moe", .name = "bits", .type = CONF_INT, .offset = O(bits), .def = "0",
	 .min = 0, .max = 4,
	 .help = "low-bit linear weights (0 = the model's dtype), as [sim] bits"},
	{.section = "moe", .name = "group", .type = CONF_ENUM, .offset = O(group), .def = "64",
	 CONF_NO_BOUNDS, .choices = "32|64", .help = "low-bit weights per scale group"},
	{.section = "moe", .name = "kernel", .type = CONF_ENUM, .offset = O(kernel), .def = "lut",
	 CONF_NO_BOUNDS, .names = compute_kernel_choice,
	 .help = "low-bit GEMV kernel whose measured speed costs compute"},
	{0},
};

#define TRACES_MAX 64

struct loaded {
	char key[8400];
	struct router_trace *rt;
};

struct moe_ctx {
	struct pointin *in;
	pthread_mutex_t lock;
	struct loaded traces[TRACES_MAX];
	int n;
};

int moe_point_read(const struct conf_doc *doc, struct moe_point *pt,
		   const struct pointin_table *extra, struct lif_err *err)
{
	memset(pt, 0, sizeof *pt);
	router_synth_defaults(&pt->s);
	char choices[128];
	struct pointin_table tables[3] = {{"synth", router_synth_opts, &pt->s},
					  {NULL, moe_opts, pt}, {NULL, moe_opts, pt}};
	if (extra)
		tables[1] = *extra;
	const struct pointin_path paths[] = {
		{pt->model, sizeof pt->model, "experiment", "model", PATH_MODEL},
		{pt->device, sizeof pt->device, "experiment", "device", PATH_DEVICE},
		{pt->trace, sizeof pt->trace, "experiment", "trace", PATH_FILE}};
	int rc = conf_defaults(moe_opts, pt, err);
	if (!rc)
		rc = pointin_apply(doc, tables, 3, NULL, err);
	if (!rc && !moe_cache_find(pt->p.cache_policy))
		rc = err_set(err, ERR_INVAL, "[moe] cache_policy: '%s' is not one of %s",
			     pt->p.cache_policy,
			     conf_names_join(moe_policy_choice, choices, sizeof choices));
	if (!rc && (pt->expert_cache < 0) == (pt->dram_budget == 0))
		rc = err_set(err, ERR_INVAL, "[moe] give exactly one of expert_cache (>= 0) and "
			     "dram_budget (> 0)");
	return rc ? rc : pointin_resolve_all(doc, paths, 3, err);
}

int moe_ctx_new(const struct sweep *sw, void **ctx, struct lif_err *err)
{
	struct moe_ctx *c = calloc(1, sizeof *c);
	if (!c || !(c->in = pointin_new(err))) {
		free(c);
		return err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&c->lock, NULL);
	*ctx = c;
	return 0;
}

void moe_ctx_free(void *ctx)
{
	struct moe_ctx *c = ctx;
	if (!c)
		return;
	pointin_free(c->in);
	for (int i = 0; i < c->n; i++)
		router_trace_free(c->traces[i].rt);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The point's router trace, loaded or generated once per distinct input. */
const struct router_trace *moe_point_trace(void *ctx, const struct moe_point *pt,
					   const struct llm_desc *m, struct lif_err *err)
{
	struct moe_ctx *c = ctx;
	char key[8400];
	int synth = !strcmp(pt->trace, "synth");
	snprintf(key, sizeof key, "%s|%s|%lld|%lld|%.17g|%.17g|%.17g|%.17g", pt->trace,
		 synth ? pt->model : "", (long long)pt->s.tokens, (long long)pt->s.seed, pt->s.zipf,
		 pt->s.repeat, pt->s.layer_corr, pt->s.gate_sigma);
	const struct router_trace *found = NULL;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->n && !found; i++)
		if (!strcmp(c->traces[i].key, key))
			found = c->traces[i].rt;
	if (!found && c->n == TRACES_MAX)
		err_set(err, ERR_RANGE, "more than %d router traces in one sweep", TRACES_MAX);
	else if (!found) {
		struct router_trace *rt = synth ? router_synth_generate(m, &pt->s, err)
						: router_load(pt->trace, err);
		if (rt) {
			snprintf(c->traces[c->n].key, sizeof key, "%s", key);
			c->traces[c->n++].rt = rt;
			found = rt;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

static int moe_check(void *ctx, const struct conf_doc *point, struct conf_doc *resolved,
		     struct lif_err *err)
{
	struct moe_point pt;
	int rc = moe_point_read(point, &pt, NULL, err);
	const char *paths[3] = {pt.model, pt.device, pt.trace};
	const char *names[3] = {"[experiment] model", "[experiment] device", "[experiment] trace"};
	for (int i = 0; !rc && i < 3; i++)
		if (strcmp(paths[i], "synth") && access(paths[i], R_OK))
			rc = err_set(err, ERR_IO, "%s: %s: %s", names[i], paths[i], strerror(errno));
	if (!rc)
		rc = sweep_resolved_add_opts(resolved, moe_opts, &pt);
	if (!rc && !strcmp(pt.trace, "synth"))
		rc = sweep_resolved_add_opts(resolved, router_synth_opts, &pt.s);
	return rc;
}

/* The model as the point stores it (low-bit weights when asked). */
int moe_point_model(const struct moe_point *pt, struct llm_desc *m, struct lif_err *err)
{
	int rc = llm_load(pt->model, m, err);
	if (rc)
		return rc;
	if (!llm_is_moe(m))
		return err_set(err, ERR_INVAL, "%s: not a mixture-of-experts model (no experts key)",
			       pt->model);
	m->params = 0;
	m->weight_bits = pt->bits;
	m->weight_group = pt->bits ? 32 << pt->group : 0;
	return llm_derive(m, pt->model, err);
}

static int put_result(struct sweep_row *row, const struct moe_result *r, int fits)
{
	double nan_ = NAN;
	const struct { const char *name; double v; } cols[] = {
		{"fits", fits},
		{"expert_cache", fits ? r->expert_cache : nan_},
		{"expert_hit_rate", fits ? r->expert_hit_rate : nan_},
		{"expert_bytes_read_per_token", fits ? r->expert_bytes_read_per_token : nan_},
		{"prefetch_wasted_bytes_per_token", fits ? r->prefetch_wasted_bytes_per_token : nan_},
		{"reads_per_token", fits ? r->reads_per_token : nan_},
		{"io_ms", fits ? r->io_ms : nan_},
		{"io_ahead_ms", fits ? r->io_ahead_ms : nan_},
		{"mem_ms", fits ? r->mem_ms : nan_},
		{"compute_ms", fits ? r->compute_ms : nan_},
		{"total_ms", fits ? r->total_ms : nan_},
		{"tokens_per_s", fits ? r->tokens_per_s : nan_},
		{"dram_bytes", fits ? (double)r->dram_bytes : nan_},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
		rc |= sweep_row_set_num(row, cols[i].name, cols[i].v);
	return rc;
}

static int moe_point(void *ctx, const struct conf_doc *point, struct sweep_row *row,
		     struct lif_err *err)
{
	struct moe_ctx *c = ctx;
	struct moe_point pt;
	struct llm_desc m;
	struct moe_result r = {0};
	int rc = moe_point_read(point, &pt, NULL, err), fits = 1;
	if (!rc)
		rc = moe_point_model(&pt, &m, err);
	const struct router_trace *rt = rc ? NULL : moe_point_trace(c, &pt, &m, err);
	const struct device *d0 = rt ? pointin_device(c->in, pt.device, err) : NULL;
	if (!rc && (!rt || !d0))
		rc = err->code ? err->code : ERR_IO;
	struct device dev;
	if (!rc) {
		dev = *d0;
		dev.compute.kernel = pt.kernel;
		pt.p.expert_cache = pt.dram_budget > 0 ? moe_cache_for_budget(&m, pt.dram_budget)
						       : pt.expert_cache;
		fits = pt.p.expert_cache >= 0;
		gsl_rng *rng = pt.p.prefetch == MOE_PREFETCH_MODELED ? sweep_row_rng(row) : NULL;
		if (fits)
			rc = moe_run(rt, &m, &dev, &pt.p, rng, &r, err);
	}
	if (!rc && put_result(row, &r, fits))
		rc = err_set(err, ERR_INVAL, "%s", sweep_row_error(row) ? sweep_row_error(row) : "bad column");
	return rc;
}

const struct sweep_kind sweep_kind_moe = {
	"moe", "simulate a router trace through an expert cache and the cost model",
	moe_ctx_new, moe_ctx_free, moe_check, moe_point,
};
