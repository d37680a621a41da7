/* lifsim synth: write a synthetic trace for a model description. */
#include <stdio.h>
#include <string.h>

#include "models/llm.h"
#include "sim/cli/verbs.h"
#include "traces/synth.h"

static void synth_usage(FILE *f)
{
	fprintf(f, "usage: lifsim synth MODEL.ini -o TRACE.h5 [--tokens N] [--seed S]\n"
		   "                    [--set KEY=VALUE]... [--config SYNTH.ini] [--no-magnitudes]\n\n"
		   "Generate a seeded synthetic activation trace (HDF5, traces/FORMAT.md) with the\n"
		   "sparsity of MODEL.ini, power-law neuron frequency, co-activation groups and\n"
		   "persistence over tokens (see traces/synth.h for the model).\n\n"
		   "  -o, --output FILE    trace to write (atomically)\n"
		   "  --tokens N           tokens to generate (= --set tokens=N)\n"
		   "  --seed S             random seed (= --set seed=S)\n"
		   "  --set KEY=VALUE      any generator parameter below\n"
		   "  --config FILE        read generator parameters from an INI [synth] section\n"
		   "  --no-magnitudes      do not store the near-threshold band\n\n"
		   "generator parameters:\n");
	conf_help(f, synth_opts);
}

static void progress(void *ctx, long long done, long long total)
{
	cli_progress(ctx, "synth", done, total);
}

static int set_param(struct synth_params *p, const char *kv)
{
	char key[64];
	const char *eq = strchr(kv, '=');
	struct lif_err err = {0};
	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key)
		return cli_failf("synth", "--set expects KEY=VALUE, got '%s'", kv);
	snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
	const struct conf_opt *o = conf_find(synth_opts, "synth", key);
	if (!o)
		return cli_failf("synth", "--set: unknown generator parameter '%s' (see --help)", key);
	if (conf_set(o, p, eq + 1, NULL, &err))
		return cli_fail("synth", &err);
	return 0;
}

static int load_config(struct synth_params *p, const char *path)
{
	struct conf_doc *doc = NULL;
	struct lif_err err = {0};
	int rc = conf_doc_read(path, &doc, &err);
	if (!rc)
		rc = conf_apply(synth_opts, p, doc, "synth", &err);
	conf_doc_free(doc);
	return rc ? cli_fail("synth", &err) : 0;
}

int verb_synth(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"output", required_argument, 0, 'o'}, {"tokens", required_argument, 0, 't'},
		{"seed", required_argument, 0, 's'},   {"set", required_argument, 0, 'S'},
		{"config", required_argument, 0, 'c'}, {"no-magnitudes", no_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'},         {0},
	};
	struct synth_params p;
	const char *out = NULL;
	char kv[128];
	int c;
	synth_defaults(&p);
	while ((c = cli_getopt("synth", argc, argv, "o:h", longopts)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 't': snprintf(kv, sizeof kv, "tokens=%s", optarg); if (set_param(&p, kv)) return 1; break;
		case 's': snprintf(kv, sizeof kv, "seed=%s", optarg); if (set_param(&p, kv)) return 1; break;
		case 'S': if (set_param(&p, optarg)) return 1; break;
		case 'c': if (load_config(&p, optarg)) return 1; break;
		case 'n': p.magnitudes = 0; break;
		case 'h': synth_usage(stdout); return 0;
		default: return 1;
		}
	}
	if (optind != argc - 1)
		return cli_failf("synth", "expected one MODEL.ini argument (see lifsim synth --help)");
	if (!out)
		return cli_failf("synth", "no output file: give -o TRACE.h5");
	struct llm_desc m;
	struct lif_err err = {0};
	char model[PATH_CAP];
	if (!cli_path("synth", PATH_MODEL, argv[optind], model, sizeof model))
		return 1;
	if (llm_load(model, &m, &err))
		return cli_fail("synth", &err);
	if (synth_write(&m, &p, out, g->threads, progress, (void *)g, &err))
		return cli_fail("synth", &err);
	if (!g->quiet)
		printf("wrote %s: %s, %lld tokens x %d layers x %d neurons (seed %lld)\n", out, m.name,
		       (long long)p.tokens, m.layers, m.d_ffn, (long long)p.seed);
	return 0;
}
