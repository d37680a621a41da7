/*
 * kind_validate: the `validate` point kind of `lifsim sweep` / `lifsim
 * validate` (sim/sweep/sweep.h): per point, the simulator's prediction (sim_run
 * on a device profile from `lifsim calibrate`) and the real replay of the
 * same decisions (sim/real/replay.h), repeated, with drift probes matched to the
 * point's reads between its tokens.
 *
 *   [experiment]  kind = validate, model, device, trace (a .h5 file: the
 *                 one the weight file's layout was ordered by)
 *   [sim]         the simulator's knobs (sim/core/sim.h); strategy = naive reads
 *                 the weight file's whole FFN (use naive_keep_dense = true)
 *   [validate]    weights, engine, repeats, tokens, scale, verify, arena,
 *                 probe_file, probe_seconds
 *
 * Timed tokens are [warmup_tokens, warmup_tokens + tokens): the replay steps
 * the earlier ones untimed (same state as the simulator) and the prediction
 * is averaged over the same tokens. With [validate] compute = true (default
 * false: host-validate.ini checks the reads only) the replay runs the
 * token's compute for real (sim/real/rcompute.h: every operation the
 * compute model counts, fp32 OpenBLAS sgemv, which needs
 * [sim] compute_dtype = fp32) and total = io + mem + compute (overlap =
 * none) or the token's wall time with reads on a reader thread (overlap =
 * pipelined; sim/real/replay.h), against the simulator's total_ms for the
 * same overlap; with compute = false (and always for the naive strategy,
 * whose dense FFN the replay does not compute) total = io + mem on both
 * sides.
 *
 * Drift: this host's disk changes speed by 2-4x from minute to minute and
 * by +-20% within a second, and unevenly across read sizes and depths. So
 * each point has its own probe, matched to its reads: a calibrate point
 * (sim/real/calib.h) of random reads of the point's mean read size (rounded up
 * to 4 KiB) at its queue depth (min(parallelism, reads per layer)); for
 * the naive strategy, sequential naive_chunk reads at its parallelism. It
 * reads probe_file (default: the weight file) for probe_seconds before the
 * first timed token and after every timed token. A token's drift factor is
 * the profile's flash model's throughput for the probe's reads (what the
 * prediction assumes) over the geometric mean of the probes just before and
 * after it (> 1: the device is slower now than the profile says); the
 * *_corr columns divide each token's io_ms by its factor (pipelined: the
 * token's wall time is scaled by timeline(io / factor) / timeline(io) over
 * its measured per-layer reader and compute times, sim/core/timeline.h, so
 * only the reads' share of the critical path is corrected). Compute drifts
 * too (the machine is shared: other programs' memory traffic moves the
 * sgemv rate by 1.5x and more): with compute, every probe is followed by a
 * compute probe, 5 sgemv calls on cold copies of the model's q projection
 * (q_dim x d_model fp32, the operation that dominates a token's compute;
 * sim/real/calib.h), whose reference is the profile's GEMV rate at that
 * size; compute_ms_meas_corr divides each token's compute by its factor
 * (drift_compute), and the corrected totals use both factors. So the
 * corrected compute error is the per-operation model's, given the host's
 * GEMV speed as measured beside the token. So the corrected
 * error is the model's error in how this trace's reads (mixed sizes, layer
 * batches, the planner's extents) add up, with the device's speed at the
 * point's operating point taken as measured beside it; the raw error adds
 * the drift and the fit. drift and drift_cv are the factors' median and
 * spread; probe_* say what was probed. Values are medians over repeats;
 * *_cv are the repeats' coefficients of variation.
 *
 * Regime: `latency` when the queue limits (N b / t(b) below the device's
 * IOPS and bandwidth caps in the profile's parametric form, N = min(
 * parallelism, reads per layer), b = mean read size), else `bandwidth`.
 *
 * Points are measured one at a time (a lock), whatever --threads says.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/base/atomic.h"
#include "sim/base/csv.h"
#include "sim/base/hostinfo.h"
#include "sim/base/util.h"
#include "sim/real/calib.h"
#include "sim/sweep/drift.h"
#include "sim/sweep/kinds.h"
#include "sim/sweep/pointin.h"
#include "sim/real/replay.h"
#include "sim/core/sim.h"
#include "sim/core/timeline.h"

#define MAXREP VALIDATE_MAXREP
#define MAXPROBE DRIFT_MAXPROBE

struct vparams {
	char kind[32], model[4096], device[4096], trace[4096], weights[4096], probe_file[4096];
	int engine; /* index into io_engines */
	int repeats, verify, compute;
	int64_t tokens, arena, dense_bytes;
	double scale, probe_seconds;
};

#define OV(f) CONF_OFF(struct vparams, f)
const struct conf_opt validate_opts[] = {
	{.section = "experiment", .name = "kind", .type = CONF_STR, .offset = OV(kind), .size = 32,
	 .def = "validate", CONF_NO_BOUNDS, .help = "what a point computes"},
	{.section = "experiment", .name = "model", .type = CONF_STR, .offset = OV(model),
	 .size = 4096, CONF_NO_BOUNDS, .help = "model description"},
	{.section = "experiment", .name = "device", .type = CONF_STR, .offset = OV(device),
	 .size = 4096, CONF_NO_BOUNDS, .help = "device profile (from lifsim calibrate)"},
	{.section = "experiment", .name = "trace", .type = CONF_STR, .offset = OV(trace),
	 .size = 4096, CONF_NO_BOUNDS,
	 .help = "trace file (.h5): the one the weight file was laid out from"},
	VALIDATE_REPLAY_ROWS(OV, "weight file (lifsim layout) in the point's layout", "[sim] warmup_tokens",
			     "sim/real/io.h; 0: reused buffers"),
	{.section = "validate", .name = "compute", .type = CONF_BOOL, .offset = OV(compute),
	 .def = "false", CONF_NO_BOUNDS,
	 .help = "run the token's compute for real (needs [sim] compute_dtype = fp32; not for "
		 "strategy = naive) and compare compute_ms and total_ms with it"},
	{.section = "validate", .name = "dense_bytes", .type = CONF_BYTES, .offset = OV(dense_bytes),
	 .def = "1GiB", .min = 1 << 20, .max = 1LL << 40,
	 .help = "compute: DRAM for distinct layers' dense weights; beyond it layers share sets "
		 "(sim/real/rcompute.h)"},
	VALIDATE_PROBE_ROWS(OV),
	{0},
};

struct vpoint {
	struct vparams v;
	struct sim_params p;
};

/* Shared inputs (sim/sweep/pointin.h); one point measures at a time. */
struct vctx {
	struct pointin *in;
	pthread_mutex_t measure;
};

static int read_point(const struct conf_doc *doc, struct vpoint *pt, struct lif_err *err)
{
	memset(pt, 0, sizeof *pt);
	sim_default_params(&pt->p);
	const struct pointin_table tables[] = {{"sim", sim_opts, &pt->p},
					       {NULL, validate_opts, &pt->v}};
	const struct pointin_path paths[] = {
		{pt->v.model, sizeof pt->v.model, "experiment", "model", PATH_MODEL},
		{pt->v.device, sizeof pt->v.device, "experiment", "device", PATH_DEVICE},
		{pt->v.trace, sizeof pt->v.trace, "experiment", "trace", PATH_FILE},
		{pt->v.weights, sizeof pt->v.weights, "validate", "weights", PATH_FILE},
		{pt->v.probe_file, sizeof pt->v.probe_file, "validate", "probe_file", PATH_FILE}};
	int rc = conf_defaults(validate_opts, &pt->v, err);
	if (!rc)
		rc = pointin_apply(doc, tables, 2, NULL, err);
	return rc ? rc : pointin_resolve_all(doc, paths, 5, err);
}

static int v_ctx_new(const struct sweep *sw, void **ctx, struct lif_err *err)
{
	struct vctx *c = calloc(1, sizeof *c);
	if (!c || !(c->in = pointin_new(err))) {
		free(c);
		return err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&c->measure, NULL);
	hostinfo_warn_damon("validate");
	*ctx = c;
	return 0;
}

static void v_ctx_free(void *ctx)
{
	struct vctx *c = ctx;
	if (!c)
		return;
	pointin_free(c->in);
	pthread_mutex_destroy(&c->measure);
	free(c);
}

static int v_check(void *ctx, const struct conf_doc *point, struct conf_doc *resolved,
		   struct lif_err *err)
{
	struct vpoint pt;
	int rc = read_point(point, &pt, err);
	const char *paths[4] = {pt.v.model, pt.v.device, pt.v.trace, pt.v.weights};
	const char *names[4] = {"[experiment] model", "[experiment] device", "[experiment] trace",
				"[validate] weights"};
	for (int i = 0; !rc && i < 4; i++)
		if (access(paths[i], R_OK))
			rc = err_set(err, ERR_IO, "%s: %s: %s", names[i], paths[i], strerror(errno));
	if (!rc)
		rc = sweep_resolved_add_opts(resolved, validate_opts, &pt.v);
	if (!rc)
		rc = sweep_resolved_add_opts(resolved, sim_opts, &pt.p);
	return rc;
}

/* ---- measuring ---- */

/* Prediction means over the timed tokens. */
struct means {
	double io, mem, compute, total, bytes, reads;
};

/* cmp: the point compares compute (the totals include it) */
static void pred_means(const struct sim_token *tok, int64_t a, int64_t b, int cmp, struct means *m)
{
	memset(m, 0, sizeof *m);
	for (int64_t i = a; i < b; i++) {
		m->io += tok[i].io_ms / (b - a), m->mem += tok[i].mem_ms / (b - a);
		m->compute += tok[i].compute_ms / (b - a), m->total += tok[i].total_ms / (b - a);
		m->bytes += (double)tok[i].bytes_read / (b - a), m->reads += (double)tok[i].reads / (b - a);
	}
	if (!cmp)
		m->total = m->io + m->mem, m->compute = NAN;
}

/* conv: place converts the rows (stored and held dtypes differ), which is
 * the memory manager's work the model charges: mem includes it */
static void meas_means(const struct replay_token *tok, int64_t a, int64_t b, int cmp, int conv,
		       struct means *m, double *place)
{
	memset(m, 0, sizeof *m);
	*place = 0;
	for (int64_t i = a; i < b; i++) {
		m->io += tok[i].io_ms / (b - a);
		m->mem += (tok[i].mem_ms + (conv ? tok[i].place_ms : 0)) / (b - a);
		m->compute += tok[i].compute_ms / (b - a), m->total += tok[i].total_ms / (b - a);
		m->bytes += (double)tok[i].bytes_read / (b - a), m->reads += (double)tok[i].reads / (b - a);
		*place += tok[i].place_ms / (b - a);
	}
	if (!cmp)
		m->total = m->io + m->mem, m->compute = NAN;
}

/* A pipelined token's drift correction: its wall time scaled by the timeline
 * of its measured per-layer times (ms: L x {io, place, compute}) with the
 * reads divided by the drift factor f, over the same timeline with the reads
 * as measured; tail: what ran after the last layer (head, copies). */
static double pipelined_corr(const double *lm, int L, int depth, double head, double mem, double f,
			     double fc)
{
	double io[LLM_MAX_LAYERS], ioc[LLM_MAX_LAYERS], cpu[LLM_MAX_LAYERS], cpuc[LLM_MAX_LAYERS];
	for (int l = 0; l < L && l < LLM_MAX_LAYERS; l++) {
		io[l] = lm[3 * l] + lm[3 * l + 1];
		ioc[l] = lm[3 * l] / f + lm[3 * l + 1];
		cpu[l] = lm[3 * l + 2], cpuc[l] = cpu[l] / fc;
	}
	double raw = timeline_token_ns(TIMELINE_PIPELINED, io, cpu, L, depth, head + mem);
	return raw > 0 ? timeline_token_ns(TIMELINE_PIPELINED, ioc, cpuc, L, depth, head / fc + mem) / raw
		       : 1;
}

/* A point's repeats: their means, raw and drift-corrected, and its probe. */
struct reps {
	double io[MAXREP], mem[MAXREP], total[MAXREP], io_c[MAXREP], total_c[MAXREP], cmp[MAXREP];
	double place[MAXREP], cmp_c[MAXREP];
	struct means last;
	struct drift_probe pr;
};

/* The point's matched drift probe (sim/sweep/drift.h): random reads of the
 * point's mean read size at its queue depth, for a prediction that reads
 * `reads` extents of `bytes` in all per token over L layers (the naive
 * strategy: sequential chunk reads at its parallelism). */
static int probe_open(const struct vpoint *pt, const struct wfile *w, const struct device *dev,
		      double bytes, double reads, int L, uint64_t seed, struct drift_probe *pr,
		      struct lif_err *err)
{
	const struct vparams *v = &pt->v;
	const char *file = v->probe_file[0] ? v->probe_file : wfile_path(w);
	int64_t chunk = pt->p.naive_chunk;
	int depth = pt->p.parallelism, naive = pt->p.strategy == SIM_NAIVE;
	if (!naive) {
		depth = (int)fmax(1, fmin(pt->p.parallelism, lround(reads / L)));
		chunk = (int64_t)ceil((reads > 0 ? bytes / reads : 4096) / 4096) * 4096;
	}
	return drift_open(pr, io_engines[v->engine]->name, file, chunk, depth, naive, v->probe_seconds, seed,
			  dev, NULL, err);
}

/* Open the disk probe (and, with compute, the compute probe) for a point
 * and run it once before the first timed token. */
static int probes_start(const struct vpoint *pt, const struct pointin_trace *in, const struct device *dev,
			const struct means *pm, const struct wfile *w, struct io_arena *arena, int cmp,
			uint64_t seed, struct drift_probe *pr, struct lif_err *err)
{
	int rc = probe_open(pt, w, dev, pm->bytes, pm->reads, in->m.layers, seed, pr, err);
	pr->arena = arena;
	if (!rc && cmp) {
		const int qd = llm_head_dim(&in->m) * in->m.heads;
		rc = drift_add_compute(pr, qd, in->m.d_model,
				       compute_stream_bytes_per_s(&dev->compute, LLM_FP32, 4.0 * qd * in->m.d_model),
				       err);
	}
	return rc ? rc : drift_run(pr, err);
}

/* Repeat k's drift-corrected means over tokens [t0, t1): each token's io
 * over the disk drift around it (naive: the repeat's), its compute over the
 * compute drift, and the total (pipelined: through the timeline of its
 * measured per-layer times lm). f0: the repeat's first probe factor. */
static void correct_repeat(const struct vpoint *pt, struct reps *rp, int k, const struct replay_token *tok,
			   const double *lm, int f0, int64_t t0, int64_t t1, int L)
{
	const struct drift_probe *pr = &rp->pr;
	const int naive = pt->p.strategy == SIM_NAIVE, cmp = pt->v.compute && !naive;
	const int piped = cmp && pt->p.overlap == TIMELINE_PIPELINED;
	rp->io_c[k] = rp->total_c[k] = rp->cmp_c[k] = 0;
	for (int64_t i = t0; i < t1; i++) {
		const double f = pr->f[naive ? f0 : f0 + (i - t0)], n = (double)(t1 - t0);
		const double fc = cmp ? pr->fc[f0 + (i - t0)] : 1;
		rp->io_c[k] += tok[i].io_ms / f / n;
		rp->cmp_c[k] += tok[i].compute_ms / fc / n;
		if (piped)
			rp->total_c[k] += tok[i].total_ms / n *
					  pipelined_corr(lm + (size_t)i * L * 3, L, pt->p.pipeline_depth,
							 tok[i].head_ms, tok[i].mem_ms, f, fc);
	}
	if (!cmp)
		rp->cmp_c[k] = NAN;
	if (!piped)
		rp->total_c[k] = rp->io_c[k] + rp->mem[k] + (cmp ? rp->cmp_c[k] : 0);
}

static int measure(const struct vpoint *pt, const struct pointin_trace *in, const struct device *dev,
		   const struct sim_result *r, const struct means *pm, struct reps *rp, uint64_t seed,
		   struct lif_err *err)
{
	const struct vparams *v = &pt->v;
	const int64_t T = in->t->meta.tokens, a = pt->p.warmup_tokens < T ? pt->p.warmup_tokens : 0;
	const int naive = pt->p.strategy == SIM_NAIVE, cmp = v->compute && !naive;
	const int64_t t0 = naive ? 0 : a, t1 = naive ? v->tokens : (a + v->tokens < T ? a + v->tokens : T);
	const int L = in->m.layers;
	int ranks[LLM_MAX_LAYERS];
	for (int l = 0; l < L && l < LLM_MAX_LAYERS; l++)
		ranks[l] = sim_pred_rank(&pt->p, L, l);
	struct sim_inputs si = {0};
	struct drift_probe *pr = &rp->pr;
	struct wfile *w = wfile_open(v->weights, err);
	struct io_engine *io = w ? io_open(io_engines[v->engine]->name, v->weights, pt->p.parallelism, 0,
					   err) : NULL;
	struct replay_token *tok = calloc((size_t)T, sizeof *tok);
	double *lm = calloc((size_t)T * L * 3, sizeof *lm);
	int rc = !w || !io ? err->code : !tok || !lm ? err_set(err, ERR_NOMEM, "out of memory") : 0;
	if (!rc && (t1 - t0) * v->repeats > MAXPROBE)
		rc = err_set(err, ERR_RANGE, "[validate] repeats x tokens: at most %d", MAXPROBE);
	if (!rc && !naive)
		rc = sim_inputs_get(in->cache, &pt->p, r->pin_frac, 1, &si, err);
	struct io_arena *arena = NULL;
	if (!rc && v->arena > 0 && !(arena = io_arena_new(v->arena, err)))
		rc = err->code;
	if (!rc)
		rc = probes_start(pt, in, dev, pm, w, arena, cmp, seed, pr, err);
	for (int k = 0; !rc && k < v->repeats; k++) {
		/* verification runs on the pipelined reader inside the timed token:
		 * only the serial replay verifies (the same reads as its twin) */
		const int piped = cmp && pt->p.overlap == TIMELINE_PIPELINED;
		struct replay_opts o = {.first_token = a, .tokens = v->tokens,
					.verify = v->verify && !k && !piped,
					.after_token = drift_after_token, .after_ctx = pr, .arena = arena,
					.compute = cmp, .overlap = cmp ? pt->p.overlap : TIMELINE_NONE,
					.pipeline_depth = pt->p.pipeline_depth,
					.context_tokens = pt->p.context_tokens, .pred_rank = ranks,
					.dense_bytes = v->dense_bytes, .layer_ms = lm};
		const int f0 = pr->nf;
		rc = naive ? replay_naive(w, io, pt->p.naive_chunk, v->tokens, o.verify, arena, tok, err)
			   : replay_sparse(&si, in->t, w, io, &o, tok, err);
		if (!rc && naive)
			rc = drift_run(pr, err);
		if (rc)
			break;
		meas_means(tok, t0, t1, cmp, !naive && si.stored.dtype != si.dram.dtype, &rp->last,
			   &rp->place[k]);
		rp->io[k] = rp->last.io, rp->mem[k] = rp->last.mem, rp->total[k] = rp->last.total;
		rp->cmp[k] = rp->last.compute;
		correct_repeat(pt, rp, k, tok, lm, f0, t0, t1, L);
	}
	sim_inputs_release(&si);
	io_arena_free(arena);
	drift_close(pr);
	io_close(io);
	wfile_close(w);
	free(tok), free(lm);
	return rc;
}

static int put(struct sweep_row *row, const char *name, double v, int *rc)
{
	return *rc |= sweep_row_set_num(row, name, v);
}

/* The row's columns: prediction pm against the n repeats' medians rp, with the
 * drift probes' correction. */
static int put_results(struct sweep_row *row, const char *reg, const char *mode, int64_t timed,
		       double mean_read, const struct means *pm, const struct reps *rp, int n)
{
	const struct drift_probe *pr = &rp->pr;
	double io = drift_median(rp->io, n), mem = drift_median(rp->mem, n), tot = drift_median(rp->total, n);
	double io_c = drift_median(rp->io_c, n), tot_c = drift_median(rp->total_c, n), cmp = drift_median(rp->cmp, n);
	double cmp_c = drift_median(rp->cmp_c, n);
	int rc = sweep_row_set_str(row, "regime", reg);
	rc |= sweep_row_set_str(row, "overlap_mode", mode);
	put(row, "tokens_timed", (double)timed, &rc);
	put(row, "bytes_per_token_pred", pm->bytes, &rc);
	put(row, "bytes_per_token_meas", rp->last.bytes, &rc);
	put(row, "reads_per_token", pm->reads, &rc);
	put(row, "mean_read_bytes", mean_read, &rc);
	put(row, "io_ms_pred", pm->io, &rc);
	put(row, "io_ms_meas", io, &rc);
	put(row, "io_rel_err", pm->io / io - 1, &rc);
	put(row, "mem_ms_pred", pm->mem, &rc);
	put(row, "mem_ms_meas", mem, &rc);
	/* no predicted copies: no error to speak of (the timer reads ~1 us) */
	put(row, "mem_rel_err", pm->mem > 0 && mem > 0 ? pm->mem / mem - 1 : NAN, &rc);
	put(row, "total_ms_pred", pm->total, &rc);
	put(row, "total_ms_meas", tot, &rc);
	put(row, "total_rel_err", pm->total / tot - 1, &rc);
	/* compute not replayed (naive, compute = false): NaN, out of the summary */
	put(row, "compute_ms_pred", pm->compute, &rc);
	put(row, "compute_ms_meas", cmp, &rc);
	put(row, "compute_rel_err", pm->compute / cmp - 1, &rc);
	put(row, "compute_ms_meas_corr", cmp_c, &rc);
	put(row, "compute_rel_err_corr", pm->compute / cmp_c - 1, &rc);
	put(row, "probe_chunk_bytes", (double)pr->chunk, &rc);
	put(row, "probe_depth", pr->depth, &rc);
	put(row, "probe_mib_per_s", drift_median(pr->mib, pr->nmib), &rc);
	put(row, "probe_ref_mib_per_s", pr->ref / 1048576.0, &rc);
	put(row, "drift", drift_median(pr->f, pr->nf), &rc);
	put(row, "io_ms_meas_corr", io_c, &rc);
	put(row, "io_rel_err_corr", pm->io / io_c - 1, &rc);
	put(row, "total_ms_meas_corr", tot_c, &rc);
	put(row, "total_rel_err_corr", pm->total / tot_c - 1, &rc);
	put(row, "io_cv", drift_cv(rp->io, n), &rc);
	put(row, "mem_cv", drift_cv(rp->mem, n), &rc);
	put(row, "total_cv", drift_cv(rp->total, n), &rc);
	put(row, "compute_cv", isfinite(cmp) ? drift_cv(rp->cmp, n) : NAN, &rc);
	put(row, "drift_cv", drift_cv(pr->f, pr->nf), &rc);
	/* the compute probe (NaN without compute) */
	put(row, "cprobe_bytes_per_s", pr->ncb ? drift_median(pr->cbps, pr->ncb) : NAN, &rc);
	put(row, "cprobe_ref_bytes_per_s", pr->ncb ? pr->cref : NAN, &rc);
	put(row, "drift_compute", pr->nfc ? drift_median(pr->fc, pr->nfc) : NAN, &rc);
	put(row, "place_ms_meas", drift_median(rp->place, n), &rc);
	return rc;
}

static int v_point(void *ctx, const struct conf_doc *point, struct sweep_row *row,
		   struct lif_err *err)
{
	struct vctx *c = ctx;
	struct vpoint pt;
	struct sim_result r;
	int rc = read_point(point, &pt, err);
	if (!rc && pt.v.repeats > MAXREP)
		rc = err_set(err, ERR_RANGE, "[validate] repeats: at most %d", MAXREP);
	const struct pointin_spec spec = {pt.v.model, pt.v.trace, NULL, pt.v.scale, TRACE_LOAD_MAGNITUDES, 1, 0};
	const struct pointin_trace *in = rc ? NULL : pointin_trace(c->in, &spec, err);
	const struct device *dev = in ? pointin_device(c->in, pt.v.device, err) : NULL;
	if (!rc && (!in || !dev))
		rc = err->code ? err->code : ERR_IO;
	const int64_t T = in ? in->t->meta.tokens : 0;
	struct sim_token *st = in ? calloc((size_t)T, sizeof *st) : NULL;
	if (!rc && !st)
		rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc)
		rc = sim_run(in->cache, dev, &pt.p, 1, &r, st, err);
	if (rc) {
		free(st);
		return rc;
	}
	/* the prediction over the timed tokens, and its regime */
	const int naive = pt.p.strategy == SIM_NAIVE;
	const int64_t a = naive ? 0 : (pt.p.warmup_tokens < T ? pt.p.warmup_tokens : 0);
	const int64_t b = naive ? (pt.v.tokens < T ? pt.v.tokens : T) : (a + pt.v.tokens < T ? a + pt.v.tokens : T);
	struct means pm;
	pred_means(st, a, b, pt.v.compute && !naive, &pm);
	free(st);
	const int n = pt.v.repeats, L = in->m.layers;
	double mean_read = pm.reads > 0 ? pm.bytes / pm.reads : 0;
	const char *reg = drift_regime(dev, mean_read, fmin(pt.p.parallelism, fmax(1, pm.reads / L)));
	struct reps *rp = calloc(1, sizeof *rp);
	if (!rp)
		return err_set(err, ERR_NOMEM, "out of memory");
	pthread_mutex_lock(&c->measure);
	rc = measure(&pt, in, dev, &r, &pm, rp, sweep_row_seed(row), err);
	pthread_mutex_unlock(&c->measure);
	if (rc) {
		free(rp);
		return rc;
	}
	const char *mode = pt.v.compute && !naive && pt.p.overlap == TIMELINE_PIPELINED ? "pipelined"
										      : "none";
	rc = put_results(row, reg, mode, b - a, mean_read, &pm, rp, n);
	free(rp);
	if (rc)
		return err_set(err, ERR_INVAL, "%s", sweep_row_error(row) ? sweep_row_error(row) : "bad column");
	return 0;
}

const struct sweep_kind sweep_kind_validate = {
	.name = "validate",
	.summary = "predict and replay with real reads; error of the prediction",
	.ctx_new = v_ctx_new,
	.ctx_free = v_ctx_free,
	.check = v_check,
	.run = v_point,
};

/* ---- summary ---- */

#define NMETRIC 7

static int write_summary(const char *path, double *err_v[NMETRIC], double *cv_v[NMETRIC],
			 const char *const *reg, const char *const *mode, int rows, struct lif_err *err)
{
	static const char *metric[NMETRIC] = {"io_ms", "io_ms_corr", "mem_ms", "compute_ms",
					      "compute_ms_corr", "total_ms", "total_ms_corr"};
	/* by regime, all, then by overlap mode (the replay's: none or pipelined) */
	static const char *regimes[5] = {"latency", "bandwidth", "all", "none", "pipelined"};
	struct atomic_file af;
	double *a = malloc((size_t)(rows ? rows : 1) * sizeof *a), *c = malloc((size_t)(rows ? rows : 1) * sizeof *c);
	if (!a || !c) {
		free(a), free(c);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	if (atomic_open(&af, path, err)) {
		free(a), free(c);
		return err->code;
	}
	fprintf(af.fp, "metric,regime,n,median_abs_err,p90_abs_err,max_abs_err,bias,cv_meas\n");
	for (int m = 0; m < NMETRIC; m++)
		for (int g = 0; g < 5; g++) {
			int n = 0;
			double bias = 0;
			for (int i = 0; i < rows; i++)
				if ((g == 2 || !strcmp(g < 2 ? reg[i] : mode[i], regimes[g])) &&
				    isfinite(err_v[m][i])) {
					a[n] = fabs(err_v[m][i]), c[n] = cv_v[m][i];
					bias += err_v[m][i], n++;
				}
			if (!n)
				continue;
			qsort(a, (size_t)n, sizeof *a, util_cmp_double);
			qsort(c, (size_t)n, sizeof *c, util_cmp_double);
			fprintf(af.fp, "%s,%s,%d,%.4f,%.4f,%.4f,%.4f,%.4f\n", metric[m], regimes[g], n,
				n % 2 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]),
				a[(int)ceil(0.9 * n) - 1], a[n - 1], bias / n,
				n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]));
		}
	free(a), free(c);
	return atomic_commit(&af, err);
}

/* Copy the results to validation.csv, record by record. */
static int write_validation(const char *path, const struct csv *c, struct lif_err *err)
{
	struct atomic_file af;
	if (atomic_open(&af, path, err))
		return err->code;
	for (size_t k = 0; k < c->n; k++) {
		for (size_t j = 0; j < c->recs[k].n; j++)
			csv_write_field(af.fp, c->recs[k].f[j], j == 0);
		fputc('\n', af.fp);
	}
	return atomic_commit(&af, err);
}

static const char *errcol[NMETRIC] = {"io_rel_err", "io_rel_err_corr", "mem_rel_err",
				      "compute_rel_err", "compute_rel_err_corr", "total_rel_err",
				      "total_rel_err_corr"};
static const char *cvcol[NMETRIC] = {"io_cv",	   "io_cv",    "mem_cv",  "compute_cv",
				     "compute_cv", "total_cv", "total_cv"};

/* Each metric's error and cv columns (an error when one is missing). */
static int summary_columns(const struct csv *c, const char *path, long ie[NMETRIC],
			   long icv[NMETRIC], struct lif_err *err)
{
	for (int m = 0; m < NMETRIC; m++) {
		ie[m] = csv_col(c, errcol[m]), icv[m] = csv_col(c, cvcol[m]);
		if (ie[m] < 0 || icv[m] < 0)
			return err_set(err, ERR_FORMAT, "%s: no column %s: not a validate sweep", path,
				       ie[m] < 0 ? errcol[m] : cvcol[m]);
	}
	return 0;
}

int replay_validate_summary(const char *dir, struct lif_err *err)
{
	char path[4200];
	struct csv c;
	snprintf(path, sizeof path, "%s/%s", dir, SWEEP_RESULTS);
	int rc = csv_read(path, &c, err), rows = (int)c.n - 1;
	long ie[NMETRIC], icv[NMETRIC], ireg = csv_col(&c, "regime"), imode = csv_col(&c, "overlap_mode");
	double *ev[NMETRIC] = {0}, *cvv[NMETRIC] = {0};
	const char **reg = rc ? NULL : malloc((c.n + 1) * sizeof *reg);
	const char **mode = rc ? NULL : malloc((c.n + 1) * sizeof *mode);
	if (!rc)
		rc = summary_columns(&c, path, ie, icv, err);
	for (int m = 0; !rc && m < NMETRIC; m++)
		if (!(ev[m] = malloc((c.n + 1) * sizeof **ev)) || !(cvv[m] = malloc((c.n + 1) * sizeof **cvv)))
			rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && (!reg || !mode))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (int i = 0; !rc && i < rows; i++) {
		char *const *f = c.recs[i + 1].f;
		for (int m = 0; m < NMETRIC; m++)
			ev[m][i] = strtod(f[ie[m]], NULL), cvv[m][i] = strtod(f[icv[m]], NULL);
		reg[i] = ireg >= 0 ? f[ireg] : "unknown";
		mode[i] = imode >= 0 ? f[imode] : "unknown";
	}
	if (!rc)
		rc = write_validation((snprintf(path, sizeof path, "%s/validation.csv", dir), path), &c, err);
	if (!rc)
		rc = write_summary((snprintf(path, sizeof path, "%s/summary.csv", dir), path), ev, cvv, reg,
				   mode, rows, err);
	for (int m = 0; m < NMETRIC; m++)
		free(ev[m]), free(cvv[m]);
	free(reg), free(mode);
	csv_free(&c);
	return rc;
}
