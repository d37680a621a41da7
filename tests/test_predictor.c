#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "traces/predictor/predictor.h"
#include "traces/trace.h"

#define LAYERS 2
#define D_MODEL 32
#define D_FFN 100 /* not a multiple of 8: padding bits are exercised */
#define TRUE_RANK 4
#define TOKENS 1600

/* Write a trace whose active sets are a known rank-4 function of the inputs
 * plus noise: neuron i of layer l is active when
 *   (x U_l V_l)_i - 1.0 + noise > 0,  x ~ N(0, I), noise ~ N(0, noise_sd^2),
 * U (32, 4) and V (4, 100) N(0, 1/4) entries, so the signal has unit scale and
 * about 16% of neurons fire. */
static const char *write_lowrank_trace(const char *name, double noise_sd, int with_inputs)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, 7);
	static double U[LAYERS][D_MODEL][TRUE_RANK], V[LAYERS][TRUE_RANK][D_FFN];
	for (int l = 0; l < LAYERS; l++) {
		for (int i = 0; i < D_MODEL; i++)
			for (int k = 0; k < TRUE_RANK; k++)
				U[l][i][k] = gsl_ran_gaussian(r, 1.0) / sqrt(D_MODEL);
		for (int k = 0; k < TRUE_RANK; k++)
			for (int j = 0; j < D_FFN; j++)
				V[l][k][j] = gsl_ran_gaussian(r, 1.0) / sqrt(TRUE_RANK) * 2;
	}
	struct trace_meta m = {.layers = LAYERS, .d_ffn = D_FFN, .d_model = D_MODEL,
			       .source = TRACE_SOURCE_RECORDED, .has = with_inputs ? TRACE_HAS_INPUTS : 0};
	snprintf(m.model, sizeof m.model, "lowrank-test");
	const char *path = tu_path(name);
	struct lif_err e = {0};
	struct trace_writer *w = trace_writer_open(path, &m, 0, &e);
	cr_assert(w, "%s", e.msg);
	int rb = trace_row_bytes(D_FFN);
	for (int t = 0; t < TOKENS; t++) {
		uint8_t bits[LAYERS * 13] = {0};
		float x[LAYERS * D_MODEL];
		for (int l = 0; l < LAYERS; l++) {
			double h[TRUE_RANK] = {0};
			for (int i = 0; i < D_MODEL; i++) {
				x[l * D_MODEL + i] = (float)(gsl_ran_gaussian(r, 1.0) + 0.3);
				for (int k = 0; k < TRUE_RANK; k++)
					h[k] += (x[l * D_MODEL + i] - 0.3) * U[l][i][k];
			}
			for (int j = 0; j < D_FFN; j++) {
				double z = -1.0 + gsl_ran_gaussian(r, noise_sd);
				for (int k = 0; k < TRUE_RANK; k++)
					z += h[k] * V[l][k][j];
				if (z > 0)
					trace_set_bit(bits + l * rb, j);
			}
		}
		cr_assert_eq(trace_writer_append(w, t % 256, bits, NULL, with_inputs ? x : NULL, &e), 0,
			     "%s", e.msg);
	}
	cr_assert_eq(trace_writer_close(w, &e), 0, "%s", e.msg);
	gsl_rng_free(r);
	return path;
}

static struct predictor *train(const struct trace *t, int rank, const int *layers, int nl,
			       uint64_t seed)
{
	struct predictor_train_opts o;
	predictor_train_opts_default(&o);
	o.rank = rank, o.holdout = 0.25, o.layers = layers, o.nlayers = nl, o.seed = seed;
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, seed);
	struct predictor *p = NULL;
	struct lif_err e = {0};
	cr_assert_eq(predictor_train(t, &o, r, &p, &e), 0, "%s", e.msg);
	gsl_rng_free(r);
	return p;
}

static struct trace *load(const char *path)
{
	struct lif_err e = {0};
	struct trace *t = trace_load(path, TRACE_LOAD_INPUTS, &e);
	cr_assert(t, "%s", e.msg);
	return t;
}

TestSuite(predictor, .init = tu_init);

Test(predictor, learns_a_noisy_low_rank_rule_on_held_out_tokens)
{
	struct trace *t = load(write_lowrank_trace("lr.h5", 0.1, 1));
	struct predictor *p = train(t, TRUE_RANK, NULL, 0, 1);
	struct predictor_eval_row rows[2 * LAYERS];
	int n = 0;
	struct lif_err e = {0};
	cr_assert_eq(predictor_eval(p, t, 0.25, rows, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 2 * LAYERS);
	for (int i = 0; i < n; i++) {
		cr_expect_eq(rows[i].tokens, rows[i].split ? TOKENS / 4 : TOKENS - TOKENS / 4);
		cr_expect_eq(rows[i].tp + rows[i].fp + rows[i].fn + rows[i].tn,
			     rows[i].tokens * D_FFN);
		cr_expect(rows[i].true_active > 0.05 && rows[i].true_active < 0.4, "active %g",
			  rows[i].true_active);
		/* noise sd 0.1 against a unit-scale signal: only near-threshold
		 * neurons can be mispredicted */
		cr_expect_geq(rows[i].recall, 0.95, "layer %d split %d recall %g", rows[i].layer,
			      rows[i].split, rows[i].recall);
		cr_expect_leq(rows[i].fp_rate, 0.04, "layer %d split %d fp_rate %g", rows[i].layer,
			      rows[i].split, rows[i].fp_rate);
		cr_expect_float_eq(rows[i].fn_rate, 1 - rows[i].recall, 1e-12);
	}
	predictor_free(p);
	trace_free(t);
}

Test(predictor, a_lower_rank_than_the_rule_predicts_worse)
{
	struct trace *t = load(write_lowrank_trace("lr.h5", 0.1, 1));
	struct predictor *p1 = train(t, 1, NULL, 0, 1), *p4 = train(t, TRUE_RANK, NULL, 0, 1);
	struct predictor_eval_row r1[2 * LAYERS], r4[2 * LAYERS];
	int n1, n4;
	struct lif_err e = {0};
	cr_assert_eq(predictor_eval(p1, t, 0.25, r1, &n1, &e), 0, "%s", e.msg);
	cr_assert_eq(predictor_eval(p4, t, 0.25, r4, &n4, &e), 0, "%s", e.msg);
	for (int i = 0; i < n1; i++)
		cr_expect_lt(r4[i].fn + r4[i].fp, r1[i].fn + r1[i].fp, "layer %d", r1[i].layer);
	predictor_free(p1);
	predictor_free(p4);
	trace_free(t);
}

/* bits of every token of layer l predicted by p */
static uint8_t *predict_all(const struct predictor *p, const struct trace *t, int l)
{
	uint8_t *b = calloc(TOKENS, trace_row_bytes(D_FFN));
	for (int i = 0; i < TOKENS; i++)
		cr_assert_eq(predictor_apply(p, l, t->inputs + ((size_t)l * TOKENS + i) * D_MODEL,
					     b + i * trace_row_bytes(D_FFN)), 0);
	return b;
}

Test(predictor, same_seed_same_predictions_and_save_load_round_trips)
{
	struct trace *t = load(write_lowrank_trace("lr.h5", 0.3, 1));
	struct predictor *a = train(t, 3, NULL, 0, 42), *b = train(t, 3, NULL, 0, 42);
	struct lif_err e = {0};
	cr_assert_eq(predictor_save(a, tu_path("a.h5"), &e), 0, "%s", e.msg);
	cr_expect_neq(access(tu_path("a.h5.tmp"), F_OK), 0, "temporary file left behind");
	struct predictor *c = predictor_load(tu_path("a.h5"), &e);
	cr_assert(c, "%s", e.msg);
	struct predictor_info in;
	predictor_get_info(c, &in);
	cr_expect_eq(in.rank, 3);
	cr_expect_eq(in.ntrained, LAYERS);
	cr_expect_eq(in.train_tokens, TOKENS - TOKENS / 4);
	cr_expect_eq(in.seed, 42);
	cr_expect_str_eq(in.model, "lowrank-test");
	size_t nb = (size_t)TOKENS * trace_row_bytes(D_FFN);
	for (int l = 0; l < LAYERS; l++) {
		uint8_t *pa = predict_all(a, t, l), *pb = predict_all(b, t, l), *pc = predict_all(c, t, l);
		cr_expect_eq(memcmp(pa, pb, nb), 0, "layer %d: same seed, different predictions", l);
		cr_expect_eq(memcmp(pa, pc, nb), 0, "layer %d: predictions changed by save/load", l);
		for (int i = 0; i < TOKENS; i++) /* padding bits past d_ffn stay zero */
			cr_expect_eq(pa[i * 13 + 12] & 0xF0, 0);
		free(pa), free(pb), free(pc);
	}
	predictor_free(a);
	predictor_free(b);
	predictor_free(c);
	trace_free(t);
}

Test(predictor, only_listed_layers_are_trained)
{
	struct trace *t = load(write_lowrank_trace("lr.h5", 0.1, 1));
	int layers[] = {1};
	struct predictor *p = train(t, 2, layers, 1, 1);
	uint8_t bits[13];
	cr_expect_not(predictor_has_layer(p, 0));
	cr_expect(predictor_has_layer(p, 1));
	cr_expect_eq(predictor_apply(p, 0, t->inputs, bits), ERR_RANGE);
	cr_expect_eq(predictor_apply(p, 1, t->inputs + TOKENS * D_MODEL, bits), 0);
	cr_expect_eq(predictor_apply(p, LAYERS, t->inputs, bits), ERR_RANGE);
	struct predictor_eval_row rows[2 * LAYERS];
	int n;
	struct lif_err e = {0};
	cr_assert_eq(predictor_eval(p, t, 0.25, rows, &n, &e), 0, "%s", e.msg);
	cr_expect_eq(n, 2);
	cr_expect_eq(rows[0].layer, 1);
	predictor_free(p);
	trace_free(t);
}

/* ---- layer lists ---- */

struct layer_case {
	char text[32];
	int ok;
	int n;
	int first, last;
	char want[64];
};

static struct layer_case layer_cases[] = {
	{"0,2,5-7", 1, 5, 0, 7, ""},
	{"3", 1, 1, 3, 3, ""},
	{"7-7,1,1", 1, 2, 1, 7, ""},
	{"8", 0, 0, 0, 0, "is not within [0, 8)"},
	{"2-1", 0, 0, 0, 0, "is not within [0, 8)"},
	{"a", 0, 0, 0, 0, "expected a number"},
	{"1;2", 0, 0, 0, 0, "unexpected ';'"},
	{"", 0, 0, 0, 0, "is empty"},
};

ParameterizedTestParameters(predictor, layer_lists_parse_or_say_what_is_wrong)
{
	return cr_make_param_array(struct layer_case, layer_cases,
				   sizeof layer_cases / sizeof layer_cases[0]);
}

ParameterizedTest(struct layer_case *c, predictor, layer_lists_parse_or_say_what_is_wrong)
{
	int out[8], n = 0;
	struct lif_err e = {0};
	int rc = predictor_parse_layers(c->text, 8, out, &n, &e);
	if (c->ok) {
		cr_assert_eq(rc, 0, "%s", e.msg);
		cr_expect_eq(n, c->n);
		cr_expect_eq(out[0], c->first);
		cr_expect_eq(out[n - 1], c->last);
	} else {
		cr_expect_neq(rc, 0);
		cr_expect(strstr(e.msg, c->want), "message '%s' lacks '%s'", e.msg, c->want);
	}
}

/* ---- the command ---- */

Test(predictor, cli_train_and_eval_write_files_and_a_summary)
{
	const char *tr = write_lowrank_trace("lr.h5", 0.1, 1);
	char out[8192];
	int rc = tu_lifsim(out, sizeof out, "predictor train %s --rank 4 --holdout 0.25 --seed 3 -o %s",
			   tr, tu_path("p.h5"));
	cr_assert_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "2 layers x rank 4"), "%s", out);
	rc = tu_lifsim(out, sizeof out, "predictor eval %s %s -o %s", tu_path("p.h5"), tr,
		       tu_path("e.csv"));
	cr_assert_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "held-out mean over 2 layers: recall 0.9"), "%s", out);
	FILE *f = fopen(tu_path("e.csv"), "r");
	cr_assert(f);
	char line[512];
	int lines = 0, holdout_rows = 0;
	cr_assert(fgets(line, sizeof line, f));
	cr_expect(!strncmp(line, "layer,split,tokens,true_active_frac,pred_active_frac,recall,"
			   "precision,fn_rate,fp_rate", 80), "%s", line);
	while (fgets(line, sizeof line, f)) {
		lines++;
		int layer;
		long long tokens;
		char split[16];
		cr_expect_eq(sscanf(line, "%d,%15[a-z],%lld", &layer, split, &tokens), 3, "%s", line);
		if (!strcmp(split, "holdout")) {
			holdout_rows++;
			cr_expect_eq(tokens, TOKENS / 4, "eval defaults to the training holdout");
		}
	}
	fclose(f);
	cr_expect_eq(lines, 2 * LAYERS);
	cr_expect_eq(holdout_rows, LAYERS);
	/* --holdout 1 evaluates every token as held out */
	rc = tu_lifsim(out, sizeof out, "predictor eval %s %s --holdout 1", tu_path("p.h5"), tr);
	cr_assert_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "holdout    1600"), "%s", out);
	cr_expect_not(strstr(out, "train"), "%s", out);
}

struct cli_case {
	char args[160]; /* {T}: good trace, {N}: trace without inputs, {D}: tmp dir */
	char want[160];
};

static struct cli_case cli_cases[] = {
	{"predictor", "usage: lifsim predictor train"},
	{"predictor fit {T}", "unknown subcommand 'fit'"},
	{"predictor train {T} -o {D}/p.h5", "train needs --rank R"},
	{"predictor train {T} --rank 4", "train needs -o PRED.h5"},
	{"predictor train {T} --rank 0 -o {D}/p.h5", "--rank: '0' is not an integer"},
	{"predictor train {T} --rank 33 -o {D}/p.h5", "rank 33 outside [1, 32]"},
	{"predictor train {T} --rank 4 --layers 2 -o {D}/p.h5", "layer list '2': 2-2 is not within [0, 2)"},
	{"predictor train {T} --rank 4 --holdout 1.5 -o {D}/p.h5", "--holdout: '1.5' is not a number"},
	{"predictor train {N} --rank 4 -o {D}/p.h5", "has no ffn_inputs dataset"},
	{"predictor train {D}/none.h5 --rank 4 -o {D}/p.h5", "none.h5: cannot open"},
	{"predictor train {T} --rank 4 --bogus -o {D}/p.h5", "unknown option '--bogus'"},
	{"predictor eval {D}/none.h5 {T}", "none.h5: cannot open"},
	{"predictor eval {T} {T}", "not a lifsim predictor (schema attribute is not 'lifsim-predictor')"},
	{"predictor eval {D}/p.h5", "eval needs PRED.h5 and TRACE.h5"},
};

/* Replace {T}, {N} and {D} in tmpl. */
static void expand(char *out, size_t cap, const char *tmpl, const char *t, const char *n,
		   const char *d)
{
	size_t o = 0;
	for (const char *s = tmpl; *s && o + 1 < cap; s++) {
		const char *v = NULL;
		if (s[0] == '{' && s[1] && s[2] == '}')
			v = s[1] == 'T' ? t : s[1] == 'N' ? n : s[1] == 'D' ? d : NULL;
		if (v) {
			o += snprintf(out + o, cap - o, "%s", v);
			s += 2;
		} else {
			out[o++] = *s;
		}
	}
	out[o < cap ? o : cap - 1] = '\0';
}

ParameterizedTestParameters(predictor, cli_errors_are_clear_and_leave_no_output)
{
	return cr_make_param_array(struct cli_case, cli_cases, sizeof cli_cases / sizeof cli_cases[0]);
}

ParameterizedTest(struct cli_case *c, predictor, cli_errors_are_clear_and_leave_no_output,
		  .init = tu_init)
{
	const char *good = write_lowrank_trace("good.h5", 0.1, 1);
	char g[4096], ni[4096], args[8192], out[8192];
	snprintf(g, sizeof g, "%s", good);
	snprintf(ni, sizeof ni, "%s", write_lowrank_trace("noinputs.h5", 0.1, 0));
	expand(args, sizeof args, c->args, g, ni, tu_tmpdir());
	int rc = tu_lifsim(out, sizeof out, "%s", args);
	cr_expect_neq(rc, 0, "%s", out);
	cr_expect(strstr(out, c->want), "output '%s' lacks '%s'", out, c->want);
	cr_expect_neq(access(tu_path("p.h5"), F_OK), 0, "output written despite the error");
	cr_expect_neq(access(tu_path("p.h5.tmp"), F_OK), 0, "temporary file left behind");
}

/* ---- bad predictor files ---- */

enum corruption { C_TEXT, C_TRUNCATED, C_VERSION, C_SHAPE, C_NAN, C_LAYER_IDS, C_NO_B };

struct file_case {
	int what;
	char want[128];
};

static struct file_case file_cases[] = {
	{C_TEXT, "bad.h5: not an HDF5 file, or truncated"},
	{C_TRUNCATED, "bad.h5: "},
	{C_VERSION, "bad.h5: predictor schema version 3, this lifsim reads 1 to 2"},
	{C_SHAPE, "bad.h5: dataset 'A' does not have the expected type and shape [2,32,4]"},
	{C_NAN, "bad.h5: dataset 'c' holds a non-finite value"},
	{C_LAYER_IDS, "bad.h5: layer_ids must be ascending ids in [0, 2)"},
	{C_NO_B, "bad.h5: dataset 'B' is missing"},
};

static void corrupt(const char *path, int what)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	cr_assert_geq(f, 0);
	if (what == C_VERSION) {
		int v = 3;
		hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
		H5Awrite(a, H5T_NATIVE_INT, &v);
		H5Aclose(a);
	} else if (what == C_SHAPE || what == C_NO_B) {
		H5Ldelete(f, what == C_SHAPE ? "A" : "B", H5P_DEFAULT);
		if (what == C_SHAPE) {
			hsize_t d[3] = {2, 4, 32};
			hid_t sp = H5Screate_simple(3, d, NULL);
			H5Dclose(H5Dcreate2(f, "A", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
					    H5P_DEFAULT));
			H5Sclose(sp);
		}
	} else if (what == C_NAN || what == C_LAYER_IDS) {
		hid_t d = H5Dopen2(f, what == C_NAN ? "c" : "layer_ids", H5P_DEFAULT);
		hid_t sp = H5Dget_space(d);
		hsize_t one = 1, at[2] = {1, 5};
		H5Sselect_elements(sp, H5S_SELECT_SET, 1, at);
		hid_t ms = H5Screate_simple(1, &one, NULL);
		float nan = NAN;
		int zero = 0;
		if (what == C_NAN)
			H5Dwrite(d, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, &nan);
		else {
			H5Sselect_elements(sp, H5S_SELECT_SET, 1, at);
			H5Dwrite(d, H5T_NATIVE_INT, ms, sp, H5P_DEFAULT, &zero);
		}
		H5Sclose(ms);
		H5Sclose(sp);
		H5Dclose(d);
	}
	H5Fclose(f);
}

ParameterizedTestParameters(predictor, bad_predictor_files_are_rejected_by_name)
{
	return cr_make_param_array(struct file_case, file_cases,
				   sizeof file_cases / sizeof file_cases[0]);
}

ParameterizedTest(struct file_case *c, predictor, bad_predictor_files_are_rejected_by_name,
		  .init = tu_init)
{
	const char *bad = tu_path("bad.h5");
	struct lif_err e = {0};
	if (c->what == C_TEXT) {
		tu_write("bad.h5", "this is not a predictor\n");
	} else {
		struct trace *t = load(write_lowrank_trace("lr.h5", 0.1, 1));
		struct predictor *p = train(t, TRUE_RANK, NULL, 0, 1);
		cr_assert_eq(predictor_save(p, bad, &e), 0, "%s", e.msg);
		predictor_free(p);
		trace_free(t);
		if (c->what == C_TRUNCATED)
			cr_assert_eq(truncate(bad, 3000), 0);
		else
			corrupt(bad, c->what);
	}
	struct predictor *p = predictor_load(bad, &e);
	cr_expect_null(p);
	cr_expect(strstr(e.msg, c->want), "message '%s' lacks '%s'", e.msg, c->want);
	predictor_free(p);
}

Test(predictor, eval_rejects_a_trace_of_another_shape)
{
	struct trace *t = load(write_lowrank_trace("lr.h5", 0.1, 1));
	struct predictor *p = train(t, 2, NULL, 0, 1);
	t->meta.d_ffn = 64; /* pretend: the shape check comes before any data is read */
	struct predictor_eval_row rows[2 * LAYERS];
	int n;
	struct lif_err e = {0};
	cr_expect_neq(predictor_eval(p, t, 0.25, rows, &n, &e), 0);
	cr_expect(strstr(e.msg, "predictor is for layers=2 d_model=32 d_ffn=100 but the trace has "
			 "layers=2 d_model=32 d_ffn=64"), "%s", e.msg);
	t->meta.d_ffn = D_FFN;
	predictor_free(p);
	trace_free(t);
}

Test(predictor, cli_results_do_not_depend_on_the_thread_count)
{
	const char *tr = write_lowrank_trace("lr.h5", 0.3, 1);
	char out[8192], csv[2][4096];
	for (int n = 1; n <= 2; n++) {
		int rc = tu_lifsim(out, sizeof out, "--threads %d predictor train %s --rank 3 -o %s", n,
				   tr, tu_path("p.h5"));
		cr_assert_eq(rc, 0, "%s", out);
		rc = tu_lifsim(out, sizeof out, "predictor eval %s %s -o %s", tu_path("p.h5"), tr,
			       tu_path("e.csv"));
		cr_assert_eq(rc, 0, "%s", out);
		FILE *f = fopen(tu_path("e.csv"), "r");
		cr_assert(f);
		size_t got = fread(csv[n - 1], 1, sizeof csv[0] - 1, f);
		csv[n - 1][got] = '\0';
		fclose(f);
	}
	cr_expect_str_eq(csv[0], csv[1]);
}
