/* lifsim layout: write a weight file for a model in a layout (sim/real/wfile.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/real/replay.h"
#include "sim/cli/verbs.h"
#include "sim/real/wfile.h"
#include "traces/record/safetensors.h"

#define VERB "layout"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lifsim layout MODEL.ini --layout L -o FILE [--trace T.h5] [--bundle N]\n"
		"                     [--train-tokens N] [--scale F] [--dtype D] [--seed N]\n\n"
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
		"  --dtype D          store as fp32|fp16|bf16|int8 (default: the model's)\n"
		"  --seed N           synthetic weights' seed (default 1)\n"
		"  --checkpoint DIR   the FFN weights of a Hugging Face safetensors checkpoint (OPT\n"
		"                     fc1/fc2, Llama up/gate/down_proj) in the model's dtype\n",
		LAYOUT_CHOICES);
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

int verb_layout(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"layout", required_argument, 0, 'l'},	 {"trace", required_argument, 0, 't'},
		{"bundle", required_argument, 0, 'b'},	 {"train-tokens", required_argument, 0, 'T'},
		{"scale", required_argument, 0, 's'},	 {"dtype", required_argument, 0, 'd'},
		{"seed", required_argument, 0, 'r'},	 {"checkpoint", required_argument, 0, 'c'},
		{"help", no_argument, 0, 'h'},		 {0, 0, 0, 0},
	};
	const char *layout = NULL, *trace = NULL, *out = NULL, *dtype = NULL, *checkpoint = NULL;
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
		case 'c': checkpoint = optarg; break;
		case 'b': if (cli_int(VERB, "--bundle", optarg, 1, 1 << 20, &bundle)) return 2; break;
		case 'T': if (cli_int(VERB, "--train-tokens", optarg, 1, 1 << 30, &train)) return 2; break;
		case 'r': if (cli_int(VERB, "--seed", optarg, 0, 1LL << 62, &seed)) return 2; break;
		case 's': if (cli_double(VERB, "--scale", optarg, 1e-6, 1, &scale)) return 2; break;
		}
	}
	if (optind != argc - 1 || !layout || !out)
		return cli_failf(VERB, "expected MODEL.ini, --layout L and -o FILE (see --help)");
	const struct layout_ops *ops = layout_find(layout);
	if (!ops)
		return cli_failf(VERB, "--layout: unknown layout '%s' (choices: %s)", layout,
				 LAYOUT_CHOICES);
	if (ops->needs_trace && !trace)
		return cli_failf(VERB, "layout %s orders neurons by a trace: give --trace T.h5", layout);
	struct lif_err err = {0};
	struct llm_desc m;
	struct trace *t = NULL;
	struct layout *l = NULL;
	char model[PATH_CAP];
	if (!cli_path(VERB, PATH_MODEL, argv[optind], model, sizeof model))
		return 1;
	int rc = llm_load(model, &m, &err);
	if (!rc && dtype) {
		int d = 0;
		while (d < LLM_NDTYPES && strcmp(llm_dtype_name(d), dtype))
			d++;
		if (d == LLM_NDTYPES)
			rc = err_set(&err, ERR_INVAL, "--dtype: unknown dtype '%s'", dtype);
		m.dtype = d;
		if (!rc)
			rc = llm_derive(&m, model, &err);
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
	struct st_file *st = NULL;
	struct ckpt *ck = NULL;
	if (!rc && checkpoint && scale != 1)
		rc = err_set(&err, ERR_INVAL, "--scale applies to synthetic weights only");
	if (!rc && checkpoint && !(st = st_open(checkpoint, &err)))
		rc = err.code;
	if (!rc && checkpoint && !(ck = malloc(sizeof *ck)))
		rc = err_set(&err, ERR_NOMEM, "out of memory");
	if (!rc && checkpoint && ckpt_open(ck, st, &m, &err)) {
		err_prefix(&err, "%s", checkpoint);
		rc = err.code;
	}
	struct wfile_source src = {ckpt_piece, ck};
	if (!rc && checkpoint)
		rc = wfile_write_from(out, &m, l, &src, 0, g->threads, g->progress ? progress : NULL,
				      (void *)g, &err);
	else if (!rc)
		rc = wfile_write(out, &m, l, (uint64_t)seed, g->threads, g->progress ? progress : NULL,
				 (void *)g, &err);
	free(ck);
	st_close(st);
	if (!rc && !g->quiet)
		printf("wrote %s: %s, layout %s, %d layers x %d neurons, d_model %d, %s, %.4g GB of FFN\n",
		       out, m.name, ops->name, m.layers, m.d_ffn, m.d_model, llm_dtype_name(m.dtype),
		       m.ffn_bytes / 1e9);
	layout_free(l);
	trace_free(t);
	return rc ? cli_fail(VERB, &err) : 0;
}
