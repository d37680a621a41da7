/* lifsim layout: write a weight file for a model in a layout (sim/real/wfile.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/real/replay.h"
#include "sim/cli/verbs.h"
#include "sim/sweep/kinds.h"
#include "sim/real/wfile.h"
#include "traces/record/safetensors.h"

#define VERB "layout"

static void usage(FILE *f)
{
	char choices[128], dtypes[64];
	fprintf(f,
		"usage: lifsim layout MODEL.ini --layout L -o FILE [--trace T.h5] [--bundle N]\n"
		"                     [--train-tokens N] [--scale F] [--dtype D] [--seed N]\n"
		"       lifsim layout MOE.ini [--expert-layout L] [--router-trace R.h5] -o FILE\n"
		"                     [--scale F] [--dtype D] [--seed N]\n\n"
		"Write the FFN weights of MODEL (models/llms/*.ini) in layout L (%s) to FILE,\n"
		"schema lifsim-weights v2 (sim/real/wfile.h): a 4 KiB header (magic, version, layout,\n"
		"dims, dtype, index of regions), the FFN region exactly as the simulator's layout\n"
		"places it (4 KiB aligned), the neuron order and a checksum per slot.\n"
		"Weights are deterministic synthetic values from --seed, or a checkpoint's.\n"
		"The file is written\n"
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
		"  --dtype D          store as %s (default: the model's)\n"
		"  --seed N           synthetic weights' seed (default 1)\n"
		"  --checkpoint DIR   the FFN weights of a Hugging Face safetensors checkpoint (OPT\n"
		"                     fc1/fc2, Llama up/gate/down_proj) in the model's dtype\n"
		"--layout, --bundle and --train-tokens take the bounds of [sim] layout, bundle\n"
		"and layout_train_tokens, --scale of [validate] scale, --dtype of [model] dtype.\n\n"
		"A mixture-of-experts model (experts > 0) gets an expert file instead (schema\n"
		"lifsim-weights v3): the routed experts of every MoE layer at the byte offsets\n"
		"the simulator costs (sim/core/moe.h), synthetic weights only:\n"
		"  --expert-layout L  expert, matrix or cosel (default expert; as [moe]\n"
		"                     expert_layout)\n"
		"  --router-trace R   the router trace cosel orders experts by (co-selection);\n"
		"                     must be the trace replay and moevalidate use\n",
		conf_names_join(layout_choice, choices, sizeof choices),
		conf_names_join(llm_dtype_choice, dtypes, sizeof dtypes));
}

/* A checkpoint's FFN matrices per layer: OPT fc1 (d_ffn, d_model) and fc2
 * (d_model, d_ffn); Llama up_proj, gate_proj (d_ffn, d_model) and down_proj
 * (d_model, d_ffn). A neuron's up/gate piece is a row, its down piece a
 * column. */
struct ckpt {
	const struct st_tensor *t[LLM_MAX_LAYERS][3]; /* matrix order: up, (gate,) down */
	int d_model, d_ffn, matrices, elem;
};

static void ckpt_piece(void *c, int layer, int matrix, int neuron, void *out, int64_t bytes)
{
	const struct ckpt *k = c;
	const char *data = k->t[layer][matrix]->data;
	if (matrix < k->matrices - 1) {
		memcpy(out, data + (size_t)neuron * k->d_model * k->elem, (size_t)bytes);
		return;
	}
	for (int i = 0; i < k->d_model; i++) /* column `neuron` of down */
		memcpy((char *)out + (size_t)i * k->elem,
		       data + ((size_t)i * k->d_ffn + neuron) * k->elem, (size_t)k->elem);
}

/* Find and check every FFN tensor of m in st. */
static int ckpt_open(struct ckpt *k, const struct st_file *st, const struct llm_desc *m,
		     struct lif_err *err)
{
	static const int st_of[LLM_NDTYPES] = {ST_F32, ST_F16, ST_BF16, -1};
	const int gated = m->ffn_kind == LLM_FFN_GATED3;
	const char *pre[2] = {gated ? "model.layers." : "model.decoder.layers.",
			      gated ? "layers." : "decoder.layers."};
	const char *names[3] = {gated ? "mlp.up_proj" : "fc1", gated ? "mlp.gate_proj" : "fc2",
				"mlp.down_proj"};
	char name[256];
	snprintf(name, sizeof name, "%s0.%s.weight", pre[0], names[0]);
	const char *p = st_find(st, name) ? pre[0] : pre[1];
	*k = (struct ckpt){.d_model = m->d_model, .d_ffn = m->d_ffn, .matrices = m->ffn_matrices,
			   .elem = m->weight_bytes};
	for (int l = 0; l < m->layers; l++)
		for (int j = 0; j < m->ffn_matrices; j++) {
			const int down = j == m->ffn_matrices - 1;
			const char *base = down ? (gated ? names[2] : names[1]) : names[j];
			int64_t shape[2] = {down ? m->d_model : m->d_ffn, down ? m->d_ffn : m->d_model};
			snprintf(name, sizeof name, "%s%d.%s.weight", p, l, base);
			if (!(k->t[l][j] = st_get(st, name, 2, shape, err)))
				return err->code;
			if (k->t[l][j]->dtype != st_of[m->dtype])
				return err_set(err, ERR_INVAL, "%s is %s but the model stores %s: give "
					       "--dtype to match (no conversion)", name,
					       k->t[l][j]->dtype_name, llm_dtype_name(m->dtype));
		}
	return 0;
}

static void progress(void *ctx, int done, int total)
{
	cli_progress(ctx, "layout", done, total);
}

/* Flags that mirror INI keys parse through their rows (NULL: the default). */
#define SIM_FLAG(flag, key, s, field) cli_conf(VERB, flag, sim_opts, "sim", key, s, field)
#define VALIDATE_FLAG(flag, key, s, field) \
	cli_conf(VERB, flag, validate_opts, "validate", key, s, field)

struct largs {
	const char *model, *trace, *out, *checkpoint, *router;
	long long seed;
	double scale;
	int kind, bundle, train, dtype; /* dtype -1: the model's */
	int elayout;                    /* MoE: enum moe_layout */
};

/* Parse the command line into a: -1 to go on, else the exit status. */
static int layout_args(int argc, char **argv, struct largs *a)
{
	static const struct option longopts[] = {
		{"layout", required_argument, 0, 'l'},	 {"trace", required_argument, 0, 't'},
		{"bundle", required_argument, 0, 'b'},	 {"train-tokens", required_argument, 0, 'T'},
		{"scale", required_argument, 0, 's'},	 {"dtype", required_argument, 0, 'd'},
		{"seed", required_argument, 0, 'r'},	 {"checkpoint", required_argument, 0, 'c'},
		{"expert-layout", required_argument, 0, 'E'}, {"router-trace", required_argument, 0, 'R'},
		{"help", no_argument, 0, 'h'},		 {0, 0, 0, 0},
	};
	*a = (struct largs){.seed = 1, .kind = -1, .dtype = -1, .elayout = -1};
	if (SIM_FLAG("--bundle", "bundle", NULL, &a->bundle) ||
	    SIM_FLAG("--train-tokens", "layout_train_tokens", NULL, &a->train) ||
	    VALIDATE_FLAG("--scale", "scale", NULL, &a->scale))
		return 1;
	int c;
	while ((c = cli_getopt(VERB, argc, argv, "ho:", longopts)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 0;
		case '?': return 2;
		case 'l': if (SIM_FLAG("--layout", "layout", optarg, &a->kind)) return 2; break;
		case 't': a->trace = optarg; break;
		case 'o': a->out = optarg; break;
		case 'd':
			if (cli_conf(VERB, "--dtype", llm_opts, "model", "dtype", optarg, &a->dtype))
				return 2;
			break;
		case 'c': a->checkpoint = optarg; break;
		case 'E':
			if (cli_conf(VERB, "--expert-layout", moe_opts, "moe", "expert_layout", optarg,
				     &a->elayout))
				return 2;
			break;
		case 'R': a->router = optarg; break;
		case 'b': if (SIM_FLAG("--bundle", "bundle", optarg, &a->bundle)) return 2; break;
		case 'T': if (SIM_FLAG("--train-tokens", "layout_train_tokens", optarg, &a->train)) return 2; break;
		case 'r': if (cli_int(VERB, "--seed", optarg, 0, 1LL << 62, &a->seed)) return 2; break;
		case 's': if (VALIDATE_FLAG("--scale", "scale", optarg, &a->scale)) return 2; break;
		}
	}
	if (optind != argc - 1 || !a->out)
		return cli_failf(VERB, "expected MODEL.ini, --layout L and -o FILE (see --help)");
	a->model = argv[optind];
	return -1;
}

/* The dense flags' checks (after the model is known to be dense). */
static int dense_args(const struct largs *a)
{
	if (a->elayout >= 0 || a->router)
		return cli_failf(VERB, "--expert-layout and --router-trace are for mixture-of-experts "
				 "models; %s is dense", a->model);
	if (a->kind < 0)
		return cli_failf(VERB, "expected MODEL.ini, --layout L and -o FILE (see --help)");
	if (layout_by_kind(a->kind)->needs_trace && !a->trace)
		return cli_failf(VERB, "layout %s orders neurons by a trace: give --trace T.h5",
				 layout_by_kind(a->kind)->name);
	return -1;
}

/* The model as the file stores it (dtype, scale) and its layout (learnt from
 * the trace t, which the caller frees). */
static int layout_build(const struct largs *a, const char *model, const struct cli_global *g,
			struct llm_desc *m, struct trace **t, struct layout **l, struct lif_err *err)
{
	int rc = llm_load(model, m, err);
	if (!rc && a->dtype >= 0) {
		m->dtype = a->dtype;
		rc = llm_derive(m, model, err);
	}
	if (!rc)
		rc = replay_scale_model(m, a->scale, err);
	if (!rc && a->trace && layout_by_kind(a->kind)->needs_trace &&
	    !(*t = trace_load(a->trace, 0, err)))
		rc = err->code;
	if (!rc && *t && ((*t)->meta.layers != m->layers || (*t)->meta.d_ffn != m->d_ffn))
		rc = err_set(err, ERR_INVAL, "%s: trace is %d layers x %d neurons, the model %d x %d",
			     a->trace, (*t)->meta.layers, (*t)->meta.d_ffn, m->layers, m->d_ffn);
	if (!rc && !(*l = layout_new(a->kind, m, *t, a->bundle, a->train, g->threads, err)))
		rc = err->code;
	return rc;
}

/* Write the file: the checkpoint's weights, or synthetic ones from the seed. */
static int layout_write(const struct largs *a, const struct llm_desc *m, const struct layout *l,
			const struct cli_global *g, struct lif_err *err)
{
	if (!a->checkpoint)
		return wfile_write(a->out, m, l, (uint64_t)a->seed, g->threads,
				   g->progress ? progress : NULL, (void *)g, err);
	struct st_file *st = NULL;
	struct ckpt *ck = NULL;
	int rc = 0;
	if (a->scale != 1)
		rc = err_set(err, ERR_INVAL, "--scale applies to synthetic weights only");
	if (!rc && !(st = st_open(a->checkpoint, err)))
		rc = err->code;
	if (!rc && !(ck = malloc(sizeof *ck)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && ckpt_open(ck, st, m, err)) {
		err_prefix(err, "%s", a->checkpoint);
		rc = err->code;
	}
	struct wfile_source src = {ckpt_piece, ck};
	if (!rc)
		rc = wfile_write_from(a->out, m, l, &src, 0, g->threads, g->progress ? progress : NULL,
				      (void *)g, err);
	free(ck);
	st_close(st);
	return rc;
}

/* An MoE model's expert file (sim/real/wfile.h, version 3). */
static int layout_moe(const struct largs *a, const char *model, const struct cli_global *g,
		      struct lif_err *err)
{
	const int layout = a->elayout < 0 ? MOE_LAYOUT_EXPERT : a->elayout;
	struct llm_desc m;
	struct router_trace *rt = NULL;
	int *slot = NULL;
	int rc = llm_load(model, &m, err);
	if (!rc && a->dtype >= 0) {
		m.dtype = a->dtype;
		rc = llm_derive(&m, model, err);
	}
	if (!rc)
		rc = replay_scale_model(&m, a->scale, err);
	if (!rc && a->router && !(rt = router_load(a->router, err)))
		rc = err->code;
	if (!rc && rt && (rt->meta.experts != m.experts || rt->meta.top_k != m.experts_per_token ||
			  rt->meta.layers != m.moe_layers))
		rc = err_set(err, ERR_INVAL, "%s: router trace of %d MoE layers, top-%d of %d; %s has "
			     "%d, top-%d of %d", a->router, rt->meta.layers, rt->meta.top_k,
			     rt->meta.experts, m.name, m.moe_layers, m.experts_per_token, m.experts);
	if (!rc && !(slot = malloc((size_t)m.moe_layers * m.experts * sizeof *slot)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (int l = 0; !rc && l < m.moe_layers; l++) {
		if (!rt)
			for (int e = 0; e < m.experts; e++)
				slot[(size_t)l * m.experts + e] = e;
		else if (moe_layer_slots(rt, l, layout, slot + (size_t)l * m.experts))
			rc = err_set(err, ERR_NOMEM, "out of memory");
	}
	if (!rc)
		rc = wfile_write_moe(a->out, &m, layout, slot, (uint64_t)a->seed,
				     g->progress ? progress : NULL, (void *)g, err);
	if (!rc && !g->quiet)
		printf("wrote %s: %s, expert layout %s, %d MoE layers x %d experts of %lld bytes, "
		       "d_model %d, %s, %.4g GB of experts\n", a->out, m.name, moe_layout_choice(layout),
		       m.moe_layers, m.experts, (long long)m.expert_bytes, m.d_model,
		       llm_dtype_name(m.dtype), (double)moe_region_bytes(&m) * m.moe_layers / 1e9);
	free(slot);
	router_trace_free(rt);
	return rc;
}

int verb_layout(int argc, char **argv, const struct cli_global *g)
{
	struct largs a;
	int rc = layout_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	char model[PATH_CAP];
	if (!cli_path(VERB, PATH_MODEL, a.model, model, sizeof model))
		return 1;
	struct lif_err err = {0};
	struct llm_desc m;
	int moe = 0;
	if (llm_load(model, &m, &err))
		return cli_fail(VERB, &err);
	moe = llm_is_moe(&m);
	if (moe && (a.kind >= 0 || a.trace || a.checkpoint || a.bundle != 1))
		return cli_failf(VERB, "%s is a mixture-of-experts model: --layout, --trace, --bundle "
				 "and --checkpoint are for dense models (give --expert-layout and, for "
				 "cosel, --router-trace)", a.model);
	if (moe && a.elayout == MOE_LAYOUT_COSEL && !a.router)
		return cli_failf(VERB, "expert layout cosel orders experts by co-selection: give "
				 "--router-trace R.h5");
	if (moe)
		return layout_moe(&a, model, g, &err) ? cli_fail(VERB, &err) : 0;
	if ((rc = dense_args(&a)) >= 0)
		return rc;
	struct trace *t = NULL;
	struct layout *l = NULL;
	rc = layout_build(&a, model, g, &m, &t, &l, &err);
	if (!rc)
		rc = layout_write(&a, &m, l, g, &err);
	if (!rc && !g->quiet)
		printf("wrote %s: %s, layout %s, %d layers x %d neurons, d_model %d, %s, %.4g GB of FFN\n",
		       a.out, m.name, layout_by_kind(a.kind)->name, m.layers, m.d_ffn, m.d_model,
		       llm_dtype_name(m.dtype), m.ffn_bytes / 1e9);
	layout_free(l);
	trace_free(t);
	return rc ? cli_fail(VERB, &err) : 0;
}
