/* lifsim record against the independent numpy reference (tests/ref/ref.py):
 * logits, FFN inputs, active sets and greedy continuations of tiny
 * random-weight OPT and Llama checkpoints; logits and router choices of tiny
 * Mixtral, Qwen2-MoE and Qwen3-MoE checkpoints; tokenizers; bad checkpoints. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "traces/record/safetensors.h"
#include "traces/router.h"
#include "traces/trace.h"

#define VOCAB 300

/* Run tests/ref/ref.py ARGS with a python3 that has numpy (Debian's). */
static int py_script(const char *script, const char *fmt, va_list ap)
{
	char args[4096], cmd[8192];
	vsnprintf(args, sizeof args, fmt, ap);
	const char *py = getenv("LIFSIM_PYTHON");
	if (!py)
		py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
	snprintf(cmd, sizeof cmd, "%s '%s' %s", py, tu_src(script), args);
	return system(cmd);
}

static int ref_py(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = py_script("tests/ref/ref.py", fmt, ap);
	va_end(ap);
	return rc;
}

/* tests/fuzz/pack.py (a fuzz input packs a checkpoint's files into one). */
static int pack_py(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = py_script("tests/fuzz/pack.py", fmt, ap);
	va_end(ap);
	return rc;
}

/* Read a whole binary file of n elements of size sz; NULL if the size differs. */
static void *read_bin(const char *path, size_t sz, size_t *n)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long bytes = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *p = malloc((size_t)bytes + 1);
	cr_assert(fread(p, 1, (size_t)bytes, f) == (size_t)bytes);
	fclose(f);
	*n = (size_t)bytes / sz;
	return p;
}

/* max over a row of |a - b| / max|b|: the relative error of a logit vector */
static double rel_err(const float *a, const float *b, size_t n)
{
	double d = 0, m = 0;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	return d / (m > 0 ? m : 1);
}

/* ---------------------------------------------------------------- reference */

struct ref_case {
	char name[32];
	char write[128];  /* ref.py write options */
	char thr_opt[64]; /* sparsity option for both lifsim and ref */
	int prompt;       /* prompt tokens (more than MODEL_MAX_BATCH crosses a chunk) */
	char lifsim_opt[32]; /* lifsim only */
};

static struct ref_case ref_cases[] = {
	{"opt_f32", "--family opt", "", 16, ""},
	{"opt_postnorm_proj_f16", "--family opt --post-norm --proj 32 --dtype f16", "", 16, ""},
	{"opt_sharded_bf16", "--family opt --shards 3 --dtype bf16", "", 16, ""},
	{"opt_prompt_of_two_chunks", "--family opt", "", 100, ""},
	{"llama_f32_sparsity", "--family llama", "--target-sparsity 0.7", 16, ""},
	{"llama_sharded_bf16_threshold", "--family llama --shards 2 --dtype bf16", "--threshold 0.05", 16, ""},
	{"llama_f16_default", "--family llama --dtype f16", "", 16, ""},
	{"llama_prompt_of_two_chunks", "--family llama", "--target-sparsity 0.6", 100, ""},
	{"opt_postproj_f16_half", "--family opt --post-norm --proj 32 --dtype f16", "", 70,
	 "--half-weights"},
	{"llama_shard_bf16_half", "--family llama --shards 2 --dtype bf16", "", 16, "--half-weights"},
	{"llama_f16_half", "--family llama --dtype f16", "", 16, "--half-weights"},
};


/* Compare lifsim's trace with the reference's activation values; counts
 * disagreements and reports the first of each kind. */
static void check_trace(const struct trace *t, const float *act, const float *inp,
			const double *thr, int nthr, size_t T)
{
	const struct trace_meta *m = &t->meta;
	cr_assert_eq(nthr, m->layers);
	int near = 0, bad_in = 0, bad_bit = 0, bad_level = 0, levels = 0;
	char first[512] = "";
	for (size_t k = 0; k < T; k++)
		for (int l = 0; l < m->layers; l++) {
			const float *a = act + (k * m->layers + l) * m->d_ffn;
			const float *x = inp + (k * m->layers + l) * m->d_model;
			const float *y = t->inputs + ((size_t)l * T + k) * m->d_model;
			bad_in += rel_err(y, x, (size_t)m->d_model) > 1e-4;
			double scale = 0;
			for (int i = 0; i < m->d_ffn; i++)
				scale = fmax(scale, fabs(a[i]));
			for (int i = 0; i < m->d_ffn; i++) {
				int want = a[i] > thr[l], got = trace_bit(trace_active(t, l, (int64_t)k), i);
				int level = trace_band_level(trace_band_row(t, l, (int64_t)k), t->row_bytes, i);
				double z = a[i] - thr[l], mg = m->mag_margin[l], tol = 1e-4 * scale;
				if (fabs(z) <= tol) { /* within float32 rounding of the threshold */
					near++;
					continue;
				}
				if (got != want && !bad_bit++)
					snprintf(first, sizeof first, "active t=%zu l=%d i=%d: lifsim %d, reference %d "
						 "(value %g, thr %g)", k, l, i, got, want, a[i], thr[l]);
				/* levels are compared away from their edges by more than one
				 * code step (trace_mag_encode's resolution, margin / 127) */
				double edge = tol + mg / 120;
				if (fabs(fabs(z) - mg) > edge && fabs(fabs(z) - mg * 2 / 3) > edge &&
				    fabs(fabs(z) - mg / 3) > edge) {
					bad_level += level != trace_level_of_z((float)z, (float)mg);
					levels += level > 0;
				}
			}
		}
	cr_expect_eq(bad_in, 0, "%d FFN input rows differ by more than 1e-4", bad_in);
	cr_expect_eq(bad_bit, 0, "%d active bits differ; first: %s", bad_bit, first);
	cr_expect_eq(bad_level, 0, "%d band levels differ", bad_level);
	cr_expect_gt(levels, 0, "the band is empty");
	cr_expect_leq(near, (int)(T * m->layers * m->d_ffn / 100), "too many near-threshold values: %d", near);
}

ParameterizedTestParameters(record, matches_numpy_reference)
{
	return cr_make_param_array(struct ref_case, ref_cases, sizeof ref_cases / sizeof ref_cases[0]);
}

ParameterizedTest(struct ref_case *c, record, matches_numpy_reference, .init = tu_init)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", tu_path(c->name));
	char ids[256], refp[4096], lg[4096], out[4096], msg[4096];
	char idtext[1024] = "";
	for (int k = 0; k < c->prompt; k++) /* a fixed pseudo-random prompt */
		snprintf(idtext + strlen(idtext), sizeof idtext - strlen(idtext), "%d ", (k * 7919 + 17) % VOCAB);
	snprintf(ids, sizeof ids, "%s", tu_write("ids", idtext));
	const size_t T = (size_t)c->prompt + 6;
	snprintf(refp, sizeof refp, "%s", tu_path("ref"));
	snprintf(lg, sizeof lg, "%s", tu_path("logits.bin"));
	snprintf(out, sizeof out, "%s", tu_path("t.h5"));
	cr_assert_eq(ref_py("write '%s' %s", dir, c->write), 0);
	cr_assert_eq(ref_py("run '%s' --tokens '%s' --generate 6 %s --out '%s'", dir, ids, c->thr_opt, refp), 0);
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record -q --model '%s' --tokens-file '%s' --generate 6 %s %s "
			       "--inputs --magnitudes --logits '%s' -o '%s'", dir, ids, c->thr_opt, c->lifsim_opt,
			       lg, out),
		     0, "%s", msg);

	/* logits, token by token, to 1e-4 relative */
	size_t nl, nr;
	float *a = read_bin(lg, sizeof(float), &nl), *b = read_bin(tu_path("ref.logits"), sizeof(float), &nr);
	cr_assert_eq(nl, nr);
	cr_assert_eq(nl, T * VOCAB);
	for (size_t k = 0; k < nl / VOCAB; k++)
		cr_expect_leq(rel_err(a + k * VOCAB, b + k * VOCAB, VOCAB), 1e-4, "logits of token %zu", k);

	/* the trace: same tokens (so the same greedy continuation), inputs, active sets */
	struct lif_err e = {0};
	struct trace *t = trace_load(out, TRACE_LOAD_INPUTS | TRACE_LOAD_MAGNITUDES, &e);
	cr_assert(t, "%s", e.msg);
	cr_assert_eq(t->meta.tokens, (int64_t)T);
	FILE *f = fopen(tu_path("ref.ids"), "r");
	for (size_t k = 0; k < T; k++) {
		int id = -1;
		cr_assert_eq(fscanf(f, "%d", &id), 1);
		cr_expect_eq(t->token_ids[k], id, "token %zu", k);
	}
	fclose(f);
	size_t na, ni, nt;
	float *act = read_bin(tu_path("ref.act"), sizeof(float), &na);
	float *inp = read_bin(tu_path("ref.inputs"), sizeof(float), &ni);
	double *thr = read_bin(tu_path("ref.thr"), sizeof(double), &nt);
	cr_assert_eq(na, T * t->meta.layers * t->meta.d_ffn);

	/* lifsim's calibrated thresholds agree with the reference's */
	char txt[4096];
	cr_assert_eq(trace_read_text(out, "layer_thresholds", txt, sizeof txt, &e), 0, "%s", e.msg);
	char *p = txt;
	for (size_t l = 0; l < nt; l++) {
		double v = strtod(p, &p);
		cr_expect(fabs(v - thr[l]) <= 1e-4 * fmax(1e-3, fabs(thr[l])), "threshold %zu: %g vs %g", l, v, thr[l]);
		p += *p == ',';
	}
	check_trace(t, act, inp, thr, (int)nt, T);
	trace_free(t);
	free(a), free(b), free(act), free(inp), free(thr);
}

/* ---------------------------------------------------------------- MoE */

struct moe_case {
	char name[32];
	char write[128];     /* ref.py write options */
	int prompt;
	char lifsim_opt[32]; /* lifsim only */
};

static struct moe_case moe_cases[] = {
	{"mixtral_f32", "--family mixtral", 16, ""},
	{"mixtral_two_chunks", "--family mixtral", 100, ""},
	{"mixtral_sharded_bf16_half", "--family mixtral --shards 3 --dtype bf16", 16, "--half-weights"},
	{"qwen2_moe_f16", "--family qwen2_moe --dtype f16", 16, ""},
	{"qwen2_moe_bf16_half", "--family qwen2_moe --dtype bf16", 16, "--half-weights"},
	{"qwen3_moe_f32", "--family qwen3_moe", 16, ""},
	{"qwen3_moe_sharded_f16_half", "--family qwen3_moe --shards 2 --dtype f16", 70, "--half-weights"},
};

ParameterizedTestParameters(record, moe_router_matches_numpy_reference)
{
	return cr_make_param_array(struct moe_case, moe_cases, sizeof moe_cases / sizeof moe_cases[0]);
}

/* Record T tokens (ids file; the prompt plus `generate` greedy ones) from
 * checkpoint dir with lifsim and the reference, and compare: logits to 1e-4
 * relative, the same greedy continuation, and per token and layer the same
 * experts in the same order with the same gate weights (to 1e-4); a row
 * whose reference probabilities of the k-th and (k+1)-th (or two selected)
 * experts lie within 1e-5 of each other is a float32 tie and is only counted
 * (at most 1% of rows may be); the router inputs to 1e-4. Returns the
 * loaded trace. */
static struct router_trace *check_moe_against_ref(const char *dir, const char *ids, size_t T, int generate,
						  const char *lifsim_opt)
{
	char refp[4096], lg[4096], out[4096], msg[4096];
	snprintf(refp, sizeof refp, "%s", tu_path("ref"));
	snprintf(lg, sizeof lg, "%s", tu_path("logits.bin"));
	snprintf(out, sizeof out, "%s", tu_path("r.h5"));
	cr_assert_eq(ref_py("run '%s' --tokens '%s' --generate %d --out '%s'", dir, ids, generate, refp), 0);
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record -q --model '%s' --tokens-file '%s' --generate %d %s "
			       "--inputs --logits '%s' -o '%s'", dir, ids, generate, lifsim_opt, lg, out), 0,
		     "%s", msg);
	size_t nl, nr;
	float *a = read_bin(lg, sizeof(float), &nl), *b = read_bin(tu_path("ref.logits"), sizeof(float), &nr);
	struct lif_err e = {0};
	struct router_trace *rt = router_load(out, &e);
	cr_assert(rt, "%s", e.msg);
	const struct router_meta *m = &rt->meta;
	cr_assert_eq(m->tokens, (int64_t)T);
	size_t V = nr / T;
	cr_assert_eq(nl, nr);
	cr_assert_eq(nl, T * V);
	for (size_t k = 0; k < T; k++)
		cr_expect_leq(rel_err(a + k * V, b + k * V, V), 1e-4, "logits of token %zu", k);
	cr_expect_eq(m->source, TRACE_SOURCE_RECORDED);
	FILE *f = fopen(tu_path("ref.ids"), "r");
	for (size_t k = 0; k < T; k++) {
		int id = -1;
		cr_assert_eq(fscanf(f, "%d", &id), 1);
		cr_expect_eq(rt->token_ids[k], id, "token %zu", k);
	}
	fclose(f);
	size_t ne, ng, np;
	int16_t *rex = read_bin(tu_path("ref.experts"), sizeof(int16_t), &ne);
	float *rg = read_bin(tu_path("ref.gates"), sizeof(float), &ng);
	float *rp = read_bin(tu_path("ref.probs"), sizeof(float), &np);
	int L = m->layers, K = m->top_k, E = m->experts;
	cr_assert_eq(ne, T * L * K);
	cr_assert_eq(np, T * L * E);
	/* the router inputs (--inputs), row by row */
	size_t ni;
	float *rin = read_bin(tu_path("ref.inputs"), sizeof(float), &ni);
	cr_assert_eq(m->d_model, (int)(ni / (T * L)));
	int bad_in = 0;
	for (size_t t = 0; t < T; t++)
		for (int l = 0; l < L; l++)
			bad_in += rel_err(router_input(rt, l, (int64_t)t), rin + (t * L + l) * m->d_model,
					  (size_t)m->d_model) > 1e-4;
	cr_expect_eq(bad_in, 0, "%d router input rows differ by more than 1e-4", bad_in);
	free(rin);
	int ties = 0, bad = 0, bad_w = 0;
	char first[256] = "";
	for (size_t t = 0; t < T; t++)
		for (int l = 0; l < L; l++) {
			const int16_t *want = rex + (t * L + l) * K, *got = router_ids(rt, l, (int64_t)t);
			const float *p = rp + (t * L + l) * E, *w = router_weights(rt, l, (int64_t)t);
			/* the best unselected probability, and the selected ones in order */
			double next = -1, tie = 1;
			for (int x = 0; x < E; x++) {
				int sel = 0;
				for (int j = 0; j < K; j++)
					sel |= want[j] == x;
				if (!sel)
					next = fmax(next, p[x]);
			}
			for (int j = 0; j < K; j++)
				tie = fmin(tie, fabs(p[want[j]] - (j + 1 < K ? p[want[j + 1]] : next)));
			if (tie < 1e-5) {
				ties++;
				continue;
			}
			for (int j = 0; j < K; j++) {
				if (got[j] != want[j] && !bad++)
					snprintf(first, sizeof first, "token %zu layer %d slot %d: lifsim %d, reference %d",
						 t, l, j, got[j], want[j]);
				bad_w += fabs(w[j] - rg[(t * L + l) * K + j]) > 1e-4;
			}
		}
	cr_expect_eq(bad, 0, "%d router choices differ; first: %s", bad, first);
	cr_expect_eq(bad_w, 0, "%d gate weights differ by more than 1e-4", bad_w);
	cr_expect_leq(ties, (int)(T * L / 100), "%d near-tied rows", ties);
	free(a), free(b), free(rex), free(rg), free(rp);
	return rt;
}

ParameterizedTest(struct moe_case *c, record, moe_router_matches_numpy_reference, .init = tu_init)
{
	char dir[4096], ids[4096];
	char idtext[1024] = "";
	snprintf(dir, sizeof dir, "%s", tu_path(c->name));
	for (int k = 0; k < c->prompt; k++)
		snprintf(idtext + strlen(idtext), sizeof idtext - strlen(idtext), "%d ", (k * 7919 + 17) % VOCAB);
	snprintf(ids, sizeof ids, "%s", tu_write("ids", idtext));
	cr_assert_eq(ref_py("write '%s' %s", dir, c->write), 0);
	struct router_trace *rt = check_moe_against_ref(dir, ids, (size_t)c->prompt + 6, 6, c->lifsim_opt);
	cr_expect_eq(rt->meta.experts, 8);
	cr_expect_eq(rt->meta.top_k, 2);
	cr_expect_eq(rt->meta.d_expert, 48);
	router_trace_free(rt);
}

/* The shipped trained MoE (traces/tinymoe): a prompt of held-out text and a
 * greedy continuation route exactly as the numpy reference routes them, and
 * the routing is real: per layer, most experts are used and the router's
 * choices are not uniform. */
Test(record, tinymoe_routing_matches_numpy_reference, .init = tu_init, .timeout = 300)
{
	char idtext[4096] = "", ids[4096];
	FILE *f = fopen(tu_src("traces/tinymoe/heldout.txt"), "rb");
	cr_assert(f);
	unsigned char text[96];
	cr_assert_eq(fread(text, 1, sizeof text, f), sizeof text);
	fclose(f);
	for (size_t k = 0; k < sizeof text; k++)
		snprintf(idtext + strlen(idtext), sizeof idtext - strlen(idtext), "%d ", text[k]);
	snprintf(ids, sizeof ids, "%s", tu_write("ids", idtext));
	struct router_trace *rt = check_moe_against_ref(tu_src("traces/tinymoe"), ids, sizeof text + 32, 32, "");
	const struct router_meta *m = &rt->meta;
	cr_expect_eq(m->experts, 16);
	cr_expect_eq(m->top_k, 2);
	for (int l = 0; l < m->layers; l++) {
		int count[16] = {0}, used = 0, most = 0;
		for (int64_t t = 0; t < m->tokens; t++)
			for (int j = 0; j < m->top_k; j++)
				count[router_ids(rt, l, t)[j]]++;
		for (int e = 0; e < 16; e++) {
			used += count[e] > 0;
			most = count[e] > most ? count[e] : most;
		}
		cr_expect_geq(used, 8, "layer %d uses only %d of 16 experts", l, used);
		/* uniform routing of 2 of 16 gives about 1/8 of the rows to each */
		cr_expect_gt(most, m->tokens * 2 / 16, "layer %d: no expert above the uniform share", l);
	}
	router_trace_free(rt);
}

struct moe_bad {
	char name[32];
	char fix[200];
	char args[64];
	char want[160];
};

static struct moe_bad moe_bads[] = {
	{"missing_expert", "sed -i 's/layers\\.2\\.block_sparse_moe\\.experts\\.7\\.w2/layers.2.block_sparse_moe.experts.7.w9/' "
	 "model.safetensors", "", "checkpoint has no tensor 'model.layers.2.block_sparse_moe.experts.7.w2.weight'"},
	{"topk_above_experts", "sed -i 's/\"num_experts_per_tok\": 2/\"num_experts_per_tok\": 9/' config.json", "",
	 "num_experts_per_tok must be <= the experts"},
	{"sliding_window", "sed -i 's/\"sliding_window\": null/\"sliding_window\": 2/' config.json", "",
	 "3 tokens exceed sliding_window 2"},
	{"threshold", "true", "--threshold 0.1", "is a mixture-of-experts model: it records a router trace"},
	{"magnitudes", "true", "--magnitudes", "--threshold and --magnitudes apply to dense models"},
};

ParameterizedTestParameters(record, bad_moe_checkpoint_is_named_in_the_error)
{
	return cr_make_param_array(struct moe_bad, moe_bads, sizeof moe_bads / sizeof moe_bads[0]);
}

ParameterizedTest(struct moe_bad *c, record, bad_moe_checkpoint_is_named_in_the_error, .init = tu_init)
{
	char dir[4096], out[4096], msg[4096], cmd[8192];
	snprintf(dir, sizeof dir, "%s", tu_path("bad"));
	snprintf(out, sizeof out, "%s", tu_path("bad.h5"));
	cr_assert_eq(ref_py("write '%s' --family mixtral", dir), 0);
	snprintf(cmd, sizeof cmd, "cd '%s' && %s", dir, c->fix);
	cr_assert_eq(system(cmd), 0);
	const char *ids = tu_write("bad.ids", "1 2 3");
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record --model '%s' --tokens-file '%s' %s -o '%s'", dir, ids,
			       c->args, out), 1, "%s", msg);
	cr_expect(strstr(msg, c->want), "message '%s' lacks '%s'", msg, c->want);
	cr_expect_neq(access(out, F_OK), 0, "no trace is written for a bad checkpoint");
}

Test(record, qwen_moe_with_dense_layers_is_refused, .init = tu_init)
{
	char dir[4096], msg[4096], cmd[8192];
	snprintf(dir, sizeof dir, "%s", tu_path("q"));
	cr_assert_eq(ref_py("write '%s' --family qwen3_moe", dir), 0);
	snprintf(cmd, sizeof cmd, "cd '%s' && sed -i 's/\"mlp_only_layers\": \\[\\]/\"mlp_only_layers\": [1]/' config.json", dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record --model '%s' --tokens-file '%s' -o '%s'", dir,
			       tu_write("q.ids", "1 2"), tu_path("q.h5")), 1, "%s", msg);
	cr_expect(strstr(msg, "key 'mlp_only_layers': dense layers among MoE layers are not supported"), "%s", msg);
}

Test(record, trace_carries_prompt_config_and_generated_text, .init = tu_init)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", tu_path("byte"));
	char out[4096], msg[4096], txt[8192];
	snprintf(out, sizeof out, "%s", tu_path("b.h5"));
	cr_assert_eq(ref_py("write '%s' --family opt --byte", dir), 0);
	const char *prompt = tu_write("prompt.txt", "h\xc3\xa9llo");
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record --model '%s' --prompt-file '%s' --generate 4 -o '%s'",
			       dir, prompt, out), 0, "%s", msg);
	cr_expect(strstr(msg, "recorded 10 tokens (6 prompt + 4 generated)"), "%s", msg);
	struct lif_err e = {0};
	struct trace *t = trace_load(out, 0, &e);
	cr_assert(t, "%s", e.msg);
	static const int bytes[6] = {'h', 0xc3, 0xa9, 'l', 'l', 'o'};
	for (int k = 0; k < 6; k++)
		cr_expect_eq(t->token_ids[k], bytes[k], "byte tokenizer id %d", k);
	cr_expect_eq(t->meta.source, TRACE_SOURCE_RECORDED);
	cr_assert_eq(trace_read_text(out, "prompt", txt, sizeof txt, &e), 0);
	cr_expect_str_eq(txt, "h\xc3\xa9llo");
	cr_assert_eq(trace_read_text(out, "generated_text", txt, sizeof txt, &e), 0);
	cr_expect_eq(strlen(txt) > 0 ? 1 : 0, 1);
	for (int k = 0; k < 4 && txt[k]; k++) /* the generated bytes are the generated ids */
		cr_expect_eq((unsigned char)txt[k], t->token_ids[6 + k]);
	cr_assert_eq(trace_read_text(out, "model_config", txt, sizeof txt, &e), 0);
	cr_expect(strstr(txt, "\"lifsim_tokenizer\": \"byte\""), "%s", txt);
	trace_free(t);
}

/* GPT-2 BPE: lifsim's ids equal the reference's for both file layouts. */
struct bpe_case {
	char name[16];
	int tokenizer_json; /* use tokenizer.json instead of vocab.json + merges.txt */
};
static struct bpe_case bpe_cases[] = {{"vocab_merges", 0}, {"tokenizer_json", 1}};

ParameterizedTestParameters(record, bpe_tokenizer_matches_reference)
{
	return cr_make_param_array(struct bpe_case, bpe_cases, 2);
}

ParameterizedTest(struct bpe_case *c, record, bpe_tokenizer_matches_reference, .init = tu_init)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", tu_path(c->name));
	char out[4096], msg[4096], cmd[8192], prompt[4096];
	snprintf(out, sizeof out, "%s", tu_path("bpe.h5"));
	snprintf(prompt, sizeof prompt, "%s",
		 tu_write("bpe.txt", "the quick brown fox's  tail, 42 times!\n\n  then   the dog_ran caf\xc3\xa9 there\n"));
	cr_assert_eq(ref_py("write '%s' --family opt --bpe", dir), 0);
	cr_assert_eq(ref_py("encode '%s' '%s' > '%s'", dir, prompt, tu_path("want.ids")), 0);
	if (c->tokenizer_json) { /* only tokenizer.json: hide vocab.json and merges.txt */
		snprintf(cmd, sizeof cmd, "cd '%s' && mv tokenizer.json.alt tokenizer.json && mv vocab.json v.bak && "
			 "mv merges.txt m.bak", dir);
		cr_assert_eq(system(cmd), 0);
	}
	/* with a bos_token_id the prompt starts with it */
	snprintf(cmd, sizeof cmd, "sed -i 's/\"vocab_size\"/\"bos_token_id\": 2, \"vocab_size\"/' '%s/config.json'", dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record -q --model '%s' --prompt-file '%s' --generate 3 -o '%s'",
			       dir, prompt, out), 0, "%s", msg);
	struct lif_err e = {0};
	struct trace *t = trace_load(out, 0, &e);
	cr_assert(t, "%s", e.msg);
	FILE *f = fopen(tu_path("want.ids"), "r");
	cr_expect_eq(t->token_ids[0], 2, "BOS first");
	int k = 1, id;
	while (fscanf(f, "%d", &id) == 1) {
		cr_assert_lt(k, t->meta.tokens - 3);
		cr_expect_eq(t->token_ids[k], id, "token %d: lifsim %d, reference %d", k, t->token_ids[k], id);
		k++;
	}
	fclose(f);
	cr_expect_eq(k, t->meta.tokens - 3, "reference has %d prompt tokens (+ BOS), lifsim %lld", k,
		     (long long)t->meta.tokens - 3);
	trace_free(t);
}

Test(record, interrupted_run_leaves_a_valid_shorter_trace, .init = tu_init)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", tu_path("long"));
	char out[4096], msg[4096];
	snprintf(out, sizeof out, "%s", tu_path("long.h5"));
	cr_assert_eq(ref_py("write '%s' --family llama", dir), 0);
	const char *ids = tu_write("long.ids", "1 2 3 4 5 6 7 8");
	/* SIGINT a run that would take minutes */
	int rc = tu_lifsim(msg, sizeof msg, "record --threads 1 --model '%s' --tokens-file '%s' --generate 200000 "
			   "--inputs -o '%s' 2>&1 & pid=$!; sleep 2; kill -INT $pid; wait $pid", dir, ids, out);
	cr_expect_eq(rc, 130, "an interrupted run exits 130: %s", msg);
	cr_expect(strstr(msg, "interrupted"), "%s", msg);
	struct trace_meta m;
	struct lif_err e = {0};
	cr_assert_eq(trace_validate(out, &m, &e), 0, "%s", e.msg);
	cr_expect_lt(m.tokens, 200008);
	cr_expect_eq(m.has, TRACE_HAS_INPUTS);
}

/* ---------------------------------------------------------------- bad input */

struct bad_ckpt {
	char name[32];
	char fix[512]; /* shell command run in the checkpoint directory */
	char want[160]; /* substring of the error */
};

static struct bad_ckpt bad_ckpts[] = {
	{"missing_tensor",
	 "sed -i 's/layers\\.1\\.fc1\\.weight/layers.1.fc9.weight/' model.safetensors",
	 "checkpoint has no tensor 'model.decoder.layers.1.fc1.weight'"},
	{"wrong_shape", "sed -i 's/\"ffn_dim\": 256/\"ffn_dim\": 128/' config.json",
	 "tensor 'model.decoder.layers.0.fc1.weight' has shape [256, 64], expected [128, 64]"},
	{"unsupported_dtype", "sed -i '0,/\"F32\"/s//\"I32\"/' model.safetensors",
	 "tensor 'model.decoder.embed_tokens.weight' has unsupported dtype I32"},
	{"truncated", "truncate -s -1000 model.safetensors", "model.safetensors: truncated: tensor '"},
	{"truncated_header", "truncate -s 100 model.safetensors", "model.safetensors: truncated or corrupt: header length"},
	{"malformed_header", "printf 'x' | dd of=model.safetensors bs=1 seek=8 conv=notrunc 2>/dev/null",
	 "model.safetensors: malformed header"},
	{"bad_offsets", "sed -i '0,/\"data_offsets\": \\[0, /s//\"data_offsets\": [8, /' model.safetensors",
	 "tensor 'model.decoder.embed_tokens.weight': data_offsets span"},
	{"missing_config_key", "sed -i '/\"hidden_size\"/d' config.json", "config.json: missing key 'hidden_size'"},
	{"missing_shard", "rm model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors: cannot open"},
	/* the index's own read error, not "malformed index" */
	{"index_dir_shard", "rm model.safetensors.index.json && mkdir model.safetensors.index.json",
	 "model.safetensors.index.json: is a directory, not a file"},
	{"index_not_json_shard", "printf '{\"weight_map\": ' >model.safetensors.index.json",
	 "model.safetensors.index.json: malformed index: not valid JSON"},
	{"index_no_map_shard", "echo '{\"metadata\": {}}' >model.safetensors.index.json",
	 "model.safetensors.index.json: malformed index: no \"weight_map\" object"},
	{"unknown_family", "sed -i 's/\"model_type\": \"opt\"/\"model_type\": \"gpt2\"/' config.json",
	 "config.json: key 'model_type' must be \"opt\", \"llama\", \"mixtral\""},
};

ParameterizedTestParameters(record, bad_checkpoint_is_named_in_the_error)
{
	return cr_make_param_array(struct bad_ckpt, bad_ckpts, sizeof bad_ckpts / sizeof bad_ckpts[0]);
}

ParameterizedTest(struct bad_ckpt *c, record, bad_checkpoint_is_named_in_the_error, .init = tu_init)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", tu_path("bad"));
	char out[4096], msg[4096], cmd[8192];
	snprintf(out, sizeof out, "%s", tu_path("bad.h5"));
	cr_assert_eq(ref_py("write '%s' --family opt %s", dir, strstr(c->name, "shard") ? "--shards 2" : ""), 0);
	snprintf(cmd, sizeof cmd, "cd '%s' && %s", dir, c->fix);
	cr_assert_eq(system(cmd), 0);
	const char *ids = tu_write("bad.ids", "1 2 3");
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record --model '%s' --tokens-file '%s' -o '%s'", dir, ids, out), 1);
	cr_expect(strstr(msg, "lifsim record: ") == msg, "%s", msg);
	cr_expect(strstr(msg, c->want), "message '%s' lacks '%s'", msg, c->want);
	cr_expect_neq(access(out, F_OK), 0, "no trace is written for a bad checkpoint");
}

struct bad_arg {
	char args[160];
	char want[160];
};

static struct bad_arg bad_args[] = {
	{"--tokens-file IDS:1 2 999", "token 3 ('999') is not an id in [0, 300)"},
	{"--tokens-file IDS:1 x", "token 2 ('x') is not an id"},
	{"--tokens-file IDS: ", "no tokens"},
	{"--tokens-file IDS:1 --target-sparsity 0.5", "OPT (ReLU) model"},
	{"--tokens-file IDS:1 --generate 200", "exceed max_position_embeddings 128"},
	{"--prompt-file IDS:hello", "no tokenizer (tokenizer.json, or vocab.json and merges.txt)"},
	{"--tokens-file IDS:1 --prompt-file IDS:1", "give exactly one of --prompt-file and --tokens-file"},
};

ParameterizedTestParameters(record, bad_arguments_are_explained)
{
	return cr_make_param_array(struct bad_arg, bad_args, sizeof bad_args / sizeof bad_args[0]);
}

ParameterizedTest(struct bad_arg *c, record, bad_arguments_are_explained, .init = tu_init)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", tu_path("m"));
	char args[4096] = "", msg[4096];
	cr_assert_eq(ref_py("write '%s' --family opt", dir), 0);
	/* IDS:text becomes a file holding text */
	char *s = strdup(c->args), *tok, *save;
	for (tok = strtok_r(s, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (!strncmp(tok, "IDS:", 4)) {
			char text[128] = "";
			snprintf(text, sizeof text, "%s", tok + 4);
			while ((tok = strtok_r(NULL, " ", &save)) && tok[0] != '-')
				snprintf(text + strlen(text), sizeof text - strlen(text), " %s", tok);
			snprintf(args + strlen(args), sizeof args - strlen(args), " '%s'", tu_write("a.ids", text));
			if (!tok)
				break;
		}
		snprintf(args + strlen(args), sizeof args - strlen(args), " %s", tok);
	}
	free(s);
	cr_assert_neq(tu_lifsim(msg, sizeof msg, "record --model '%s' %s -o '%s'", dir, args, tu_path("x.h5")), 0);
	cr_expect(strstr(msg, c->want), "message '%s' lacks '%s'", msg, c->want);
}

Test(record, half_precision_conversions_are_exact)
{
	cr_expect_eq(st_f16_to_f32(0x3c00), 1.0f);
	cr_expect_eq(st_f16_to_f32(0xc000), -2.0f);
	cr_expect_eq(st_f16_to_f32(0x0001), ldexpf(1, -24)); /* smallest subnormal */
	cr_expect_eq(st_f16_to_f32(0x7bff), 65504.0f);
	cr_expect(isinf(st_f16_to_f32(0x7c00)));
	cr_expect_eq(st_bf16_to_f32(0x3f80), 1.0f);
	cr_expect_eq(st_bf16_to_f32(0xc040), -3.0f);
}

/* The acceptance run, on a tiny byte-tokenized model: a 256-token
 * prompt plus 256 generated tokens, every optional dataset. */
Test(record, records_256_prompt_plus_256_generated_tokens, .init = tu_init)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", tu_path("long256"));
	char out[4096], msg[4096], text[257];
	snprintf(out, sizeof out, "%s", tu_path("long256.h5"));
	cr_assert_eq(ref_py("write '%s' --family llama --byte", dir), 0);
	for (int i = 0; i < 256; i++)
		text[i] = "the quick brown fox jumps over the lazy dog. "[i % 45];
	text[256] = '\0';
	const char *prompt = tu_write("long256.txt", text);
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record --model '%s' --prompt-file '%s' --generate 256 "
			       "--target-sparsity 0.8 --magnitudes --inputs -o '%s'", dir, prompt, out), 0, "%s", msg);
	struct lif_err e = {0};
	struct trace_meta m;
	cr_assert_eq(trace_validate(out, &m, &e), 0, "%s", e.msg);
	cr_expect_eq(m.tokens, 512);
	cr_expect_eq(m.has, TRACE_HAS_MAGNITUDES | TRACE_HAS_INPUTS);
	cr_expect_eq(m.d_model, 64);
	/* calibrated on the prompt: 80% of the prompt's activations inactive */
	struct trace *t = trace_load(out, 0, &e);
	cr_assert(t, "%s", e.msg);
	long active = 0;
	for (int l = 0; l < m.layers; l++)
		for (int k = 0; k < 256; k++)
			for (int i = 0; i < m.d_ffn; i++)
				active += trace_bit(trace_active(t, l, k), i);
	cr_expect(fabs((double)active / (256.0 * m.layers * m.d_ffn) - 0.2) < 0.001, "prompt activity %g",
		  (double)active / (256.0 * m.layers * m.d_ffn));
	trace_free(t);
}

/* DESIGN: same inputs, same results, whatever the number of threads: fp32
 * weights, and half-precision weights kept as they are (fp16, bf16). */
struct threads_case {
	char name[16];
	char write[64];   /* ref.py write options */
	char opt[32];     /* lifsim record options */
};
static struct threads_case threads_cases[] = {
	{"f32", "--family opt --post-norm --proj 32", ""},
	{"f16_half", "--family opt --dtype f16", "--half-weights"},
	{"bf16_half", "--family llama --dtype bf16", "--half-weights"},
};

ParameterizedTestParameters(record, logits_and_trace_do_not_depend_on_the_thread_count)
{
	return cr_make_param_array(struct threads_case, threads_cases,
				   sizeof threads_cases / sizeof threads_cases[0]);
}

ParameterizedTest(struct threads_case *c, record, logits_and_trace_do_not_depend_on_the_thread_count,
		  .init = tu_init)
{
	char dir[4096], msg[4096], cmd[8192];
	snprintf(dir, sizeof dir, "%s", tu_path(c->name)); /* tu_path's buffers rotate */
	cr_assert_eq(ref_py("write '%s' %s", dir, c->write), 0);
	/* a prompt of more than one chunk (MODEL_MAX_BATCH), then decoding */
	char idtext[1024] = "";
	for (int k = 0; k < 70; k++)
		snprintf(idtext + strlen(idtext), sizeof idtext - strlen(idtext), "%d ", (k * 31 + 3) % VOCAB);
	const char *ids = tu_write("th.ids", idtext);
	for (int th = 1; th <= 3; th++) {
		char lg[64], out[64];
		snprintf(lg, sizeof lg, "th%d.bin", th);
		snprintf(out, sizeof out, "th%d.h5", th);
		cr_assert_eq(tu_lifsim(msg, sizeof msg, "--threads %d record -q --model '%s' --tokens-file '%s' "
				       "--generate 12 --inputs %s --logits '%s' -o '%s'", th, dir, ids, c->opt,
				       tu_path(lg), tu_path(out)), 0, "%s", msg);
	}
	snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s' && cmp -s '%s' '%s'", tu_path("th1.bin"), tu_path("th2.bin"),
		 tu_path("th1.bin"), tu_path("th3.bin"));
	cr_expect_eq(system(cmd), 0, "logits differ between --threads 1, 2 and 3");
	struct lif_err e = {0};
	for (int th = 2; th <= 3; th++) {
		struct trace *a = trace_load(tu_path("th1.h5"), TRACE_LOAD_INPUTS, &e);
		struct trace *b = trace_load(tu_path(th == 2 ? "th2.h5" : "th3.h5"), TRACE_LOAD_INPUTS, &e);
		cr_assert(a && b, "%s", e.msg);
		cr_assert_eq(a->meta.tokens, 82);
		size_t rows = (size_t)a->meta.layers * a->meta.tokens;
		cr_expect_eq(memcmp(a->token_ids, b->token_ids, (size_t)a->meta.tokens * sizeof *a->token_ids), 0,
			     "generated tokens differ (--threads %d)", th);
		cr_expect_eq(memcmp(a->bits, b->bits, rows * a->row_bytes), 0, "active sets differ (--threads %d)", th);
		cr_expect_eq(memcmp(a->inputs, b->inputs, rows * a->meta.d_model * sizeof(float)), 0,
			     "inputs differ (--threads %d)", th);
		trace_free(a);
		trace_free(b);
	}
}

/* A model that cannot fit is refused up front, not killed half-way. */
Test(record, model_larger_than_memory_is_refused_with_a_clear_error, .init = tu_init)
{
	char dir[4096], msg[4096], cmd[8192];
	snprintf(dir, sizeof dir, "%s", tu_path("huge"));
	cr_assert_eq(ref_py("write '%s' --family opt", dir), 0);
	/* 100000 layers of KV cache for a million tokens: about 54 TB */
	snprintf(cmd, sizeof cmd, "sed -i 's/\"max_position_embeddings\": 128/\"max_position_embeddings\": 2000000/; "
		 "s/\"num_hidden_layers\": 3/\"num_hidden_layers\": 100000/' '%s/config.json'", dir);
	cr_assert_eq(system(cmd), 0);
	const char *ids = tu_write("huge.ids", "1 2 3");
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record --model '%s' --tokens-file '%s' --generate 1048576 -o '%s'",
			       dir, ids, tu_path("huge.h5")), 1, "%s", msg);
	cr_expect(strstr(msg, "(weights as float32 and KV cache) but the machine has"), "%s", msg);
	cr_expect_neq(access(tu_path("huge.h5"), F_OK), 0);
}

/* ---------------------------------------------------------------- fuzz findings */

/* A checkpoint the fuzz target fuzz_checkpoint crashed lifsim with (kept
 * packed in tests/fuzz/found/), unpacked and recorded from: a clear error. */
struct found_ckpt {
	char file[64];
	char want[200]; /* substring of the error */
};

static struct found_ckpt found_ckpts[] = {
	/* a weight_map entry that is not a string was named after the JSON
	 * holding its name had been freed */
	{"checkpoint-crash-c9291486",
	 "model.safetensors.index.json: weight_map entry 'shape' is not a file name"},
};

ParameterizedTestParameters(record, fuzz_found_checkpoint_ends_in_an_error)
{
	return cr_make_param_array(struct found_ckpt, found_ckpts,
				   sizeof found_ckpts / sizeof found_ckpts[0]);
}

ParameterizedTest(struct found_ckpt *c, record, fuzz_found_checkpoint_ends_in_an_error, .init = tu_init)
{
	char found[256], dir[4096], msg[4096];
	snprintf(found, sizeof found, "tests/fuzz/found/%s", c->file);
	snprintf(dir, sizeof dir, "%s", tu_path(c->file));
	cr_assert_eq(pack_py("--unpack --flags '%s' '%s' >/dev/null", tu_src(found), dir), 0);
	const char *ids = tu_write("found.ids", "1 2");
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record --model '%s' --tokens-file '%s' -o '%s'", dir, ids,
			       tu_path("found.h5")),
		     1, "%s", msg);
	cr_expect(strstr(msg, c->want), "message '%s' lacks '%s'", msg, c->want);
	cr_expect_neq(access(tu_path("found.h5"), F_OK), 0, "no trace is written");
}
