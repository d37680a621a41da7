/* lifsim layout: write a weight file for a model in a layout (sim/wfile.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/replay.h"
#include "sim/verbs.h"
#include "sim/wfile.h"

#define VERB "layout"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lifsim layout MODEL.ini --layout L -o FILE [--trace T.h5] [--bundle N]\n"
		"                     [--train-tokens N] [--scale F] [--dtype D] [--seed N]\n\n"
		"Write the FFN weights of MODEL (models/llms/*.ini) in layout L (%s) to FILE,\n"
		"schema lifsim-weights v1 (sim/wfile.h): a 4 KiB header (magic, version, layout,\n"
		"dims, dtype, index of regions), the FFN region exactly as the simulator's layout\n"
		"places it (4 KiB aligned), the neuron order and a checksum per slot.\n"
		"Weights are deterministic synthetic values from --seed. The file is written\n"
		"atomically (FILE.tmp, fsync, rename) after checking the disk has room.\n\n"
		"options:\n"
		"  --layout L         separate, rowcol, hot, coact or friends\n"
		"  --trace T.h5       the trace the ordering layouts (hot, coact, friends) learn from;\n"
		"                     must be the trace replay and validate use\n"
		"  --bundle N         neurons per read unit (default 1; as [sim] bundle)\n"
		"  --train-tokens N   tokens the ordering layouts learn from (default 100; as\n"
		"                     [sim] layout_train_tokens)\n"
		"  --scale F          shrink d_model by F in (0, 1] for small files (default 1: the\n"
		"                     full model; OPT-6.7B fp16 is 8.6 GB of FFN)\n"
		"  --dtype D          store as fp32|fp16|bf16|int8 (default: the model's)\n"
		"  --seed N           synthetic weights' seed (default 1)\n"
		"  --checkpoint DIR   real weights from safetensors: not in this build (needs the\n"
		"                     recorder's traces/safetensors.h); refused with a message\n",
		LAYOUT_CHOICES);
}

static void progress(void *ctx, int done, int total)
{
	cli_progress(ctx, "layout", done, total);
}

int verb_layout(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"layout", required_argument, 0, 'l'},	 {"trace", required_argument, 0, 't'},
		{"bundle", required_argument, 0, 'b'},	 {"train-tokens", required_argument, 0, 'T'},
		{"scale", required_argument, 0, 's'},	 {"dtype", required_argument, 0, 'd'},
		{"seed", required_argument, 0, 'r'},	 {"checkpoint", required_argument, 0, 'c'},
		{"help", no_argument, 0, 'h'},		 {0, 0, 0, 0},
	};
	const char *layout = NULL, *trace = NULL, *out = NULL, *dtype = NULL;
	long long bundle = 1, train = 100, seed = 1;
	double scale = 1;
	int c;
	while ((c = cli_getopt(VERB, argc, argv, "ho:", longopts)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 0;
		case '?': return 2;
		case 'l': layout = optarg; break;
		case 't': trace = optarg; break;
		case 'o': out = optarg; break;
		case 'd': dtype = optarg; break;
		case 'c':
			return cli_failf(VERB, "--checkpoint: reading safetensors checkpoints is not in "
				  "this build (it needs traces/safetensors.h from the recorder); "
				  "weights are synthetic") + 1;
		case 'b': if (cli_int(VERB, "--bundle", optarg, 1, 1 << 20, &bundle)) return 2; break;
		case 'T': if (cli_int(VERB, "--train-tokens", optarg, 1, 1 << 30, &train)) return 2; break;
		case 'r': if (cli_int(VERB, "--seed", optarg, 0, 1LL << 62, &seed)) return 2; break;
		case 's': if (cli_double(VERB, "--scale", optarg, 1e-6, 1, &scale)) return 2; break;
		}
	}
	if (optind != argc - 1 || !layout || !out)
		return cli_failf(VERB, "expected MODEL.ini, --layout L and -o FILE (see --help)") + 1;
	const struct layout_ops *ops = layout_find(layout);
	if (!ops)
		return cli_failf(VERB, "--layout: unknown layout '%s' (choices: %s)", layout,
				 LAYOUT_CHOICES) + 1;
	if (ops->needs_trace && !trace)
		return cli_failf(VERB, "layout %s orders neurons by a trace: give --trace T.h5", layout) + 1;
	struct lif_err err = {0};
	struct llm_desc m;
	struct trace *t = NULL;
	struct layout *l = NULL;
	int rc = llm_load(argv[optind], &m, &err);
	if (!rc && dtype) {
		int d = 0;
		while (d < LLM_NDTYPES && strcmp(llm_dtype_name(d), dtype))
			d++;
		if (d == LLM_NDTYPES)
			rc = err_set(&err, ERR_INVAL, "--dtype: unknown dtype '%s'", dtype);
		m.dtype = d;
		if (!rc)
			rc = llm_derive(&m, argv[optind], &err);
	}
	if (!rc)
		rc = replay_scale_model(&m, scale, &err);
	if (!rc && trace && ops->needs_trace && !(t = trace_load(trace, 0, &err)))
		rc = err.code;
	if (!rc && t && (t->meta.layers != m.layers || t->meta.d_ffn != m.d_ffn))
		rc = err_set(&err, ERR_INVAL, "%s: trace is %d layers x %d neurons, the model %d x %d",
			     trace, t->meta.layers, t->meta.d_ffn, m.layers, m.d_ffn);
	if (!rc && !(l = layout_new(ops->kind, &m, t, (int)bundle, (int)train, g->threads, &err)))
		rc = err.code;
	if (!rc)
		rc = wfile_write(out, &m, l, (uint64_t)seed, g->threads, g->progress ? progress : NULL,
				 (void *)g, &err);
	if (!rc && !g->quiet)
		printf("wrote %s: %s, layout %s, %d layers x %d neurons, d_model %d, %s, %.4g GB of FFN\n",
		       out, m.name, ops->name, m.layers, m.d_ffn, m.d_model, llm_dtype_name(m.dtype),
		       m.ffn_bytes / 1e9);
	layout_free(l);
	trace_free(t);
	return rc ? cli_fail(VERB, &err) : 0;
}
