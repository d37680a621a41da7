/* lifsim replay (one configuration, per-token CSV) and lifsim validate (a
 * validate sweep plus its summary); sim/real/replay.h, sim/sweep/kind_validate.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sweep/kinds.h"
#include "sim/base/atomic.h"
#include "sim/real/moereplay.h"
#include "sim/real/replay.h"
#include "sim/cli/verbs.h"

#include <gsl/gsl_rng.h>

static void replay_usage(FILE *f)
{
	char choices[128];
	fprintf(f,
		"usage: lifsim replay MODEL.ini --trace T.h5 --weights W [--engine E]\n"
		"                     [--scale F] [--tokens N] [--device PROFILE.ini] [--compute]\n"
		"                     [--no-verify] [--check-rows] [--arena BYTES] [--iolog FILE]\n"
		"                     [--sim KEY=VALUE ...]\n"
		"       lifsim replay MOE.ini --router-trace R.h5 --weights W --device PROFILE.ini\n"
		"                     [--moe KEY=VALUE ...] [--engine E] [--scale F] [--tokens N]\n"
		"                     [--no-verify] [--arena BYTES]\n\n"
		"Replay trace T's decisions (the simulator's: [sim] keys as --sim KEY=VALUE, e.g.\n"
		"--sim window=5 --sim parallelism=16 --sim layout=hot) with real reads of weight\n"
		"file W (lifsim layout, same layout, trace and --scale) into the paper's\n"
		"preallocated per-layer matrices, and print per token as CSV on stdout:\n"
		"  token,io_ms,place_ms,mem_ms,compute_ms,total_ms,bytes_read,reads,neurons_loaded,\n"
		"  rows_copied[,io_ms_pred,mem_ms_pred,bytes_read_pred,compute_ms_pred,total_ms_pred]\n"
		"  (the last five with --device)\n"
		"--sim strategy=naive reads W's whole FFN per token in naive_chunk reads.\n"
		"--sim overlap=pipelined reads layer l+1 on a reader thread during layer l's\n"
		"compute, at most pipeline_depth layers ahead (sim/core/timeline.h, for real).\n\n"
		"options:\n"
		"  --engine E      %s (default io_uring)\n"
		"  --tokens N      replay only the first N tokens (default: all)\n"
		"  --device P      also print the simulator's per-token prediction on profile P\n"
		"  --compute       run the token's compute for real (sim/real/rcompute.h: the\n"
		"                  operations the compute model counts, fp32 OpenBLAS sgemv;\n"
		"                  needs --sim compute_dtype=fp32)\n"
		"  --dense-bytes B with --compute: dense weights held before layers share\n"
		"                  them (default 1GiB; see lifsim.1)\n"
		"  --no-verify     do not check the checksums of what was read\n"
		"  --check-rows    after each token check every matrix row's bytes (slow)\n"
		"  --arena BYTES   reads land in a ring of this much DRAM, slice after slice\n"
		"                  (default 1GiB, as calibrate; 0: one reused staging buffer)\n"
		"  --iolog FILE    also write every read as a fio iolog v2 (the sparse strategy)\n"
		"                  (fio --read_iolog=FILE --replay_no_stall=1 --direct=1 issues\n"
		"                  the same reads; written atomically)\n"
		"--engine, --scale, --tokens, --arena and --dense-bytes take the bounds of the\n"
		"[validate] keys of the same names (lifsim.1).\n\n"
		"A mixture-of-experts model replays a router trace instead (sim/real/moereplay.h):\n"
		"the simulator's plan for the point ([moe] keys as --moe KEY=VALUE, e.g. --moe\n"
		"expert_cache=8 --moe cache_policy=lfu --moe expert_layout=cosel; modeled prefetch\n"
		"draws from seed 1) read for real from expert file W (lifsim layout of the model,\n"
		"same expert_layout, router trace and --scale), per token as CSV on stdout:\n"
		"  token,io_ms,mem_ms,total_ms,bytes_read,reads,io_ms_pred,mem_ms_pred,\n"
		"  bytes_read_pred,reads_pred,total_ms_pred\n"
		"  --router-trace R  the router trace (lifsim synth or record of the model)\n"
		"  --moe KEY=VALUE   a [moe] key of kind = moe (lifsim.1); expert_cache or\n"
		"                    dram_budget is required\n",
		conf_names_join(io_engine_choice, choices, sizeof choices));
}

struct rargs {
	const char *model, *trace, *weights, *device, *iolog, *router;
	char engine[16];
	double scale;
	int64_t tokens, arena, dense_bytes;
	int compute, verify, check_rows;
};

/* The sparse replay, writing its reads as a fio iolog when --iolog asks. */
static int replay_sparse_logged(const struct rargs *a, const struct sim_inputs *in,
				const struct trace *t, const struct wfile *w, struct io_engine *io,
				struct replay_opts *o, struct replay_token *rt, struct lif_err *err)
{
	struct atomic_file log = {0};
	int rc = 0;
	if (a->iolog && !(rc = atomic_open(&log, a->iolog, err))) {
		o->iolog = log.fp;
		replay_iolog_begin(log.fp, a->weights);
	}
	if (!rc)
		rc = replay_sparse(in, t, w, io, o, rt, err);
	if (o->iolog) {
		replay_iolog_end(log.fp, a->weights);
		if (rc)
			atomic_abort(&log);
		else
			rc = atomic_commit(&log, err);
	}
	return rc;
}

/* Per token as CSV on stdout (with the prediction st when --device). */
static int replay_print(const struct rargs *a, int64_t n, const struct replay_token *rt,
			const struct sim_token *st, struct lif_err *err)
{
	printf("token,io_ms,place_ms,mem_ms,compute_ms,total_ms,bytes_read,reads,neurons_loaded,"
	       "rows_copied%s\n", a->device ? ",io_ms_pred,mem_ms_pred,bytes_read_pred,compute_ms_pred,"
	       "total_ms_pred" : "");
	for (int64_t k = 0; k < n; k++) {
		printf("%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%lld,%lld,%lld,%lld", (long long)k, rt[k].io_ms,
		       rt[k].place_ms, rt[k].mem_ms, rt[k].compute_ms, rt[k].total_ms,
		       (long long)rt[k].bytes_read, (long long)rt[k].reads,
		       (long long)rt[k].neurons_loaded, (long long)rt[k].rows_copied);
		if (a->device)
			printf(",%.6g,%.6g,%lld,%.6g,%.6g", st[k].io_ms, st[k].mem_ms,
			       (long long)st[k].bytes_read, st[k].compute_ms, st[k].total_ms);
		printf("\n");
	}
	if (fflush(stdout))
		return err_set(err, ERR_IO, "cannot write to stdout");
	return 0;
}

static int replay_go(const struct rargs *a, struct sim_params *p, const struct cli_global *g)
{
	struct lif_err err = {0};
	struct llm_desc m;
	struct device dev;
	struct trace *t = NULL;
	struct sim_cache *c = NULL;
	struct wfile *w = NULL;
	struct io_engine *io = NULL;
	struct sim_inputs in = {0};
	struct sim_result r = {0};
	struct sim_token *st = NULL;
	struct replay_token *rt = NULL;
	struct io_arena *arena = NULL;
	int rc = a->iolog && p->strategy == SIM_NAIVE
			 ? err_set(&err, ERR_INVAL, "--iolog: only for the sparse strategy (the naive "
				   "one reads sequentially: fio --rw=read)")
			 : llm_load(a->model, &m, &err);
	if (!rc)
		rc = replay_scale_model(&m, a->scale, &err);
	if (!rc && a->device)
		rc = device_load(a->device, &dev, &err);
	if (!rc && !(t = trace_load(a->trace, TRACE_LOAD_MAGNITUDES, &err)))
		rc = err.code;
	if (!rc && !(c = sim_cache_new(t, &m, &err)))
		rc = err.code;
	const int64_t T = t ? t->meta.tokens : 0;
	const int64_t n = a->tokens > 0 && a->tokens < T ? a->tokens : T;
	if (!rc && (!(st = calloc((size_t)T, sizeof *st)) || !(rt = calloc((size_t)T, sizeof *rt))))
		rc = err_set(&err, ERR_NOMEM, "out of memory");
	if (!rc && a->device)
		rc = sim_run(c, &dev, p, g->threads, &r, st, &err);
	else if (!rc && strcmp(p->hybrid, "auto"))
		r.pin_frac = atof(p->hybrid);
	else if (!rc)
		rc = err_set(&err, ERR_INVAL, "hybrid = auto needs --device to resolve");
	if (!rc && !(w = wfile_open(a->weights, &err)))
		rc = err.code;
	if (!rc && !(io = io_open(a->engine, a->weights, p->parallelism, 0, &err)))
		rc = err.code;
	if (!rc && p->strategy != SIM_NAIVE) /* a file of another layout fails before the arena is made */
		rc = sim_inputs_get(c, p, r.pin_frac, g->threads, &in, &err) ? err.code
		     : wfile_match(w, in.layout, &in.stored, &err);
	if (!rc && a->arena > 0 && !(arena = io_arena_new(a->arena, &err)))
		rc = err.code;
	if (!rc && p->strategy == SIM_NAIVE)
		rc = replay_naive(w, io, p->naive_chunk, n, a->verify, arena, rt, &err);
	else if (!rc) {
		int ranks[LLM_MAX_LAYERS];
		for (int l = 0; l < m.layers && l < LLM_MAX_LAYERS; l++)
			ranks[l] = sim_pred_rank(p, m.layers, l);
		struct replay_opts o = {.tokens = n, .verify = a->verify, .compute = a->compute,
					.check_rows = a->check_rows, .arena = arena,
					.overlap = p->overlap, .pipeline_depth = p->pipeline_depth,
					.context_tokens = p->context_tokens, .pred_rank = ranks,
					.dense_bytes = a->dense_bytes};
		rc = replay_sparse_logged(a, &in, t, w, io, &o, rt, &err);
	}
	if (!rc)
		rc = replay_print(a, n, rt, st, &err);
	sim_inputs_release(&in);
	io_close(io);
	io_arena_free(arena);
	wfile_close(w);
	sim_cache_free(c);
	trace_free(t);
	free(st), free(rt);
	return rc ? cli_fail("replay", &err) : 0;
}

/* The MoE replay's per-token CSV: measured beside the plan's prediction,
 * for the first n tokens. */
static int print_moe_tokens(const struct moe_plan *plan, const struct device *dev,
			    const struct moe_replay_token *tok, int64_t n, struct lif_err *err)
{
	printf("token,io_ms,mem_ms,total_ms,bytes_read,reads,bytes_copied,io_ms_pred,mem_ms_pred,"
	       "bytes_read_pred,reads_pred,bytes_copied_pred,total_ms_pred\n");
	for (int64_t t = 0; t < n; t++) {
		struct moe_token_sums s;
		moe_plan_token_sums(plan, t, &s);
		double io_p = s.io_ns * 1e-6;
		double mem_p = moe_mem_ns(&dev->dram, (double)s.copied, s.ops, (double)s.bytes) * 1e-6;
		printf("%lld,%.6g,%.6g,%.6g,%lld,%lld,%lld,%.6g,%.6g,%lld,%lld,%lld,%.6g\n", (long long)t,
		       tok[t].io_ms, tok[t].mem_ms, tok[t].total_ms, (long long)tok[t].bytes_read,
		       (long long)tok[t].reads, (long long)tok[t].bytes_copied, io_p, mem_p,
		       (long long)s.bytes, (long long)s.reads, (long long)s.copied, io_p + mem_p);
	}
	return fflush(stdout) ? err_set(err, ERR_IO, "cannot write to stdout") : 0;
}

/* An MoE model's replay of its router trace (sim/real/moereplay.h). */
static int replay_moe(const struct rargs *a, struct moe_point *mp, const struct cli_global *g,
		      struct lif_err *err)
{
	(void)g;
	struct llm_desc m;
	struct device dev;
	struct router_trace *rt = NULL;
	struct moe_plan plan = {0};
	struct moe_result r;
	struct wfile *w = NULL;
	struct io_engine *io = NULL;
	struct io_arena *arena = NULL;
	struct moe_replay_token *tok = NULL;
	gsl_rng *rng = NULL;
	snprintf(mp->model, sizeof mp->model, "%s", a->model);
	int rc = moe_point_model(mp, &m, err);
	if (!rc)
		rc = replay_scale_model(&m, a->scale, err);
	if (!rc)
		rc = device_load(a->device, &dev, err);
	if (!rc) {
		dev.compute.kernel = mp->kernel;
		mp->p.expert_cache = mp->dram_budget > 0 ? moe_cache_for_budget(&m, mp->dram_budget)
							 : mp->expert_cache;
		if (mp->p.expert_cache < 0)
			rc = err_set(err, ERR_INVAL, "--moe dram_budget: the resident part of %s does not "
				     "fit", m.name);
	}
	if (!rc && !(rt = router_load(a->router, err)))
		rc = err->code;
	if (!rc && mp->p.prefetch == MOE_PREFETCH_MODELED) {
		if (!(rng = gsl_rng_alloc(gsl_rng_mt19937)))
			rc = err_set(err, ERR_NOMEM, "out of memory");
		else
			gsl_rng_set(rng, 1);
	}
	if (!rc)
		rc = moe_run_plan(rt, &m, &dev, &mp->p, rng, &r, &plan, err);
	const int64_t T = rt ? rt->meta.tokens : 0;
	const int64_t n = a->tokens > 0 && a->tokens < T ? a->tokens : T;
	if (!rc && !(tok = calloc((size_t)T, sizeof *tok)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && !(w = wfile_open(a->weights, err)))
		rc = err->code;
	if (!rc && !(io = io_open(a->engine, a->weights, mp->p.parallelism, 0, err)))
		rc = err->code;
	if (!rc && a->arena > 0 && !(arena = io_arena_new(a->arena, err)))
		rc = err->code;
	if (!rc) {
		const struct moe_replay_opts o = {.tokens = n, .verify = a->verify, .arena = arena};
		rc = moe_replay(&plan, &m, w, io, &o, tok, err);
	}
	if (!rc)
		rc = print_moe_tokens(&plan, &dev, tok, n, err);
	gsl_rng_free(rng);
	io_close(io);
	io_arena_free(arena);
	wfile_close(w);
	moe_plan_free(&plan);
	router_trace_free(rt);
	free(tok);
	return rc;
}

/* A KEY=VALUE flag (--sim, --moe) set through its section's option row:
 * 0, or the exit code of a clear error. */
static int key_flag(const char *flag, const struct conf_opt *opts, const char *section, void *obj)
{
	char key[64];
	const char *eq = strchr(optarg, '=');
	const struct conf_opt *o;
	struct lif_err err = {0};
	snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - optarg) : 0, optarg);
	if (!eq || !(o = conf_find(opts, section, key)))
		return cli_failf("replay", "%s: '%s' is not KEY=VALUE with a [%s] key", flag, optarg, section);
	return conf_set(o, obj, eq + 1, NULL, &err) ? cli_fail("replay", &err) + 1 : 0;
}

/* An MoE replay's flags: what it needs and what it does not take (a usage
 * error, reported, when not 0). */
static int check_moe_args(const struct rargs *a, const struct moe_point *mp, int not_one_model)
{
	if (a->trace || a->compute || a->check_rows || a->iolog)
		return cli_failf("replay", "--router-trace (an MoE replay) takes none of --trace, "
				 "--compute, --check-rows, --iolog");
	if (not_one_model || !a->weights || !a->device)
		return cli_failf("replay", "expected MOE.ini, --router-trace R.h5, --weights W and "
				 "--device P (see --help)");
	if (mp->expert_cache < 0 && mp->dram_budget == 0)
		return cli_failf("replay", "give --moe expert_cache=N or --moe dram_budget=BYTES");
	if (mp->expert_cache >= 0 && mp->dram_budget > 0)
		return cli_failf("replay", "give only one of --moe expert_cache and --moe dram_budget");
	return 0;
}

#define VFLAG(flag, key, field) \
	cli_conf("replay", flag, validate_opts, "validate", key, optarg, field)
#define VDEFAULT(flag, key, field) \
	cli_conf("replay", flag, validate_opts, "validate", key, NULL, field)

int verb_replay(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"trace", required_argument, 0, 't'},	{"weights", required_argument, 0, 'w'},
		{"engine", required_argument, 0, 'e'},	{"scale", required_argument, 0, 's'},
		{"tokens", required_argument, 0, 'n'},	{"device", required_argument, 0, 'd'},
		{"compute", no_argument, 0, 'c'},	{"no-verify", no_argument, 0, 'V'},
		{"check-rows", no_argument, 0, 'R'},	{"sim", required_argument, 0, 'S'},
		{"iolog", required_argument, 0, 'L'},	{"arena", required_argument, 0, 'A'},
		{"dense-bytes", required_argument, 0, 'D'}, {"help", no_argument, 0, 'h'},
		{"router-trace", required_argument, 0, 'r'}, {"moe", required_argument, 0, 'M'},
		{0, 0, 0, 0},
	};
	struct rargs a = {.verify = 1};
	struct sim_params p;
	struct lif_err err = {0};
	sim_default_params(&p);
	struct moe_point mp;
	memset(&mp, 0, sizeof mp);
	if (conf_defaults(moe_opts, &mp, &err))
		return cli_fail("replay", &err);
	int c, engine;
	if (VDEFAULT("--scale", "scale", &a.scale) || VDEFAULT("--arena", "arena", &a.arena) ||
	    VDEFAULT("--dense-bytes", "dense_bytes", &a.dense_bytes) ||
	    VDEFAULT("--engine", "engine", &engine))
		return 1;
	snprintf(a.engine, sizeof a.engine, "%s", io_engine_choice(engine));
	while ((c = cli_getopt("replay", argc, argv, "h", longopts)) != -1) {
		int rc;
		switch (c) {
		case 'h': replay_usage(stdout); return 0;
		case '?': return 2;
		case 't': a.trace = optarg; break;
		case 'w': a.weights = optarg; break;
		case 'd': a.device = optarg; break;
		case 'c': a.compute = 1; break;
		case 'V': a.verify = 0; break;
		case 'R': a.check_rows = 1; break;
		case 'L': a.iolog = optarg; break;
		case 'r': a.router = optarg; break;
		case 'M': if ((rc = key_flag("--moe", moe_opts, "moe", &mp))) return rc; break;
		/* flags that mirror [validate] keys parse through their rows */
		case 'A': if (VFLAG("--arena", "arena", &a.arena)) return 2; break;
		case 'D': if (VFLAG("--dense-bytes", "dense_bytes", &a.dense_bytes)) return 2; break;
		case 'e':
			if (VFLAG("--engine", "engine", &engine))
				return 2;
			snprintf(a.engine, sizeof a.engine, "%s", io_engine_choice(engine));
			break;
		case 's': if (VFLAG("--scale", "scale", &a.scale)) return 2; break;
		case 'n': if (VFLAG("--tokens", "tokens", &a.tokens)) return 2; break;
		case 'S': if ((rc = key_flag("--sim", sim_opts, "sim", &p))) return rc; break;
		}
	}
	if (a.router && check_moe_args(&a, &mp, optind != argc - 1))
		return 2;
	if (!a.router && (optind != argc - 1 || !a.trace || !a.weights))
		return cli_failf("replay", "expected MODEL.ini, --trace T.h5 and --weights W (see --help)");
	char model[PATH_CAP], device[PATH_CAP];
	if (!(a.model = cli_path("replay", PATH_MODEL, argv[optind], model, sizeof model)) ||
	    (a.device && !(a.device = cli_path("replay", PATH_DEVICE, a.device, device, sizeof device))))
		return 1;
	if (a.router)
		return replay_moe(&a, &mp, g, &err) ? cli_fail("replay", &err) : 0;
	return replay_go(&a, &p, g);
}

static void validate_progress(void *pctx, size_t done, size_t total)
{
	cli_progress(pctx, "validate", (long long)done, (long long)total);
}

int verb_validate(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const char *out = NULL;
	int c;
	while ((c = cli_getopt("validate", argc, argv, "ho:", longopts)) != -1) {
		if (c == 'h') {
			printf("usage: lifsim validate EXPERIMENT.ini -o DIR\n\n"
			       "Run a sweep of kind validate (sim/sweep/kind_validate.c: per point the\n"
			       "prediction and the replay, repeated, with drift probes matched to the\n"
			       "point's reads between its tokens), one point at a\n"
			       "time, into DIR/results.csv, then write DIR/validation.csv (a row per\n"
			       "point) and DIR/summary.csv (metric,regime,n,median_abs_err,p90_abs_err,\n"
			       "max_abs_err,bias,cv_meas; errors are predicted / measured - 1) and print\n"
			       "the summary. A re-run into DIR measures only the missing points.\n\n"
			       "experiment: [experiment] kind = validate, model, device, trace (.h5);\n"
			       "[sim] as for simulate; [validate] weights, engine, repeats, tokens, scale,\n"
			       "verify, probe_file, probe_seconds (see\n"
			       "sim/sweep/kind_validate.c and experiments/host-validate.ini).\n"
			       "kind = moevalidate does the same for mixture-of-experts points: [moe]\n"
			       "keys as kind = moe, [validate] weights (an expert file from lifsim\n"
			       "layout), the simulator's read plan replayed for real; io_ms, mem_ms and\n"
			       "total_ms = io + mem compared (sim/sweep/kind_moevalidate.c,\n"
			       "experiments/moe-host.ini).\n");
			return 0;
		}
		if (c == '?')
			return 2;
		out = optarg;
	}
	if (optind != argc - 1 || !out)
		return cli_failf("validate", "expected EXPERIMENT.ini and -o DIR (see --help)");
	struct lif_err err = {0};
	struct sweep *sw = NULL;
	void *ctx = NULL;
	char exp[PATH_CAP];
	if (!cli_path("validate", PATH_EXPERIMENT, argv[optind], exp, sizeof exp))
		return 1;
	int rc = sweep_new(exp, &sw, &err);
	const struct sweep_kind *k = &sweep_kind_validate;
	if (!rc && !strcmp(sweep_kind_name(sw), "moevalidate"))
		k = &sweep_kind_moevalidate;
	else if (!rc && strcmp(sweep_kind_name(sw), "validate"))
		rc = err_set(&err, ERR_INVAL, "%s: [experiment] kind is '%s', not validate or "
			     "moevalidate", exp, sweep_kind_name(sw));
	if (!rc)
		rc = k->ctx_new(sw, &ctx, &err);
	struct sweep_opts o = {.dir = out, .threads = 1, .progress = validate_progress,
			       .progress_ctx = (void *)g};
	if (!rc)
		rc = sweep_run(sw, k, ctx, &o, NULL, &err);
	if (ctx)
		k->ctx_free(ctx);
	sweep_free(sw);
	if (!rc)
		rc = replay_validate_summary(out, &err);
	if (!rc && !g->quiet) {
		char path[4200], line[512];
		snprintf(path, sizeof path, "%s/summary.csv", out);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof line, f))
			fputs(line, stdout);
		if (f)
			fclose(f);
	}
	return rc ? cli_fail("validate", &err) : 0;
}
