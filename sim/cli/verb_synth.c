/* lifsim synth: write a synthetic trace for a model description. */
#include <stdio.h>
#include <string.h>

#include "models/llm.h"
#include "sim/cli/verbs.h"
#include "traces/router_synth.h"
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
		   "For a mixture-of-experts MODEL.ini (experts > 0) it writes a router trace\n"
		   "instead (expert ids and gate weights per token and MoE layer; traces/router_synth.h).\n\n"
		   "generator parameters:\n");
	conf_help(f, synth_opts);
	fprintf(f, "\ngenerator parameters of router traces (MoE models):\n");
	conf_help(f, router_synth_opts);
}

static void progress(void *ctx, long long done, long long total)
{
	cli_progress(ctx, "synth", done, total);
}

static int set_param(const struct conf_opt *opts, void *p, const char *kv)
{
	char key[64];
	const char *eq = strchr(kv, '=');
	struct lif_err err = {0};
	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key)
		return cli_failf("synth", "--set expects KEY=VALUE, got '%s'", kv);
	snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
	const struct conf_opt *o = conf_find(opts, "synth", key);
	if (!o)
		return cli_failf("synth", "--set: unknown generator parameter '%s' (see --help)", key);
	if (conf_set(o, p, eq + 1, NULL, &err))
		return cli_fail("synth", &err);
	return 0;
}

static int load_config(const struct conf_opt *opts, void *p, const char *path)
{
	struct conf_doc *doc = NULL;
	struct lif_err err = {0};
	int rc = conf_doc_read(path, &doc, &err);
	if (!rc)
		rc = conf_apply(opts, p, doc, "synth", &err);
	conf_doc_free(doc);
	return rc ? cli_fail("synth", &err) : 0;
}

/* The --set, --tokens, --seed and --config options in order, applied once
 * the model says which generator they are for. */
struct synth_setting {
	int config; /* 1: a --config path; 0: KEY=VALUE */
	char text[4096];
};

#define SYNTH_MAX_SETTINGS 64

static int apply_settings(const struct synth_setting *s, int n, const struct conf_opt *opts,
			  void *p)
{
	for (int i = 0; i < n; i++)
		if (s[i].config ? load_config(opts, p, s[i].text) : set_param(opts, p, s[i].text))
			return 1;
	return 0;
}

static int synth_moe(const struct llm_desc *m, const struct synth_setting *s, int n,
		     const char *out, const struct cli_global *g)
{
	struct router_synth_params p;
	struct lif_err err = {0};
	router_synth_defaults(&p);
	if (apply_settings(s, n, router_synth_opts, &p))
		return 1;
	struct router_trace *rt = router_synth_generate(m, &p, &err);
	int rc = rt ? router_write(out, rt, &err) : err.code;
	router_trace_free(rt);
	if (rc)
		return cli_fail("synth", &err);
	if (!g->quiet)
		printf("wrote %s: %s router trace, %lld tokens x %d MoE layers, top-%d of %d experts "
		       "(seed %lld)\n", out, m->name, (long long)p.tokens, m->moe_layers,
		       m->experts_per_token, m->experts, (long long)p.seed);
	return 0;
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
	static struct synth_setting set[SYNTH_MAX_SETTINGS];
	const char *out = NULL;
	int c, n = 0, no_mags = 0;
	synth_defaults(&p);
	while ((c = cli_getopt("synth", argc, argv, "o:h", longopts)) != -1) {
		if (strchr("tsSc", c) && n == SYNTH_MAX_SETTINGS)
			return cli_failf("synth", "more than %d --set/--config options", SYNTH_MAX_SETTINGS);
		switch (c) {
		case 'o': out = optarg; break;
		case 't': set[n].config = 0; snprintf(set[n++].text, sizeof set[0].text, "tokens=%s", optarg); break;
		case 's': set[n].config = 0; snprintf(set[n++].text, sizeof set[0].text, "seed=%s", optarg); break;
		case 'S': set[n].config = 0; snprintf(set[n++].text, sizeof set[0].text, "%s", optarg); break;
		case 'c': set[n].config = 1; snprintf(set[n++].text, sizeof set[0].text, "%s", optarg); break;
		case 'n': no_mags = 1; break;
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
	if (llm_load(argv[optind], &m, &err))
		return cli_fail("synth", &err);
	if (llm_is_moe(&m))
		return synth_moe(&m, set, n, out, g);
	if (apply_settings(set, n, synth_opts, &p))
		return 1;
	if (no_mags)
		p.magnitudes = 0;
	if (synth_write(&m, &p, out, g->threads, progress, (void *)g, &err))
		return cli_fail("synth", &err);
	if (!g->quiet)
		printf("wrote %s: %s, %lld tokens x %d layers x %d neurons (seed %lld)\n", out, m.name,
		       (long long)p.tokens, m.layers, m.d_ffn, (long long)p.seed);
	return 0;
}
