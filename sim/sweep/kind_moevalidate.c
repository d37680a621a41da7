/*
 * kind_moevalidate: the `moevalidate` point kind of `lifsim sweep` / `lifsim
 * validate`: per point, the MoE simulator's prediction (moe_run_plan,
 * sim/core/moe.h, on a device profile from `lifsim calibrate`) and the real
 * replay of its plan (sim/real/moereplay.h) against an expert weight file,
 * repeated, with drift probes matched to the point's reads between tokens.
 *
 *   [experiment]  kind = moevalidate, model (an MoE model), device, trace
 *                 (a router trace file: for expert_layout = cosel the one the
 *                 weight file was laid out from)
 *   [synth], [moe] as for kind = moe (sim/sweep/kind_moe.c)
 *   [validate]    weights (lifsim layout of the model in the point's
 *                 expert_layout at `scale`), engine, repeats, tokens, scale,
 *                 verify, arena, probe_file, probe_seconds (as kind =
 *                 validate)
 *
 * Timed tokens are [warmup_tokens, warmup_tokens + tokens); the cache state
 * of the earlier tokens is the plan's, so they are not read. The prediction
 * is averaged over the same tokens from the plan: io = the flash model's
 * time of the planned batches, mem = moe_mem_ns of the planned copies into
 * the expert cache, inserts, evictions and bytes (as moe_run), total = io +
 * mem; copied_bytes_per_token_pred / _meas are the plan's copies and the
 * replay's (equal by construction). The compute is not
 * replayed, so total = io + mem on both sides whatever [moe] overlap says.
 *
 * Drift (as kind = validate): a probe of random reads of the point's mean
 * read size (rounded up to 4 KiB) at depth min(parallelism, mean extents of
 * a non-empty layer batch), before the first timed token and after each;
 * a token's factor is the profile's flash throughput for the probe's reads
 * over the geometric mean of the probes around it; *_corr divide each
 * token's io_ms by its factor. Columns keep kind = validate's names, so
 * `lifsim validate` summarizes both (compute_*: NaN; regime: latency or
 * bandwidth as there), plus expert_hit_rate (the run's, over the tokens
 * after warmup) and expert_bytes_read_per_token (predicted over the timed
 * tokens; bytes_per_token_meas is what the replay read, as planned).
 *
 * Points are measured one at a time (a lock), whatever --threads says.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/dram.h"
#include "models/flash.h"
#include "sim/base/hostinfo.h"
#include "sim/base/util.h"
#include "sim/real/calib.h"
#include "sim/real/moereplay.h"
#include "sim/real/replay.h"
#include "sim/sweep/drift.h"
#include "sim/sweep/kinds.h"
#include "sim/sweep/pointin.h"

#define MAXREP VALIDATE_MAXREP
#define MAXPROBE DRIFT_MAXPROBE

struct mvparams {
	char weights[4096], probe_file[4096];
	int engine, repeats, verify;
	int64_t tokens, arena;
	double scale, probe_seconds;
};

#define OV(f) CONF_OFF(struct mvparams, f)
static const struct conf_opt mv_opts[] = {
	VALIDATE_REPLAY_ROWS(OV, "expert weight file (lifsim layout) in the point's expert_layout",
			     "[moe] warmup_tokens", "0: one staging buffer"),
	VALIDATE_PROBE_ROWS(OV),
	{0},
};

struct mvpoint {
	struct moe_point pt;
	struct mvparams v;
};

struct mvctx {
	void *moe; /* kind_moe's context: router traces */
	struct pointin *in;
	pthread_mutex_t measure;
};

static int read_point(const struct conf_doc *doc, struct mvpoint *p, struct lif_err *err)
{
	memset(&p->v, 0, sizeof p->v);
	const struct pointin_table extra = {"validate", mv_opts, &p->v};
	int rc = conf_defaults(mv_opts, &p->v, err);
	if (!rc)
		rc = moe_point_read(doc, &p->pt, &extra, err);
	const struct pointin_path paths[] = {
		{p->v.weights, sizeof p->v.weights, "validate", "weights", PATH_FILE},
		{p->v.probe_file, sizeof p->v.probe_file, "validate", "probe_file", PATH_FILE}};
	if (!rc)
		rc = pointin_resolve_all(doc, paths, 2, err);
	if (!rc && !p->v.weights[0])
		rc = err_set(err, ERR_INVAL, "[validate] weights: required key is missing");
	return rc;
}

static int mv_ctx_new(const struct sweep *sw, void **ctx, struct lif_err *err)
{
	struct mvctx *c = calloc(1, sizeof *c);
	if (!c)
		return err_set(err, ERR_NOMEM, "out of memory");
	if (moe_ctx_new(sw, &c->moe, err) || !(c->in = pointin_new(err))) {
		moe_ctx_free(c->moe);
		free(c);
		return err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&c->measure, NULL);
	hostinfo_warn_damon("moevalidate");
	*ctx = c;
	return 0;
}

static void mv_ctx_free(void *ctx)
{
	struct mvctx *c = ctx;
	if (!c)
		return;
	moe_ctx_free(c->moe);
	pointin_free(c->in);
	pthread_mutex_destroy(&c->measure);
	free(c);
}

static int mv_check(void *ctx, const struct conf_doc *point, struct conf_doc *resolved,
		    struct lif_err *err)
{
	(void)ctx;
	struct mvpoint p;
	int rc = read_point(point, &p, err);
	const char *paths[4] = {p.pt.model, p.pt.device, p.pt.trace, p.v.weights};
	const char *names[4] = {"[experiment] model", "[experiment] device", "[experiment] trace",
				"[validate] weights"};
	for (int i = 0; !rc && i < 4; i++)
		if (strcmp(paths[i], "synth") && access(paths[i], R_OK))
			rc = err_set(err, ERR_IO, "%s: %s: %s", names[i], paths[i], strerror(errno));
	if (!rc)
		rc = sweep_resolved_add_opts(resolved, moe_opts, &p.pt);
	if (!rc && !strcmp(p.pt.trace, "synth"))
		rc = sweep_resolved_add_opts(resolved, router_synth_opts, &p.pt.s);
	if (!rc)
		rc = sweep_resolved_add_opts(resolved, mv_opts, &p.v);
	return rc;
}

/* ---- the prediction over the timed tokens ---- */

struct pmeans {
	double io, mem, total, bytes, reads, ops, copied, batch_reads; /* per token; extents per non-empty batch */
};

static void plan_means(const struct moe_plan *p, const struct device *dev, int64_t a, int64_t b,
		       struct pmeans *pm)
{
	memset(pm, 0, sizeof *pm);
	double nb = 0;
	for (int64_t t = a; t < b; t++) {
		struct moe_token_sums s;
		moe_plan_token_sums(p, t, &s);
		pm->io += s.io_ns * 1e-6, pm->ops += s.ops, pm->reads += (double)s.reads;
		pm->bytes += (double)s.bytes, pm->copied += (double)s.copied;
		nb += (double)s.batches;
	}
	pm->batch_reads = nb > 0 ? pm->reads / nb : 0;
	const double n = (double)(b - a);
	pm->io /= n, pm->ops /= n, pm->reads /= n, pm->bytes /= n, pm->copied /= n;
	pm->mem = moe_mem_ns(&dev->dram, pm->copied, pm->ops, pm->bytes) * 1e-6;
	pm->total = pm->io + pm->mem;
}

/* ---- measuring ---- */

struct reps {
	double io[MAXREP], mem[MAXREP], total[MAXREP], io_c[MAXREP], total_c[MAXREP];
	double bytes, copied;
	struct drift_probe pr;
};

static int measure(const struct mvpoint *p, const struct llm_desc *m, const struct moe_plan *plan,
		   const struct device *dev, const struct pmeans *pm, int64_t a, int64_t b,
		   uint64_t seed, struct reps *rp, struct lif_err *err)
{
	const struct mvparams *v = &p->v;
	struct drift_probe *pr = &rp->pr;
	struct wfile *w = wfile_open(v->weights, err);
	struct io_engine *io = w ? io_open(io_engines[v->engine]->name, v->weights,
					   p->pt.p.parallelism, 0, err) : NULL;
	struct moe_replay_token *tok = calloc((size_t)plan->tokens, sizeof *tok);
	struct io_arena *arena = NULL;
	int rc = !w || !io ? err->code : !tok ? err_set(err, ERR_NOMEM, "out of memory") : 0;
	if (!rc && (b - a) * v->repeats > MAXPROBE)
		rc = err_set(err, ERR_RANGE, "[validate] repeats x tokens: at most %d", MAXPROBE);
	if (!rc)
		rc = wfile_moe_match(w, m, plan->layout, plan->slot, err);
	if (!rc && v->arena > 0 && !(arena = io_arena_new(v->arena, err)))
		rc = err->code;
	memset(pr, 0, sizeof *pr);
	if (!rc) {
		const char *file = v->probe_file[0] ? v->probe_file : v->weights;
		int depth = (int)fmax(1, fmin(p->pt.p.parallelism, lround(pm->batch_reads)));
		int64_t chunk = (int64_t)ceil((pm->reads > 0 ? pm->bytes / pm->reads : 4096) / 4096) * 4096;
		rc = drift_open(pr, io_engines[v->engine]->name, file, chunk, depth, 0, v->probe_seconds, seed,
				dev, arena, err);
	}
	if (!rc)
		rc = drift_run(pr, err);
	for (int k = 0; !rc && k < v->repeats; k++) {
		const struct moe_replay_opts o = {.first_token = a, .tokens = b - a,
						  .verify = v->verify && !k, .arena = arena,
						  .after_token = drift_after_token, .after_ctx = pr};
		const int f0 = pr->nf;
		if ((rc = moe_replay(plan, m, w, io, &o, tok, err)))
			break;
		double n = (double)(b - a), io_ms = 0, mem = 0, io_c = 0, bytes = 0, copied = 0;
		for (int64_t t = a; t < b; t++) {
			io_ms += tok[t].io_ms / n, mem += tok[t].mem_ms / n;
			io_c += tok[t].io_ms / pr->f[f0 + (t - a)] / n;
			bytes += (double)tok[t].bytes_read / n;
			copied += (double)tok[t].bytes_copied / n;
		}
		rp->copied = copied;
		rp->io[k] = io_ms, rp->mem[k] = mem, rp->total[k] = io_ms + mem;
		rp->io_c[k] = io_c, rp->total_c[k] = io_c + mem, rp->bytes = bytes;
	}
	drift_close(pr);
	io_arena_free(arena);
	io_close(io);
	wfile_close(w);
	free(tok);
	return rc;
}

/* The row's columns: the plan's prediction pm against the repeats'
 * medians rp (kind = validate's names; compute: NaN). */
static int put_columns(struct sweep_row *row, const struct mvpoint *p, const struct moe_result *r,
		       const struct device *dev, const struct pmeans *pm, const struct reps *rp,
		       int64_t timed, struct lif_err *err)
{
	const int n = p->v.repeats;
	const struct drift_probe *pr = &rp->pr;
	double io = drift_median(rp->io, n), mem = drift_median(rp->mem, n), tot = drift_median(rp->total, n);
	double io_c = drift_median(rp->io_c, n), tot_c = drift_median(rp->total_c, n);
	double mean_read = pm->reads > 0 ? pm->bytes / pm->reads : 0;
	double nan_ = NAN;
	int e = sweep_row_set_str(row, "regime", drift_regime(dev, mean_read, pr->depth));
	e |= sweep_row_set_str(row, "overlap_mode", "none");
	const struct { const char *name; double v; } cols[] = {
		{"expert_cache", p->pt.p.expert_cache},
		{"expert_hit_rate", r->expert_hit_rate},
		{"expert_bytes_read_per_token", pm->bytes},
		{"tokens_timed", (double)timed},
		{"bytes_per_token_pred", pm->bytes},
		{"bytes_per_token_meas", rp->bytes},
		{"copied_bytes_per_token_pred", pm->copied},
		{"copied_bytes_per_token_meas", rp->copied},
		{"reads_per_token", pm->reads},
		{"mean_read_bytes", mean_read},
		{"io_ms_pred", pm->io}, {"io_ms_meas", io}, {"io_rel_err", pm->io / io - 1},
		{"mem_ms_pred", pm->mem}, {"mem_ms_meas", mem},
		{"mem_rel_err", pm->mem > 0 && mem > 0 ? pm->mem / mem - 1 : nan_},
		{"total_ms_pred", pm->total}, {"total_ms_meas", tot},
		{"total_rel_err", pm->total / tot - 1},
		{"compute_ms_pred", nan_}, {"compute_ms_meas", nan_}, {"compute_rel_err", nan_},
		{"compute_ms_meas_corr", nan_}, {"compute_rel_err_corr", nan_},
		{"probe_chunk_bytes", (double)pr->chunk}, {"probe_depth", pr->depth},
		{"probe_mib_per_s", drift_median(pr->mib, pr->nmib)},
		{"probe_ref_mib_per_s", pr->ref / 1048576.0},
		{"drift", drift_median(pr->f, pr->nf)},
		{"io_ms_meas_corr", io_c}, {"io_rel_err_corr", pm->io / io_c - 1},
		{"total_ms_meas_corr", tot_c}, {"total_rel_err_corr", pm->total / tot_c - 1},
		{"io_cv", drift_cv(rp->io, n)}, {"mem_cv", drift_cv(rp->mem, n)},
		{"total_cv", drift_cv(rp->total, n)}, {"compute_cv", nan_},
		{"drift_cv", drift_cv(pr->f, pr->nf)},
	};
	for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
		e |= sweep_row_set_num(row, cols[i].name, cols[i].v);
	return e ? err_set(err, ERR_INVAL, "%s", sweep_row_error(row) ? sweep_row_error(row) : "bad column")
		 : 0;
}

static int mv_point(void *ctx, const struct conf_doc *point, struct sweep_row *row,
		    struct lif_err *err)
{
	struct mvctx *c = ctx;
	struct mvpoint p;
	struct llm_desc m;
	struct moe_result r = {0};
	struct moe_plan plan = {0};
	int rc = read_point(point, &p, err);
	if (!rc)
		rc = moe_point_model(&p.pt, &m, err);
	if (!rc)
		rc = replay_scale_model(&m, p.v.scale, err);
	const struct router_trace *rt = rc ? NULL : moe_point_trace(c->moe, &p.pt, &m, err);
	const struct device *d0 = rt ? pointin_device(c->in, p.pt.device, err) : NULL;
	if (!rc && (!rt || !d0))
		rc = err->code ? err->code : ERR_IO;
	struct device dev;
	if (!rc) {
		dev = *d0;
		dev.compute.kernel = p.pt.kernel;
		p.pt.p.expert_cache = p.pt.dram_budget > 0 ? moe_cache_for_budget(&m, p.pt.dram_budget)
							   : p.pt.expert_cache;
		if (p.pt.p.expert_cache < 0)
			rc = err_set(err, ERR_INVAL, "[moe] dram_budget: the resident part of %s does not "
				     "fit", m.name);
	}
	if (!rc) {
		gsl_rng *rng = p.pt.p.prefetch == MOE_PREFETCH_MODELED ? sweep_row_rng(row) : NULL;
		rc = moe_run_plan(rt, &m, &dev, &p.pt.p, rng, &r, &plan, err);
	}
	const int64_t T = rt ? rt->meta.tokens : 0, a = p.pt.p.warmup_tokens;
	const int64_t b = a + p.v.tokens < T ? a + p.v.tokens : T;
	struct pmeans pm;
	struct reps *rp = rc ? NULL : calloc(1, sizeof *rp);
	if (!rc && !rp)
		rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc) {
		plan_means(&plan, &dev, a, b, &pm);
		pthread_mutex_lock(&c->measure);
		rc = measure(&p, &m, &plan, &dev, &pm, a, b, sweep_row_seed(row), rp, err);
		pthread_mutex_unlock(&c->measure);
	}
	if (!rc)
		rc = put_columns(row, &p, &r, &dev, &pm, rp, b - a, err);
	free(rp);
	moe_plan_free(&plan);
	return rc;
}

const struct sweep_kind sweep_kind_moevalidate = {
	.name = "moevalidate",
	.summary = "MoE: predict and replay the expert reads for real; error of the prediction",
	.ctx_new = mv_ctx_new,
	.ctx_free = mv_ctx_free,
	.check = mv_check,
	.run = mv_point,
};
