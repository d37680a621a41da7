/* lifsim predictor: train and evaluate low-rank activation predictors
 * (traces/predictor/predictor.h, traces/predictor/PREDICTOR.md). */
#include <errno.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/base/atomic.h"
#include "sim/cli/verbs.h"
#include "traces/predictor/predictor.h"
#include "traces/trace.h"

#define VERB "predictor"

/* OpenBLAS's own thread count (cblas.h of OpenBLAS clashes with GSL's). */
void openblas_set_num_threads(int n);

static const char *help_text =
	"usage: lifsim predictor train TRACE.h5 --rank R [--layers LIST] [--holdout F]\n"
	"                          [--epochs N] [--batch N] [--lr X] [--seed S] -o PRED.h5\n"
	"       lifsim predictor eval PRED.h5 TRACE.h5 [--holdout F] [-o EVAL.csv]\n\n"
	"Low-rank activation predictors (arXiv 2312.11514, sec. 3.1), one per FFN layer:\n"
	"neuron i is predicted active when sigmoid(((x A) B + c)_i) > 0.5, x the layer's\n"
	"FFN input, A (d_model, R), B (R, d_ffn). Trained on the trace's ffn_inputs and\n"
	"active sets with a balanced loss (each class of each neuron weighs half);\n"
	"initialised by reduced-rank least squares, refined by Adam. Format:\n"
	"traces/predictor/PREDICTOR.md.\n\n"
	"train options:\n"
	"  --rank R       rank of each predictor (required; <= d_model)\n"
	"  --layers LIST  layers to train, e.g. 0,2,5-7 (default: all)\n"
	"  --holdout F    last fraction of tokens not trained on (default 0.2)\n"
	"  --epochs N     Adam passes over the training tokens (default 20; 0: LS only)\n"
	"  --batch N      minibatch tokens (default 256)\n"
	"  --lr X         Adam learning rate (default 0.01)\n"
	"  --seed S       minibatch order seed (default 1); results do not depend on --threads\n"
	"  -o PRED.h5     output file (required)\n\n"
	"eval options:\n"
	"  --holdout F    held-out fraction (default: what training held out; 1 = all tokens)\n"
	"  -o EVAL.csv    per-layer, per-split rates as CSV (default: summary only)\n";

static void progress_cb(void *ctx, long long done, long long total)
{
	cli_progress(ctx, "predictor train", done, total);
}

struct train_args {
	const char *trace, *out, *layers;
	struct predictor_train_opts o;
};

static int parse_train(int argc, char **argv, struct train_args *a)
{
	static const struct option lo[] = {
		{"rank", 1, 0, 'r'}, {"layers", 1, 0, 'l'}, {"holdout", 1, 0, 'H'},
		{"epochs", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'L'},
		{"seed", 1, 0, 's'}, {"help", 0, 0, 'h'}, {0}};
	long long v;
	int c, have_rank = 0;
	predictor_train_opts_default(&a->o);
	a->o.seed = 1;
	while ((c = cli_getopt(VERB, argc, argv, "o:h", lo)) != -1) {
		switch (c) {
		case 'r':
			if (cli_int(VERB, "--rank", optarg, 1, PREDICTOR_MAX_RANK, &v))
				return CLI_EXIT_USAGE;
			a->o.rank = (int)v, have_rank = 1;
			break;
		case 'l': a->layers = optarg; break;
		case 'H':
			if (cli_double(VERB, "--holdout", optarg, 0, 0.99, &a->o.holdout))
				return CLI_EXIT_USAGE;
			break;
		case 'e':
			if (cli_int(VERB, "--epochs", optarg, 0, 100000, &v))
				return CLI_EXIT_USAGE;
			a->o.epochs = (int)v;
			break;
		case 'b':
			if (cli_int(VERB, "--batch", optarg, 1, 1 << 20, &v))
				return CLI_EXIT_USAGE;
			a->o.batch_tokens = (int)v;
			break;
		case 'L':
			if (cli_double(VERB, "--lr", optarg, 1e-9, 10, &a->o.lr))
				return CLI_EXIT_USAGE;
			break;
		case 's':
			if (cli_int(VERB, "--seed", optarg, 0, INT64_MAX, &v))
				return CLI_EXIT_USAGE;
			a->o.seed = (uint64_t)v;
			break;
		case 'o': a->out = optarg; break;
		case 'h': fputs(help_text, stdout); return -1;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return cli_failf(VERB, "train needs exactly one TRACE.h5 (see lifsim predictor --help)");
	a->trace = argv[optind];
	if (!have_rank)
		return cli_failf(VERB, "train needs --rank R");
	if (!a->out)
		return cli_failf(VERB, "train needs -o PRED.h5");
	return 0;
}

static void print_train_summary(const struct predictor *p, const struct trace *t,
				const char *out)
{
	struct predictor_info in;
	predictor_get_info(p, &in);
	printf("predictor: %d layers x rank %d (d_model %d, d_ffn %d), trained on %lld of %lld "
	       "tokens -> %s\n", in.ntrained, in.rank, in.d_model, in.d_ffn,
	       (long long)in.train_tokens, (long long)t->meta.tokens, out);
}

static int run_train(int argc, char **argv, const struct cli_global *g)
{
	struct train_args a = {0};
	int rc = parse_train(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	struct lif_err err = {0};
	struct trace *t = trace_load(a.trace, TRACE_LOAD_INPUTS, &err);
	if (!t)
		return cli_fail(VERB, &err);
	int *layers = malloc(sizeof *layers * t->meta.layers), n = 0;
	struct predictor *p = NULL;
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!layers || !rng)
		rc = err_set(&err, ERR_NOMEM, "out of memory");
	if (!rc && a.layers && !(rc = predictor_parse_layers(a.layers, t->meta.layers, layers, &n, &err)))
		a.o.layers = layers, a.o.nlayers = n;
	if (!rc) {
		gsl_rng_set(rng, (unsigned long)a.o.seed);
		a.o.trace_path = a.trace;
		a.o.threads = g->threads;
		/* threads go to layers; one-thread BLAS keeps results independent of --threads */
		openblas_set_num_threads(1);
		a.o.progress = progress_cb, a.o.progress_ctx = (void *)g;
		rc = predictor_train(t, &a.o, rng, &p, &err);
		if (rc)
			err_prefix(&err, "%s", a.trace);
	}
	if (!rc)
		rc = predictor_save(p, a.out, &err);
	if (!rc && !g->quiet)
		print_train_summary(p, t, a.out);
	predictor_free(p);
	gsl_rng_free(rng);
	free(layers);
	trace_free(t);
	return rc ? cli_fail(VERB, &err) : 0;
}

/* ---- eval ---- */

static int write_csv(const char *path, const struct predictor_eval_row *r, int n,
		     struct lif_err *err)
{
	struct atomic_file af;
	if (atomic_open(&af, path, err))
		return err->code;
	FILE *f = af.fp;
	fprintf(f, "layer,split,tokens,true_active_frac,pred_active_frac,recall,precision,"
		   "fn_rate,fp_rate,tp,fp,fn,tn\n");
	for (int i = 0; i < n; i++)
		fprintf(f, "%d,%s,%lld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%lld,%lld,%lld,%lld\n", r[i].layer,
			r[i].split ? "holdout" : "train", (long long)r[i].tokens, r[i].true_active,
			r[i].pred_active, r[i].recall, r[i].precision, r[i].fn_rate, r[i].fp_rate,
			(long long)r[i].tp, (long long)r[i].fp, (long long)r[i].fn, (long long)r[i].tn);
	return atomic_commit(&af, err);
}

static void print_eval_summary(const struct predictor_eval_row *r, int n)
{
	double rec = 0, prec = 0, fpr = 0;
	int m = 0;
	printf("%5s %8s %7s %9s %9s %9s %9s %9s\n", "layer", "split", "tokens", "active",
	       "predicted", "recall", "precision", "fp_rate");
	for (int i = 0; i < n; i++) {
		printf("%5d %8s %7lld %9.4f %9.4f %9.4f %9.4f %9.4f\n", r[i].layer,
		       r[i].split ? "holdout" : "train", (long long)r[i].tokens, r[i].true_active,
		       r[i].pred_active, r[i].recall, r[i].precision, r[i].fp_rate);
		if (r[i].split && isfinite(r[i].recall) && isfinite(r[i].precision))
			rec += r[i].recall, prec += r[i].precision, fpr += r[i].fp_rate, m++;
	}
	if (m)
		printf("held-out mean over %d layers: recall %.4f, precision %.4f, fn_rate %.4f, "
		       "fp_rate %.4f\n", m, rec / m, prec / m, 1 - rec / m, fpr / m);
}

static int parse_eval(int argc, char **argv, const char **pred, const char **trace,
		      double *holdout, const char **out)
{
	static const struct option lo[] = {{"holdout", 1, 0, 'H'}, {"help", 0, 0, 'h'}, {0}};
	int c;
	while ((c = cli_getopt(VERB, argc, argv, "o:h", lo)) != -1) {
		switch (c) {
		case 'H':
			if (cli_double(VERB, "--holdout", optarg, 1e-9, 1, holdout))
				return CLI_EXIT_USAGE;
			break;
		case 'o': *out = optarg; break;
		case 'h': fputs(help_text, stdout); return -1;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 2)
		return cli_failf(VERB, "eval needs PRED.h5 and TRACE.h5 (see lifsim predictor --help)");
	*pred = argv[optind], *trace = argv[optind + 1];
	return 0;
}

static int run_eval(int argc, char **argv, const struct cli_global *g)
{
	const char *pred = NULL, *trace = NULL, *out = NULL;
	double holdout = 0;
	int rc = parse_eval(argc, argv, &pred, &trace, &holdout, &out);
	if (rc)
		return rc < 0 ? 0 : rc;
	struct lif_err err = {0};
	struct predictor *p = predictor_load(pred, &err);
	struct trace *t = p ? trace_load(trace, TRACE_LOAD_INPUTS, &err) : NULL;
	struct predictor_eval_row *rows = NULL;
	int n = 0;
	if (!t)
		rc = err.code ? err.code : ERR_FORMAT;
	if (!rc && !holdout) {
		struct predictor_info in;
		predictor_get_info(p, &in);
		holdout = in.holdout > 0 ? in.holdout : 1;
	}
	if (!rc && !(rows = calloc(2 * (size_t)t->meta.layers, sizeof *rows)))
		rc = err_set(&err, ERR_NOMEM, "out of memory");
	if (!rc && (rc = predictor_eval(p, t, holdout, rows, &n, &err)))
		err_prefix(&err, "%s with %s", pred, trace);
	if (!rc && out)
		rc = write_csv(out, rows, n, &err);
	if (!rc && !g->quiet)
		print_eval_summary(rows, n);
	free(rows);
	trace_free(t);
	predictor_free(p);
	return rc ? cli_fail(VERB, &err) : 0;
}

int verb_predictor(int argc, char **argv, const struct cli_global *g)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(help_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "train"))
		return run_train(argc - 1, argv + 1, g);
	if (!strcmp(argv[1], "eval"))
		return run_eval(argc - 1, argv + 1, g);
	return cli_failf(VERB, "unknown subcommand '%s' (train or eval)", argv[1]);
}
