/* lifsim: one command, `lifsim VERB ...` (ARCHITECTURE.md, "Contracts"; lifsim(1)). */
#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>

#include "sim/base/conf.h"
#include "sim/base/envvar.h"
#include "sim/base/hostinfo.h"
#include "sim/base/path.h"
#include "sim/base/suggest.h"
#include "sim/cli/verbs.h"
#include "traces/trace.h"

static const struct verb verbs[] = {
	{.name = "synth", .run = verb_synth,
	 .summary = "write a synthetic activation trace for a model description"},
	{.name = "stats", .run = verb_stats,
	 .summary = "trace statistics: sparsity, s_agg(k), windowed load, frequency, co-activation"},
	{.name = "device", .run = verb_device,
	 .summary = "inspect a device profile: check it, print its flash throughput grid"},
	{.name = "sweep", .run = verb_sweep,
	 .summary = "run an experiment INI: expand the sweep, compute every point, write results"},
	{.name = "merge", .run = verb_merge,
	 .summary = "join the results directories of the shards of one sweep"},
	{.name = "tokens", .run = verb_tokens,
	 .summary = "print a sweep point's per-token costs as CSV"},
	{.name = "record", .run = verb_record,
	 .summary = "run a real checkpoint (OPT, Llama) on a prompt and record its activation trace"},
	{.name = "predictor", .run = verb_predictor,
	 .summary = "train and evaluate low-rank activation predictors on a trace"},
	{.name = "bench-gemv", .run = verb_bench_gemv,
	 .summary = "time the low-bit (dequant, T-MAC LUT) and dense GEMV kernels"},
	{.name = "layout", .run = verb_layout,
	 .summary = "write a weight file for a model in a layout"},
	{.name = "calibrate", .run = verb_calibrate,
	 .summary = "measure the host SSD and DRAM, fit a device profile"},
	{.name = "replay", .run = verb_replay,
	 .summary = "replay a trace with real reads from a weight file"},
	{.name = "validate", .run = verb_validate,
	 .summary = "predicted vs measured over a sweep, with error statistics"},
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: lifsim [--threads N] [--quiet] VERB [options]\n\n"
		   "lifsim simulates LLM inference with FFN weights on flash (arXiv 2312.11514).\n\n"
		   "verbs:\n");
	for (size_t i = 0; i < NVERBS; i++)
		fprintf(f, "  %-11s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f, "\nglobal options (any verb):\n"
		   "  --threads N  worker threads (default: the CPUs this process may use:\n"
		   "               affinity, cgroup cpu.max quota, SLURM_CPUS_PER_TASK)\n"
		   "  --quiet      no summary or progress output\n"
		   "  --version    the version and the git commit built from (unknown: not a checkout)\n\n"
		   "`lifsim VERB --help` describes each verb; `man lifsim` all of them.\n\n"
		   "Models, devices and experiments are found by path or short name (opt-6.7b,\n"
		   "m1max, paper-table2) in: the current directory, $LIFSIM_PATH, then");
	static struct path_dirs data; /* 128 KiB */
	path_data_dirs(&data);
	for (size_t i = 0; i < data.n; i++)
		fprintf(f, "%s %s", i ? "," : "", data.dir[i]);
	fprintf(f, ".\n");
}

int main(int argc, char **argv)
{
	struct cli_global g;
	gsl_set_error_handler_off();
	trace_init();
	conf_init();
	if (cli_take_globals(&argc, argv, &g))
		return CLI_EXIT_USAGE;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("lifsim %s (commit %s)\n", hostinfo_version(), hostinfo_commit());
		return 0;
	}
	for (size_t i = 0; i < NVERBS; i++)
		if (!strcmp(argv[1], verbs[i].name)) {
			struct lif_err eerr = {0};
			if (envvar_check(&eerr)) {
				fprintf(stderr, "lifsim %s: %s\n", argv[1], eerr.msg);
				return CLI_EXIT_USAGE;
			}
			int rc = verbs[i].run(argc - 1, argv + 1, &g);
			/* what a verb printed can still fail to reach a full disk
			 * (lifsim stats > FILE) */
			int earlier = ferror(stdout), fl = fflush(stdout), e = errno;
			if ((earlier || fl) && rc == CLI_EXIT_OK) {
				fprintf(stderr, "lifsim %s: cannot write to stdout: %s\n", argv[1],
					fl && !earlier ? strerror(e) : "disk full or I/O error");
				return CLI_EXIT_RUNTIME;
			}
			return rc;
		}
	const char *names[NVERBS];
	for (size_t i = 0; i < NVERBS; i++)
		names[i] = verbs[i].name;
	const char *near = suggest_nearest(argv[1], names, NVERBS);
	if (near) {
		fprintf(stderr, "lifsim: unknown verb '%s' (did you mean '%s'?)\n", argv[1], near);
		return CLI_EXIT_USAGE;
	}
	fprintf(stderr, "lifsim: unknown verb '%s' (verbs:", argv[1]);
	for (size_t i = 0; i < NVERBS; i++)
		fprintf(stderr, " %s", verbs[i].name);
	fprintf(stderr, "; see lifsim --help)\n");
	return CLI_EXIT_USAGE;
}
