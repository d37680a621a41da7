/* verb_sweep: `lifsim sweep` (run an experiment) and `lifsim merge` (join
 * the results of its shards); the machinery is sim/sweep/sweep.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sweep/report.h"
#include "sim/sweep/sweep.h"
#include "sim/cli/verbs.h"
#include "sim/base/util.h"

/* Set by SIGINT/SIGTERM: the one mutable global, as a signal handler can
 * reach nothing else. The sweep stops starting points and writes its
 * results. */
static volatile sig_atomic_t sweep_stop;

static void on_signal(int sig)
{
	sweep_stop = 1;
	signal(sig, SIG_DFL); /* a second signal ends the process at once */
}

static void sweep_usage(FILE *f)
{
	fprintf(f, "usage: lifsim sweep EXPERIMENT.ini -o DIR [--shard I/N] [--flush-s S]\n"
		   "       lifsim sweep EXPERIMENT.ini --dry-run\n\n"
		   "Expand the experiment (comma lists crossed, [sweep] zip, [row NAME] sections;\n"
		   "see experiments/FORMAT.md), check every point, then compute them on\n"
		   "--threads cores into DIR/results.csv and DIR/config.resolved.ini.\n"
		   "A re-run into the same DIR computes only the points not yet in results.csv.\n\n"
		   "  -o, --out DIR     results directory (created if missing)\n"
		   "  --shard I/N       compute only the points with index %% N == I (join with merge)\n"
		   "  --flush-s S       rewrite results.csv at most every S seconds while running [2]\n"
		   "  -n, --dry-run     check every point and list them as CSV on stdout\n"
		   "  -h, --help        this text\n\n"
		   "point kinds ([experiment] kind, default %s):\n", SWEEP_DEFAULT_KIND);
	for (const struct sweep_kind *const *k = sweep_kinds; *k; k++)
		fprintf(f, "  %-10s %s\n", (*k)->name, (*k)->summary);
}

static int parse_shard(const char *s, int *index, int *count)
{
	char tail;
	return sscanf(s, "%d/%d%c", index, count, &tail) == 2 && *count >= 1 && *index >= 0 &&
			       *index < *count
		       ? 0
		       : -1;
}

static void show_progress(void *pctx, size_t done, size_t total)
{
	cli_progress(pctx, "sweep", (long long)done, (long long)total);
}

static void show_plan(void *pctx, const struct sweep_report *rep)
{
	const struct cli_global *g = pctx;
	if (g->quiet || !rep->resumed)
		return;
	fprintf(stderr, "lifsim sweep: resuming: %zu points kept", rep->kept);
	if (rep->new_points)
		fprintf(stderr, ", %zu to compute: %s", rep->new_points, rep->new_list);
	fputc('\n', stderr);
}

struct sweep_args {
	const char *exp, *out;
	char exp_path[PATH_CAP]; /* exp as found on the search path */
	int dry, shard_index, shard_count;
	double flush_s;
};

static int sweep_parse(int argc, char **argv, struct sweep_args *a)
{
	static const struct option longopts[] = {
		{"out", required_argument, NULL, 'o'}, {"shard", required_argument, NULL, 's'},
		{"flush-s", required_argument, NULL, 'f'}, {"dry-run", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'}, {0}};
	int c;
	optind = 1;
	while ((c = cli_getopt("sweep", argc, argv, "o:nh", longopts)) != -1) {
		switch (c) {
		case 'o': a->out = optarg; break;
		case 'n': a->dry = 1; break;
		case 'h': sweep_usage(stdout); return 0;
		case 's':
			if (parse_shard(optarg, &a->shard_index, &a->shard_count))
				return cli_failf("sweep", "--shard: '%s' is not I/N with 0 <= I < N", optarg);
			break;
		case 'f':
			if (cli_double("sweep", "--flush-s", optarg, 0.001, 1e6, &a->flush_s))
				return CLI_EXIT_USAGE;
			break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return cli_failf("sweep", "expected one EXPERIMENT.ini (see lifsim sweep --help)");
	if (!a->out && !a->dry)
		return cli_failf("sweep", "missing -o DIR (or --dry-run)");
	if (!(a->exp = cli_path("sweep", PATH_EXPERIMENT, argv[optind], a->exp_path,
				sizeof a->exp_path)))
		return 1;
	return -1;
}

static int sweep_go(const struct sweep_args *a, const struct sweep *sw,
		    const struct sweep_kind *kind, void *ctx, const struct cli_global *g,
		    struct lif_err *err)
{
	if (a->dry) {
		int rc = sweep_validate(sw, kind, ctx, err);
		if (!rc)
			rc = sweep_list(sw, stdout, err);
		if (!rc && !g->quiet)
			fprintf(stderr, "lifsim sweep: %s: %zu points of kind '%s', all valid\n",
				a->exp, sweep_points(sw), kind->name);
		return rc;
	}
	struct sweep_opts o = {.dir = a->out, .threads = g->threads, .shard_index = a->shard_index,
			       .shard_count = a->shard_count, .flush_s = a->flush_s,
			       .stop = &sweep_stop, .progress = show_progress, .planned = show_plan,
			       .progress_ctx = (void *)g};
	struct sweep_report rep;
	double t0 = 1e-9 * util_now_ns();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int rc = sweep_run(sw, kind, ctx, &o, &rep, err);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (!rc && rep.kept + rep.computed == rep.points)
		sweep_stop = 0; /* every point done: not an interrupted sweep */
	if (!rc && !g->quiet)
		fprintf(stderr, "lifsim sweep: %s/%s: %zu of %zu points (%zu computed, %zu kept) in %.2f s\n",
			a->out, SWEEP_RESULTS, rep.kept + rep.computed, rep.points, rep.computed, rep.kept,
			1e-9 * util_now_ns() - t0);
	if (!rc && !g->quiet) {
		char path[4200];
		snprintf(path, sizeof path, "%s/%s", a->out, SWEEP_RESULTS);
		rc = report_refs(path, stdout, err);
	}
	return rc;
}

int verb_sweep(int argc, char **argv, const struct cli_global *g)
{
	struct sweep_args a = {0};
	int st = sweep_parse(argc, argv, &a);
	if (st >= 0)
		return st;
	struct lif_err err = {0};
	struct sweep *sw = NULL;
	void *ctx = NULL;
	const struct sweep_kind *kind = NULL;
	int rc = sweep_new(a.exp, &sw, &err);
	if (!rc && !(kind = sweep_kind_find(sweep_kinds, sweep_kind_name(sw)))) {
		char names[512] = "";
		for (const struct sweep_kind *const *k = sweep_kinds; *k; k++)
			snprintf(names + strlen(names), sizeof names - strlen(names), " %s", (*k)->name);
		rc = err_set(&err, ERR_INVAL, "%s: [experiment] kind '%s' is unknown (kinds:%s)", a.exp,
			     sweep_kind_name(sw), names);
	}
	if (!rc && kind->ctx_new)
		rc = kind->ctx_new(sw, &ctx, &err);
	if (!rc)
		rc = sweep_go(&a, sw, kind, ctx, g, &err);
	if (kind && kind->ctx_free)
		kind->ctx_free(ctx);
	sweep_free(sw);
	rc = rc ? cli_fail("sweep", &err) : 0;
	return sweep_stop ? 130 : rc; /* interrupted: the points done so far are written */
}

static void merge_usage(FILE *f)
{
	fprintf(f, "usage: lifsim merge DIR1 DIR2 ... -o DIR\n\n"
		   "Join the results directories of the shards of one sweep (lifsim sweep --shard I/N)\n"
		   "into DIR: their config.resolved.ini must be identical and their results.csv\n"
		   "columns the same; every point must be in exactly one shard.\n\n"
		   "  -o, --out DIR   merged results directory (created if missing)\n"
		   "  -h, --help      this text\n");
}

int verb_merge(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"out", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'}, {0}};
	const char *out = NULL;
	int c;
	optind = 1;
	while ((c = cli_getopt("merge", argc, argv, "o:h", longopts)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'h') {
			merge_usage(stdout);
			return 0;
		} else
			return CLI_EXIT_USAGE;
	}
	if (!out)
		return cli_failf("merge", "missing -o DIR");
	if (optind >= argc)
		return cli_failf("merge", "expected the shard directories (see lifsim merge --help)");
	struct lif_err err = {0};
	if (sweep_merge((const char *const *)argv + optind, (size_t)(argc - optind), out, &err))
		return cli_fail("merge", &err);
	if (!g->quiet)
		fprintf(stderr, "lifsim merge: %d directories -> %s/%s\n", argc - optind, out,
			SWEEP_RESULTS);
	return 0;
}
