/*
 * kind_simulate: the `simulate` point kind of `lifsim sweep` (sim/sweep/sweep.h):
 * one point = one sim_run over a trace, a model and a device.
 *
 *   [experiment]  model = PATH (a models/llms file), device = PATH
 *                 (a models/devices file), trace = PATH.h5 or `synth`
 *                 (generate from [synth] and the model, in memory)
 *   [synth]       generator parameters (traces/synth.h), when trace = synth
 *   [sim]         the simulator's knobs (sim/core/sim.h)
 *   [output]      per_token = true: DIR/per_token/POINT_ID.h5 (sim/sweep/pertoken.h)
 * A sweep with a GPU-backend device in any point (models/dram.h) has five
 * more result columns, in every row: h2d_bytes_per_token, vram_bytes,
 * vram_kv_bytes, vram_stage_bytes, vram_capacity_bytes (sim/core/sim.h).
 *   [reference]   published numbers to print beside lifsim's: a key named
 *                 like a result column (io_ms = 2196) adds the columns
 *                 ref_io_ms and io_ms_vs_ref (lifsim / reference - 1);
 *                 the columns are the union over every point of the sweep
 *                 (in order of first appearance), and a point without a key
 *                 leaves its two cells empty, so rows with and without
 *                 references mix (and shards of one sweep agree)
 * Paths go through the search path (sim/base/path.h, pointin_resolve): first
 * relative to the file that names them, then LIFSIM_PATH and the data
 * directory; model and device also take short names (opt-6.7b, m1max).
 *
 * Traces, models and devices are loaded once per distinct value and shared
 * by the points (lazily, under a lock; points only read them).
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "sim/sweep/kinds.h"
#include "sim/sweep/pointin.h"
#include "sim/sweep/pertoken.h"
#include "sim/core/sim.h"
#include "traces/predictor/predictor.h"
#include "traces/synth.h"

#define REF_MAX 32

struct exp_params {
	int per_token;
	char kind[32];
	char model[4096];
	char device[4096];
	char trace[4096];
};

#define OE(f) CONF_OFF(struct exp_params, f)
static const struct conf_opt exp_opts[] = {
	{.section = "output", .name = "per_token", .type = CONF_BOOL, .offset = OE(per_token),
	 .def = "false", CONF_NO_BOUNDS,
	 .help = "write DIR/per_token/POINT_ID.h5 with every token's costs (sim/sweep/pertoken.h)"},
	{.section = "experiment", .name = "kind", .type = CONF_STR, .offset = OE(kind), .size = 32,
	 .def = "simulate", CONF_NO_BOUNDS, .help = "what a point computes"},
	{.section = "experiment", .name = "model", .type = CONF_STR, .offset = OE(model),
	 .size = 4096, CONF_NO_BOUNDS, .help = "model description (models/llms/NAME.ini)"},
	{.section = "experiment", .name = "device", .type = CONF_STR, .offset = OE(device),
	 .size = 4096, CONF_NO_BOUNDS, .help = "device profile (models/devices/NAME.ini)"},
	{.section = "experiment", .name = "trace", .type = CONF_STR, .offset = OE(trace),
	 .size = 4096, .def = "synth", CONF_NO_BOUNDS,
	 .help = "trace file, or synth to generate one from [synth]"},
	{0},
};

/* A point's parameters, all sections. */
struct point {
	struct exp_params e;
	struct synth_params s;
	struct sim_params p;
	int nref;
	char ref_key[REF_MAX][64];
	double ref_val[REF_MAX];
};

struct pred_file {
	char path[4096];
	struct predictor *p;
};

#define PREDS_MAX 64

/* Shared by the points: traces, models and devices (sim/sweep/pointin.h), and the
 * trained predictor files. */
struct sim_ctx {
	struct pointin *in;
	int gpu;                    /* some point's device is a GPU backend: the h2d and
				     * vram_* columns are added to every point */
	int nref;                   /* the union of the points' [reference] keys */
	char ref_key[REF_MAX][64];
	pthread_mutex_t lock;
	struct pred_file *preds[PREDS_MAX];
	int npreds;
	struct hint_set *hints;     /* the points' [sim] parameters by model and trace */
	int nhints;
};

/* [reference] KEY = number: published values shown beside the results. */
static int read_references(const struct conf_doc *doc, struct point *pt, struct lif_err *err)
{
	for (size_t i = 0; i < doc->n; i++) {
		const struct conf_entry *e = &doc->entries[i];
		if (strcmp(e->section, "reference"))
			continue;
		int k = 0; /* a later value of the same key replaces the earlier one */
		while (k < pt->nref && strcmp(pt->ref_key[k], e->key))
			k++;
		if (k == REF_MAX || strlen(e->key) >= 64 || conf_parse_double(e->value, &pt->ref_val[k]))
			return err_set(err, ERR_INVAL, "%s:%d: [reference] %s: '%s' is not a number "
				       "(or too many references)", e->file, e->line, e->key, e->value);
		if (k == pt->nref)
			snprintf(pt->ref_key[pt->nref++], 64, "%s", e->key);
	}
	return 0;
}

static int read_point(const struct conf_doc *doc, struct point *pt, struct lif_err *err)
{
	memset(pt, 0, sizeof *pt);
	synth_defaults(&pt->s);
	sim_default_params(&pt->p);
	const struct pointin_table tables[] = {
		{"synth", synth_opts, &pt->s}, {"sim", sim_opts, &pt->p}, {NULL, exp_opts, &pt->e}};
	const struct pointin_path paths[] = {
		{pt->p.predictor_file, sizeof pt->p.predictor_file, "sim", "predictor_file", PATH_FILE},
		{pt->e.model, sizeof pt->e.model, "experiment", "model", PATH_MODEL},
		{pt->e.device, sizeof pt->e.device, "experiment", "device", PATH_DEVICE},
		{pt->e.trace, sizeof pt->e.trace, "experiment", "trace", PATH_FILE},
		{pt->p.draft_model, sizeof pt->p.draft_model, "sim", "draft_model", PATH_MODEL}};
	int rc = conf_defaults(exp_opts, &pt->e, err);
	if (!rc)
		rc = pointin_apply(doc, tables, 3, "reference", err);
	if (!rc)
		rc = read_references(doc, pt, err);
	if (!rc && pred_by_kind(pt->p.predictor)->trained && !pt->p.predictor_file[0])
		rc = err_set(err, ERR_INVAL, "[sim] predictor = %s needs predictor_file",
			     pred_by_kind(pt->p.predictor)->name);
	if (!rc && pt->p.spec_lambda > 0 && !pt->p.draft_model[0])
		rc = err_set(err, ERR_INVAL, "[sim] spec_lambda > 0 needs draft_model");
	return rc ? rc : pointin_resolve_all(doc, paths, 5, err);
}

/* The [sim] parameters of the points over one model and trace (what
 * sim_cache_hint gets, so the cache builds their decisions together). */
struct hint_set {
	char model[4096], trace[4096];
	struct synth_params s;
	struct sim_params *p;
	size_t n, cap;
};

static int hint_same(const struct hint_set *h, const struct point *pt)
{
	return !strcmp(h->model, pt->e.model) && !strcmp(h->trace, pt->e.trace) &&
	       (strcmp(pt->e.trace, "synth") || !memcmp(&h->s, &pt->s, sizeof h->s));
}

/* Every valid point's parameters by model and trace (an invalid point is
 * left out here; sim_check reports it), and c->gpu: 1 when a point names a
 * device with a GPU backend (CPU-only sweeps keep their columns as they were;
 * a device that does not load is reported by its point's run). */
static int hints_collect(struct sim_ctx *c, const struct sweep *sw, struct lif_err *err)
{
	struct point *pt = malloc(sizeof *pt);
	int rc = pt ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	for (size_t i = 0; sw && !rc && i < sweep_points(sw); i++) {
		struct conf_doc *doc = NULL;
		struct lif_err e = {0};
		if (sweep_point_doc(sw, i, &doc, &e) || read_point(doc, pt, &e)) {
			conf_doc_free(doc);
			continue;
		}
		conf_doc_free(doc);
		if (!c->gpu) {
			const struct device *d = pointin_device(c->in, pt->e.device, &e);
			c->gpu = d && dram_is_gpu(&d->dram);
		}
		int k = 0;
		while (k < c->nhints && !hint_same(&c->hints[k], pt))
			k++;
		if (k == c->nhints) {
			struct hint_set *h = realloc(c->hints, (k + 1) * sizeof *h);
			if (!h) {
				rc = err_set(err, ERR_NOMEM, "out of memory");
				break;
			}
			c->hints = h, c->nhints++;
			memset(&h[k], 0, sizeof h[k]);
			snprintf(h[k].model, sizeof h[k].model, "%s", pt->e.model);
			snprintf(h[k].trace, sizeof h[k].trace, "%s", pt->e.trace);
			h[k].s = pt->s;
		}
		struct hint_set *h = &c->hints[k];
		if (h->n == h->cap) {
			size_t cap = h->cap ? 2 * h->cap : 64;
			struct sim_params *q = realloc(h->p, cap * sizeof *q);
			if (!q) {
				rc = err_set(err, ERR_NOMEM, "out of memory");
				break;
			}
			h->p = q, h->cap = cap;
		}
		h->p[h->n++] = pt->p;
	}
	free(pt);
	return rc;
}

/* Add the [reference] keys of one point's document to the union in c. */
static int ref_union_add(struct sim_ctx *c, const struct conf_doc *doc, struct lif_err *err)
{
	for (size_t i = 0; i < doc->n; i++) {
		const struct conf_entry *e = &doc->entries[i];
		if (strcmp(e->section, "reference"))
			continue;
		int k = 0;
		while (k < c->nref && strcmp(c->ref_key[k], e->key))
			k++;
		if (k < c->nref)
			continue;
		if (c->nref == REF_MAX || strlen(e->key) >= sizeof c->ref_key[0])
			return err_set(err, ERR_INVAL, "%s:%d: [reference] %s: more than %d reference "
				       "keys in the sweep, or a key longer than 63 characters",
				       e->file, e->line, e->key, REF_MAX);
		snprintf(c->ref_key[c->nref++], sizeof c->ref_key[0], "%s", e->key);
	}
	return 0;
}

/* The union of every point's [reference] keys: each point sets the same
 * columns, with empty cells where it has no reference. */
static int ref_union(struct sim_ctx *c, const struct sweep *sw, struct lif_err *err)
{
	int rc = 0;
	for (size_t p = 0; sw && !rc && p < sweep_points(sw); p++) {
		struct conf_doc *doc = NULL;
		rc = sweep_point_doc(sw, p, &doc, err);
		if (!rc)
			rc = ref_union_add(c, doc, err);
		conf_doc_free(doc);
	}
	return rc;
}

static void sim_ctx_free(void *ctx);

static int sim_ctx_new(const struct sweep *sw, void **ctx, struct lif_err *err)
{
	struct sim_ctx *c = calloc(1, sizeof *c);
	if (!c || !(c->in = pointin_new(err))) {
		free(c);
		return err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&c->lock, NULL);
	/* a point's builds (sim_run's threads) nest in the sweep's threads */
	if (omp_get_max_active_levels() < 2)
		omp_set_max_active_levels(2);
	if (ref_union(c, sw, err) || hints_collect(c, sw, err)) {
		sim_ctx_free(c);
		return err->code;
	}
	*ctx = c;
	return 0;
}

static void sim_ctx_free(void *ctx)
{
	struct sim_ctx *c = ctx;
	if (!c)
		return;
	pointin_free(c->in);
	for (int i = 0; i < c->nhints; i++)
		free(c->hints[i].p);
	free(c->hints);
	for (int i = 0; i < c->npreds; i++) {
		predictor_free(c->preds[i]->p);
		free(c->preds[i]);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The trained predictors of predictor_file, loaded once and registered with
 * the input's simulator cache. */
static int use_predictor(struct sim_ctx *c, const struct pointin_trace *in, const char *path,
			 struct lif_err *err)
{
	struct pred_file *found = NULL;
	int rc = 0;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->npreds && !found; i++)
		if (!strcmp(c->preds[i]->path, path))
			found = c->preds[i];
	if (!found && c->npreds == PREDS_MAX)
		rc = err_set(err, ERR_RANGE, "more than %d predictor files in one sweep", PREDS_MAX);
	else if (!found) {
		found = calloc(1, sizeof *found);
		if (found && (found->p = predictor_load(path, err))) {
			snprintf(found->path, sizeof found->path, "%s", path);
			c->preds[c->npreds++] = found;
		} else {
			free(found);
			found = NULL;
			rc = err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rc ? rc : sim_cache_add_predictor(in->cache, path, found->p, err);
}

static int sim_check(void *ctx, const struct conf_doc *point, struct conf_doc *resolved,
		     struct lif_err *err)
{
	struct point pt;
	int rc = read_point(point, &pt, err);
	const char *paths[5] = {pt.e.model, pt.e.device, pt.e.trace, pt.p.predictor_file,
				pt.p.draft_model};
	const char *names[5] = {"[experiment] model", "[experiment] device", "[experiment] trace",
				"[sim] predictor_file", "[sim] draft_model"};
	for (int i = 0; !rc && i < 5; i++)
		if (paths[i][0] && strcmp(paths[i], "synth") && access(paths[i], R_OK))
			rc = err_set(err, ERR_IO, "%s: %s: %s", names[i], paths[i], strerror(errno));
	if (!rc)
		rc = sweep_resolved_add_opts(resolved, exp_opts, &pt.e);
	if (!rc && !strcmp(pt.e.trace, "synth"))
		rc = sweep_resolved_add_opts(resolved, synth_opts, &pt.s);
	if (!rc)
		rc = sweep_resolved_add_opts(resolved, sim_opts, &pt.p);
	return rc;
}

/* Result columns: the sim_result, then the reference comparisons. */
static int put_result(struct sweep_row *row, const struct sim_result *r, const struct point *pt,
		      const struct sim_ctx *c)
{
	const struct { const char *name; double v; } cols[] = {
		{"tokens", (double)r->tokens},
		{"bytes_read_per_token", r->bytes_read_per_token},
		{"useful_bytes_per_token", r->useful_bytes_per_token},
		{"reads_per_token", r->reads_per_token},
		{"mean_read_bytes", r->mean_read_bytes},
		{"io_ms", r->io_ms},
		{"mem_ms", r->mem_ms},
		{"compute_ms", r->compute_ms},
		{"total_ms", r->total_ms},
		{"total_ms_p50", r->total_ms_p50},
		{"total_ms_p99", r->total_ms_p99},
		{"load_frac_per_token", r->load_frac_per_token},
		{"predicted_frac", r->predicted_frac},
		{"window_frac", r->window_frac},
		{"hybrid_frac", r->hybrid_frac},
		{"recall", r->recall},
		{"fp_rate", r->fp_rate},
		{"mem_bytes_copied_per_token", r->mem_bytes_copied_per_token},
		{"dram_bytes", (double)r->dram_bytes},
		{"dram_embed_bytes", (double)r->dram_embed_bytes},
		{"dram_attn_bytes", (double)r->dram_attn_bytes},
		{"dram_predictor_bytes", (double)r->dram_predictor_bytes},
		{"dram_pinned_bytes", (double)r->dram_pinned_bytes},
		{"dram_window_bytes", (double)r->dram_window_bytes},
		{"dram_budget_bytes", (double)r->dram_budget_bytes},
		/* only when the sweep has a GPU point (c->gpu): */
		{"h2d_bytes_per_token", r->h2d_bytes_per_token},
		{"vram_bytes", (double)r->vram_bytes},
		{"vram_kv_bytes", (double)r->vram_kv_bytes},
		{"vram_stage_bytes", (double)r->vram_stage_bytes},
		{"vram_capacity_bytes", (double)r->vram_capacity_bytes},
	};
	const size_t ncols = sizeof cols / sizeof cols[0] - (c->gpu ? 0 : 5);
	int rc = 0;
	for (size_t i = 0; i < ncols; i++)
		rc |= sweep_row_set_num(row, cols[i].name, cols[i].v);
	for (int u = 0; u < c->nref; u++) {
		char name[96], vs[96];
		double mine = NAN;
		int k = 0;
		while (k < pt->nref && strcmp(pt->ref_key[k], c->ref_key[u]))
			k++;
		for (size_t i = 0; i < ncols; i++)
			if (!strcmp(cols[i].name, c->ref_key[u]))
				mine = cols[i].v;
		snprintf(name, sizeof name, "ref_%s", c->ref_key[u]);
		snprintf(vs, sizeof vs, "%s_vs_ref", c->ref_key[u]);
		if (k == pt->nref) { /* this point has no such reference */
			rc |= sweep_row_set_str(row, name, "");
			rc |= sweep_row_set_str(row, vs, "");
			continue;
		}
		rc |= sweep_row_set_num(row, name, pt->ref_val[k]);
		rc |= sweep_row_set_num(row, vs, mine / pt->ref_val[k] - 1);
	}
	return rc;
}

static int sim_point(void *ctx, const struct conf_doc *point, struct sweep_row *row,
		     struct lif_err *err)
{
	struct sim_ctx *c = ctx;
	struct point pt;
	struct sim_result r;
	int rc = read_point(point, &pt, err);
	/* the sweep's threads (this point runs in their team) load the trace and
	 * build what points share; the others wait for what they need meanwhile */
	const int threads = omp_get_num_threads();
	const struct pointin_spec spec = {
		pt.e.model, pt.e.trace, &pt.s, 0,
		TRACE_LOAD_MAGNITUDES | (!rc && pred_by_kind(pt.p.predictor)->trained ? TRACE_LOAD_INPUTS : 0),
		threads, 1};
	const struct pointin_trace *in = rc ? NULL : pointin_trace(c->in, &spec, err);
	const struct device *dev = in ? pointin_device(c->in, pt.e.device, err) : NULL;
	if (!rc && (!in || !dev))
		rc = err->code ? err->code : ERR_IO;
	if (!rc && pred_by_kind(pt.p.predictor)->trained)
		rc = use_predictor(c, in, pt.p.predictor_file, err);
	for (int k = 0; !rc && k < c->nhints; k++)
		if (hint_same(&c->hints[k], &pt))
			rc = sim_cache_hint(in->cache, c->hints[k].p, c->hints[k].n, err);
	if (!rc && pt.p.spec_lambda > 0)
		rc = llm_load(pt.p.draft_model, &pt.p.draft, err);
	struct sim_token *tok = NULL;
	if (!rc && pt.e.per_token && sweep_row_dir(row) &&
	    !(tok = malloc(in->t->meta.tokens * sizeof *tok)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc)
		rc = sim_run(in->cache, dev, &pt.p, threads, &r, tok, err);
	if (!rc && tok) {
		char dir[4200], path[4300], id[32];
		snprintf(dir, sizeof dir, "%s/per_token", sweep_row_dir(row));
		snprintf(id, sizeof id, "%016llx", (unsigned long long)sweep_row_id(row));
		snprintf(path, sizeof path, "%s/%s.h5", dir, id);
		if (mkdir(dir, 0777) && errno != EEXIST)
			rc = err_set(err, ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
		else
			rc = pertoken_write(path, id, tok, in->t->meta.tokens, err);
	}
	free(tok);
	if (!rc && put_result(row, &r, &pt, c))
		rc = err_set(err, ERR_INVAL, "%s", sweep_row_error(row) ? sweep_row_error(row) : "bad column");
	return rc;
}

const struct sweep_kind sweep_kind_simulate = {
	.name = "simulate",
	.summary = "simulate a trace through the flash / DRAM / compute cost model",
	.ctx_new = sim_ctx_new,
	.ctx_free = sim_ctx_free,
	.check = sim_check,
	.run = sim_point,
};
