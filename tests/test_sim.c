#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/device.h"
#include "sim/core/layout.h"
#include "sim/core/memman.h"
#include "sim/core/planner.h"
#include "sim/core/pred.h"
#include "sim/core/sim.h"
#include "sim/core/step.h"
#include "tests/testutil.h"
#include "traces/synth.h"

TestSuite(sim, .init = tu_init);

/* A 2-layer model with 16 neurons of d_model 4 at fp16: a bundle is
 * 2 * 4 * 2 = 16 bytes, one matrix's piece 8 bytes. */
static struct llm_desc small_model(int d_ffn)
{
	struct llm_desc m;
	struct lif_err e = {0};
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "small");
	m.layers = 2, m.d_model = 4, m.d_ffn = d_ffn, m.heads = 1, m.vocab = 10;
	m.ffn_kind = LLM_FFN_RELU2, m.dtype = LLM_FP16, m.sparsity = 0.9;
	cr_assert_eq(llm_derive(&m, "small", &e), 0, "%s", e.msg);
	return m;
}

/* A trace of the given model whose active sets come from strings of 0/1,
 * one per token (same for every layer). */
static struct trace *hand_trace(const struct llm_desc *m, const char *const *rows, int tokens)
{
	struct trace *t = calloc(1, sizeof *t);
	t->meta.layers = m->layers, t->meta.d_ffn = m->d_ffn, t->meta.tokens = tokens;
	t->row_bytes = trace_row_bytes(m->d_ffn);
	t->token_ids = calloc(tokens, sizeof *t->token_ids);
	t->bits = calloc((size_t)m->layers * tokens * t->row_bytes, 1);
	for (int l = 0; l < m->layers; l++)
		for (int k = 0; k < tokens; k++)
			for (int i = 0; rows[k][i]; i++)
				if (rows[k][i] == '1')
					trace_set_bit(t->bits + ((size_t)l * tokens + k) * t->row_bytes, i);
	return t;
}

static void need_of(uint8_t *need, const int *ids, int n)
{
	memset(need, 0, 2);
	for (int i = 0; i < n; i++)
		trace_set_bit(need, ids[i]);
}

struct plan_case {
	int kind, bundle;
	int64_t max_gap;
	int n;               /* expected extents */
	int64_t off[4], len[4];
	int64_t bytes_read;
};

/* Neurons {1, 2, 5} of layer 1. Layer bytes: 256 (16 slots of 16 bytes, or
 * two regions of 16 pieces of 8). */
static struct plan_case plan_cases[] = {
	/* separate: two regions, touching pieces merged */
	{LAYOUT_SEPARATE, 1, 0, 4, {264, 296, 392, 424}, {16, 8, 16, 8}, 48},
	/* rowcol: one read per neuron bundle, 1 and 2 touch */
	{LAYOUT_ROWCOL, 1, 0, 2, {272, 336}, {32, 16}, 48},
	/* no merging at all */
	{LAYOUT_ROWCOL, 1, -1, 3, {272, 288, 336}, {16, 16, 16}, 48},
	/* read through a 32-byte gap */
	{LAYOUT_ROWCOL, 1, 32, 1, {272}, {80}, 80},
	/* a gap one byte too big stays */
	{LAYOUT_ROWCOL, 1, 31, 2, {272, 336}, {32, 16}, 48},
	/* bundles of 4: units 0 and 1, touching */
	{LAYOUT_ROWCOL, 4, 0, 1, {256}, {128}, 128},
	{LAYOUT_ROWCOL, 4, -1, 2, {256, 320}, {64, 64}, 128},
};

ParameterizedTestParameters(sim, layouts_give_hand_computed_extents)
{
	return cr_make_param_array(struct plan_case, plan_cases, sizeof plan_cases / sizeof plan_cases[0]);
}

ParameterizedTest(struct plan_case *c, sim, layouts_give_hand_computed_extents, .init = tu_init)
{
	struct llm_desc m = small_model(16);
	struct lif_err e = {0};
	struct layout *l = layout_new(c->kind, &m, NULL, c->bundle, 0, 1, &e);
	cr_assert(l, "%s", e.msg);
	struct planner *p = planner_new(l, c->max_gap, &e);
	uint8_t need[2];
	const int ids[] = {1, 2, 5};
	need_of(need, ids, 3);
	cr_assert_eq(planner_plan(p, 1, need, &e), 0);
	cr_expect_eq(p->n, (size_t)c->n);
	for (int i = 0; i < c->n && i < (int)p->n; i++) {
		cr_expect_eq(p->ext[i].offset, c->off[i], "extent %d offset %lld", i, (long long)p->ext[i].offset);
		cr_expect_eq(p->ext[i].bytes, c->len[i], "extent %d bytes %lld", i, (long long)p->ext[i].bytes);
	}
	cr_expect_eq(p->bytes_read, c->bytes_read);
	cr_expect_eq(p->useful_bytes, 48);
	planner_free(p);
	layout_free(l);
}

Test(sim, hot_layout_puts_frequent_neurons_first)
{
	struct llm_desc m = small_model(16);
	/* neuron 9 fires 3 times, 4 twice, 12 once */
	const char *rows[] = {"0000100001000000", "0000100001001000", "0000000001000000"};
	struct trace *t = hand_trace(&m, rows, 3);
	struct lif_err e = {0};
	struct layout *l = layout_new(LAYOUT_HOT, &m, t, 1, 3, 1, &e);
	cr_assert(l, "%s", e.msg);
	cr_expect_eq(l->pos[9], 0);
	cr_expect_eq(l->pos[4], 1);
	cr_expect_eq(l->pos[12], 2);
	cr_expect_eq(l->pos[0], 3); /* then by id */
	layout_free(l);
	trace_free(t);
}

Test(sim, friends_layout_reads_a_neuron_and_its_closest_friend_together)
{
	struct llm_desc m = small_model(16);
	/* 1 and 3 always fire together; 5 fires alone */
	const char *rows[] = {"0101000000000000", "0101010000000000", "0101000000000000"};
	struct trace *t = hand_trace(&m, rows, 3);
	struct lif_err e = {0};
	struct layout *l = layout_new(LAYOUT_FRIENDS, &m, t, 1, 3, 1, &e);
	cr_assert(l, "%s", e.msg);
	cr_expect_eq(l->friend_of[1], 3);
	cr_expect_eq(l->friend_of[3], 1);
	cr_expect_eq(l->slot_bytes, 32); /* two bundles per slot */
	struct planner *p = planner_new(l, -1, &e);
	uint8_t need[2];
	const int ids[] = {1, 3};
	need_of(need, ids, 2);
	cr_assert_eq(planner_plan(p, 0, need, &e), 0);
	/* one read of slot 1 brings 3 along */
	cr_expect_eq(p->n, 1);
	cr_expect_eq(p->ext[0].offset, 32);
	cr_expect_eq(p->ext[0].bytes, 32);
	planner_free(p);
	layout_free(l);
	trace_free(t);
}

Test(sim, coact_layout_places_co_active_neurons_side_by_side)
{
	struct llm_desc m = small_model(16);
	/* 2 and 13 always together, 7 and 11 always together */
	const char *rows[] = {"0010000000000100", "0000000100010000", "0010000100010100",
			      "0010000000000100"};
	struct trace *t = hand_trace(&m, rows, 4);
	struct lif_err e = {0};
	struct layout *l = layout_new(LAYOUT_COACT, &m, t, 1, 4, 1, &e);
	cr_assert(l, "%s", e.msg);
	cr_expect_eq(abs(l->pos[2] - l->pos[13]), 1, "2 at %d, 13 at %d", l->pos[2], l->pos[13]);
	cr_expect_eq(abs(l->pos[7] - l->pos[11]), 1, "7 at %d, 11 at %d", l->pos[7], l->pos[11]);
	/* a permutation */
	int seen[16] = {0};
	for (int i = 0; i < 16; i++)
		seen[l->pos[i]]++;
	for (int i = 0; i < 16; i++)
		cr_expect_eq(seen[i], 1);
	layout_free(l);
	trace_free(t);
}

Test(sim, memory_manager_fills_holes_with_the_last_rows)
{
	struct lif_err e = {0};
	struct memman *mm = memman_new(8, &e);
	struct memman_move mv[8];
	for (int i = 0; i < 5; i++)
		memman_insert(mm, i); /* rows 0..4 hold neurons 0..4 */
	const int die[] = {0, 2};
	cr_expect_eq(memman_delete(mm, die, 2, mv), 2);
	/* holes 0 and 2 take rows 4 and 3 */
	cr_expect_eq(mm->used, 3);
	cr_expect_eq(mv[0].src, 4);
	cr_expect_eq(mv[0].dst, 0);
	cr_expect_eq(mv[1].src, 3);
	cr_expect_eq(mv[1].dst, 2);
	cr_expect_eq(mm->row_neuron[0], 4);
	cr_expect_eq(mm->row_neuron[1], 1);
	cr_expect_eq(mm->row_neuron[2], 3);
	cr_expect_eq(mm->neuron_row[0], -1);
	/* deleting the last row copies nothing */
	const int last[] = {3};
	cr_expect_eq(memman_delete(mm, last, 1, mv), 0);
	cr_expect_eq(mm->peak, 5);
	memman_free(mm);
}

static struct device m1max(void)
{
	struct device d;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/m1max.ini"), &d, &e), 0, "%s", e.msg);
	return d;
}

struct window_case {
	int window;
	int64_t loaded[5];
	int64_t copies; /* total row copies over the trace, per layer */
};

/* Predicted (oracle) sets: t0 {0,1,2}, t1 {1,3}, t2 {4}, t3 {0,1}, t4 {}. */
static struct window_case window_cases[] = {
	/* k = 0: every token loads its whole set; deleting all rows copies nothing */
	{0, {3, 2, 1, 2, 0}, 0},
	/* k = 2: t0 loads 0,1,2; t1 loads 3; t2 loads 4, then 0 and 2 leave
	 * (holes 0 and 2 take rows 4 and 3: 2 copies); t3 loads 0, then 3 leaves
	 * (1 copy); t4 loads nothing, then 4 leaves (1 copy) */
	{2, {3, 1, 1, 1, 0}, 4},
	/* k = 10: nothing ever leaves */
	{10, {3, 1, 1, 0, 0}, 0},
};

ParameterizedTestParameters(sim, windowing_state_machine_matches_a_hand_worked_trace)
{
	return cr_make_param_array(struct window_case, window_cases,
				   sizeof window_cases / sizeof window_cases[0]);
}

ParameterizedTest(struct window_case *c, sim, windowing_state_machine_matches_a_hand_worked_trace,
		  .init = tu_init)
{
	struct llm_desc m = small_model(16);
	const char *rows[] = {"1110000000000000", "0101000000000000", "0000100000000000",
			      "1100000000000000", "0000000000000000"};
	struct trace *t = hand_trace(&m, rows, 5);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *cache = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	struct sim_token tok[5];
	sim_default_params(&p);
	p.window = c->window;
	p.context_tokens = 0;
	cr_assert_eq(sim_run(cache, &d, &p, 1, &r, tok, &e), 0, "%s", e.msg);
	for (int k = 0; k < 5; k++)
		cr_expect_eq(tok[k].neurons_loaded, 2 * c->loaded[k], "token %d loaded %lld", k,
			     (long long)tok[k].neurons_loaded); /* two identical layers */
	double copies = r.mem_bytes_copied_per_token * 5 / (double)m.bundle_bytes;
	cr_expect_float_eq(copies, 2.0 * c->copies, 1e-9, "copies %g", copies);
	sim_cache_free(cache);
	trace_free(t);
}

/* A synthetic trace of a cut-down OPT-6.7B for predictor and budget tests. */
static struct trace *opt_trace(struct llm_desc *m, int layers, int tokens)
{
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src("models/llms/opt-6.7b.ini"), m, &e), 0, "%s", e.msg);
	m->layers = layers, m->params = 0;
	cr_assert_eq(llm_derive(m, "opt", &e), 0);
	struct synth_params sp;
	synth_defaults(&sp);
	sp.tokens = tokens;
	struct trace *t = synth_generate(m, &sp, 2, &e);
	cr_assert(t, "%s", e.msg);
	return t;
}

/* Fraction of a token's predicted-but-inactive neurons also flagged at the next token. */
static double fp_persistence(const struct trace *t, const uint8_t *sets)
{
	long same = 0, all = 0;
	for (int64_t k = 0; k + 1 < t->meta.tokens; k++) {
		const uint8_t *a0 = trace_active(t, 0, k), *a1 = trace_active(t, 0, k + 1);
		const uint8_t *p0 = sets + k * t->row_bytes, *p1 = sets + (k + 1) * t->row_bytes;
		for (int i = 0; i < t->meta.d_ffn; i++)
			if (trace_bit(p0, i) && !trace_bit(a0, i) && !trace_bit(a1, i)) {
				all++;
				same += trace_bit(p1, i);
			}
	}
	return (double)same / all;
}

Test(sim, predictor_modes_hit_their_rates_and_modeled_mistakes_persist)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 1, 200);
	struct lif_err e = {0};
	struct pred_quality q;
	struct pred_params p = {PRED_ORACLE, 1, 0, 1, NULL};
	uint8_t *s = pred_sets(t, &p, 1, &q, &e);
	cr_assert(s, "%s", e.msg);
	cr_expect_eq(memcmp(s, t->bits, (size_t)t->meta.tokens * t->row_bytes), 0);
	free(s);
	p.kind = PRED_NONE;
	s = pred_sets(t, &p, 1, &q, &e);
	cr_expect_float_eq(q.predicted_frac, 1.0, 1e-12);
	free(s);
	p = (struct pred_params){PRED_MODELED, 0.95, 0.07, 3, NULL};
	uint8_t *mod = pred_sets(t, &p, 1, &q, &e);
	cr_assert(mod, "%s", e.msg);
	cr_expect(fabs(q.recall - 0.95) < 0.005, "recall %g", q.recall);
	cr_expect(fabs(q.fp_rate - 0.07) < 0.002, "fp %g", q.fp_rate);
	cr_expect_eq(q.fp_shortfall, 0);
	/* every false positive comes from the band (no shortfall) */
	long outside = 0;
	for (int64_t k = 0; k < t->meta.tokens; k++)
		for (int i = 0; i < m.d_ffn; i++)
			outside += trace_bit(mod + k * t->row_bytes, i) &&
				   !trace_bit(trace_active(t, 0, k), i) &&
				   !trace_band_level(trace_band_row(t, 0, k), t->row_bytes, i);
	cr_expect_eq(outside, 0);
	p.kind = PRED_RANDOM;
	uint8_t *rnd = pred_sets(t, &p, 1, &q, &e);
	cr_expect(fabs(q.fp_rate - 0.07) < 0.002, "random fp %g", q.fp_rate);
	double pm = fp_persistence(t, mod), pr = fp_persistence(t, rnd);
	cr_expect_gt(pm, 0.3, "modeled mistakes persist: %g", pm);
	cr_expect_lt(pr, 0.15, "random mistakes do not: %g", pr);
	cr_expect_gt(pm, 4 * pr, "modeled %g vs random %g", pm, pr);
	free(mod), free(rnd);
	trace_free(t);
}

Test(sim, correlated_mistakes_keep_the_windowed_load_low)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 1, 300);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result mod, rnd;
	sim_default_params(&p);
	p.predictor = PRED_MODELED;
	p.window = 5;
	p.warmup_tokens = 50;
	cr_assert_eq(sim_run(c, &d, &p, 1, &mod, NULL, &e), 0, "%s", e.msg);
	p.predictor = PRED_RANDOM;
	cr_assert_eq(sim_run(c, &d, &p, 1, &rnd, NULL, &e), 0, "%s", e.msg);
	/* independent per-token false positives inflate windowed loads several-fold */
	cr_expect_gt(rnd.load_frac_per_token, 2 * mod.load_frac_per_token, "random %g modeled %g",
		     rnd.load_frac_per_token, mod.load_frac_per_token);
	sim_cache_free(c);
	trace_free(t);
}

Test(sim, a_configuration_over_the_dram_budget_says_by_how_much)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 2, 60);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	sim_default_params(&p);
	p.dram_budget = 100000000; /* 0.1 GB: less than the embeddings alone */
	cr_expect_neq(sim_run(c, &d, &p, 1, &r, NULL, &e), 0);
	cr_expect(strstr(e.msg, "but the DRAM budget is 0.100 GB: over by") != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, "embeddings") && strstr(e.msg, "window"), "%s", e.msg);
	sim_cache_free(c);
	trace_free(t);
}

Test(sim, hybrid_auto_pins_what_the_budget_leaves)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 2, 60);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r0, r;
	sim_default_params(&p);
	cr_assert_eq(sim_run(c, &d, &p, 1, &r0, NULL, &e), 0, "%s", e.msg);
	snprintf(p.hybrid, sizeof p.hybrid, "auto");
	p.dram_budget = r0.dram_bytes + r0.dram_ffn_bytes / 4;
	cr_assert_eq(sim_run(c, &d, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	cr_expect_leq(r.dram_bytes, p.dram_budget);
	cr_expect_gt(r.hybrid_frac, 0.2);
	cr_expect_lt(r.io_ms, r0.io_ms);
	cr_expect_lt(r.load_frac_per_token, r0.load_frac_per_token);
	sim_cache_free(c);
	trace_free(t);
}

Test(sim, naive_reads_the_whole_model_at_the_sequential_rate)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 2, 10);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	sim_default_params(&p);
	p.strategy = SIM_NAIVE;
	cr_assert_eq(sim_run(c, &d, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	cr_expect_float_eq(r.bytes_read_per_token, (double)m.total_bytes, 1);
	double gbps = r.bytes_read_per_token / r.io_ms / 1e6;
	cr_expect(gbps > 6.0 && gbps <= 6.1, "%g GB/s", gbps);
	sim_cache_free(c);
	trace_free(t);
}

Test(sim, a_trace_of_another_shape_is_refused)
{
	struct llm_desc m = small_model(16), other = small_model(24);
	const char *rows[] = {"1110000000000000"};
	struct trace *t = hand_trace(&m, rows, 1);
	struct lif_err e = {0};
	cr_expect_null(sim_cache_new(t, &other, &e));
	cr_expect(strstr(e.msg, "the trace is 2 layers x 16 neurons but model small is 2 x 24"), "%s", e.msg);
	trace_free(t);
}

static const char *experiment(const char *name, const char *extra)
{
	char text[4096];
	snprintf(text, sizeof text,
		 "[experiment]\nmodel = %s\ndevice = %s\ntrace = synth\n[synth]\ntokens = 60\n"
		 "[sim]\nwindow = 0, 3\nlayout = rowcol, separate\npredictor = modeled\n%s",
		 tu_src("tests/data/tiny.ini"), tu_src("models/devices/m1max.ini"), extra);
	return tu_write(name, text);
}

Test(sim, sweep_results_are_identical_for_any_thread_count)
{
	char out[8192];
	const char *x = experiment("det.ini", "");
	cr_assert_eq(tu_lifsim(out, sizeof out, "--threads 1 sweep %s -o %s", x, tu_path("d1")), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "--threads 2 sweep %s -o %s", x, tu_path("d2")), 0, "%s", out);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "cmp -s %s/results.csv %s/results.csv", tu_path("d1"), tu_path("d2"));
	cr_expect_eq(system(cmd), 0, "results differ between 1 and 2 threads");
	snprintf(cmd, sizeof cmd, "grep -c , %s/results.csv", tu_path("d1"));
	FILE *f = popen(cmd, "r");
	int lines = 0;
	cr_assert_eq(fscanf(f, "%d", &lines), 1);
	pclose(f);
	cr_expect_eq(lines, 5); /* header + 4 points */
}

Test(sim, a_rerun_resumes_without_recomputing)
{
	char out[8192];
	const char *x = experiment("res.ini", "");
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s", x, tu_path("r")), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s", x, tu_path("r")), 0, "%s", out);
	cr_expect(strstr(out, "0 computed, 4 kept"), "%s", out);
}

struct bad_exp {
	char extra[128];
	char want[160];
};

static struct bad_exp bad_exps[] = {
	{"parallelism = 0\n", "bad.ini:11: [sim] parallelism: '0' is outside [1, 4096]"},
	{"nonsense = 3\n", "bad.ini:11: [sim] nonsense: unknown key"},
	{"layout = diagonal\n", "bad.ini:11: [sim] layout: 'diagonal' is not one of"},
	{"hybrid = most\n", "[sim] hybrid: 'most' is neither auto nor a fraction"},
	{"hybrid = auto\n", "hybrid = auto needs dram_budget or dram_budget_frac"},
	{"bits = 5\n", "bad.ini:11: [sim] bits: '5' is outside [0, 4]"},
	{"bits = 2\ngroup = 48\n", "bad.ini:12: [sim] group: '48' is not one of 32|64"},
	{"bits = 2\nkernel = simd\n", "bad.ini:12: [sim] kernel: 'simd' is not one of lut|dequant"},
	{"bits = 2\n", "device m1max: [compute] lut_weights_per_s: missing, but 2-bit weights"},
};

ParameterizedTestParameters(sim, experiment_errors_name_file_line_and_key)
{
	return cr_make_param_array(struct bad_exp, bad_exps, sizeof bad_exps / sizeof bad_exps[0]);
}

ParameterizedTest(struct bad_exp *b, sim, experiment_errors_name_file_line_and_key, .init = tu_init)
{
	char out[8192];
	const char *x = experiment("bad.ini", b->extra);
	cr_expect_neq(tu_lifsim(out, sizeof out, "sweep %s -o %s", x, tu_path("bad")), 0);
	cr_expect(strstr(out, b->want) != NULL, "'%s' lacks '%s'", out, b->want);
}

Test(sim, stepping_the_inputs_reproduces_the_simulated_loads)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 2, 80);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	struct sim_token tok[80];
	struct sim_inputs in;
	sim_default_params(&p);
	p.predictor = PRED_MODELED;
	p.window = 3;
	snprintf(p.hybrid, sizeof p.hybrid, "0.1");
	cr_assert_eq(sim_run(c, &d, &p, 1, &r, tok, &e), 0, "%s", e.msg);
	cr_assert_eq(sim_inputs_get(c, &p, r.pin_frac, 1, &in, &e), 0, "%s", e.msg);
	struct step_layer *s[2];
	for (int l = 0; l < 2; l++)
		s[l] = step_layer_new(in.layout, l, 80, in.window, in.max_gap,
				      in.pinned + (size_t)l * t->row_bytes, &e);
	for (int k = 0; k < 80; k++) { /* token-major, as replay runs */
		int64_t loaded = 0, bytes = 0;
		for (int l = 0; l < 2; l++) {
			struct step_out o;
			cr_assert_eq(step_layer_next(s[l], in.pred + ((size_t)l * 80 + k) * t->row_bytes, &o, &e), 0);
			loaded += o.nload;
			bytes += o.plan->bytes_read;
		}
		cr_expect_eq(loaded, tok[k].neurons_loaded, "token %d", k);
		cr_expect_eq(bytes, tok[k].bytes_read, "token %d", k);
	}
	for (int l = 0; l < 2; l++)
		step_layer_free(s[l]);
	sim_inputs_release(&in);
	sim_cache_free(c);
	trace_free(t);
}

Test(sim, per_token_detail_is_written_and_printed_as_csv)
{
	char out[16384], cmd[1024];
	const char *x = experiment("pt.ini", "[output]\nper_token = true\n");
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q sweep %s -o %s", x, tu_path("pt")), 0, "%s", out);
	snprintf(cmd, sizeof cmd, "ls %s/per_token/*.h5 | head -1", tu_path("pt"));
	FILE *p = popen(cmd, "r");
	char file[1024] = "";
	cr_assert(fgets(file, sizeof file, p));
	pclose(p);
	file[strcspn(file, "\n")] = '\0';
	cr_assert_eq(tu_lifsim(out, sizeof out, "tokens %s", file), 0, "%s", out);
	cr_expect(!strncmp(out, "token,io_ms,mem_ms,compute_ms,total_ms,bytes_read,reads,neurons_loaded\n0,", 73),
		  "%s", out);
	int lines = 0;
	for (char *c = out; *c; c++)
		lines += *c == '\n';
	cr_expect_eq(lines, 61); /* header + 60 tokens */
	cr_expect_neq(tu_lifsim(out, sizeof out, "tokens %s", x), 0);
	cr_expect(strstr(out, "not an HDF5 file"), "%s", out);
}

Test(sim, a_sweep_uses_trained_low_rank_predictors_on_a_recorded_trace)
{
	char out[16384], text[2048], prompt[512], trace[512], pred[512];
	/* tu_path's buffers rotate: keep copies */
	snprintf(prompt, sizeof prompt, "%s", tu_write("prompt.txt", "The Debian system is a free "
						       "operating system. It includes packages for many "
						       "architectures and the tools to manage them."));
	snprintf(trace, sizeof trace, "%s", tu_path("rec.h5"));
	snprintf(pred, sizeof pred, "%s", tu_path("pred.h5"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q record --model %s --prompt-file %s --generate 60 "
						"--inputs -o %s", tu_src("traces/tinylm"), prompt, trace), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q predictor train %s --rank 8 --holdout 0.25 -o %s",
			       trace, pred), 0, "%s", out);
	snprintf(text, sizeof text,
		 "[experiment]\nmodel = %s\ndevice = %s\ntrace = %s\n[sim]\npredictor = oracle, lowrank\n"
		 "predictor_file = %s\nwindow = 2\n", tu_src("models/llms/tinylm.ini"),
		 tu_src("models/devices/m1max.ini"), trace, pred);
	const char *x = tu_write("lowrank.ini", text);
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q sweep %s -o %s", x, tu_path("lr")), 0, "%s", out);
	char path[512];
	snprintf(path, sizeof path, "%s/results.csv", tu_path("lr"));
	FILE *f = fopen(path, "r");
	cr_assert(f);
	char line[8192];
	int rows = 0, imperfect = 0;
	cr_assert(fgets(line, sizeof line, f));
	while (fgets(line, sizeof line, f)) {
		rows++;
		imperfect += strstr(line, ",lowrank,") != NULL && strstr(line, ",1,0,") == NULL;
	}
	fclose(f);
	cr_expect_eq(rows, 2);
	cr_expect_eq(imperfect, 1, "the lowrank row should have its own recall and fp rate");
	/* without inputs in the trace, lowrank is a clear error */
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q record --model %s --prompt-file %s --generate 4 -o %s",
			       tu_src("traces/tinylm"), prompt, tu_path("noin.h5")), 0, "%s", out);
	snprintf(text, sizeof text,
		 "[experiment]\nmodel = %s\ndevice = %s\ntrace = %s\n[sim]\npredictor = lowrank\n"
		 "predictor_file = %s\n", tu_src("models/llms/tinylm.ini"),
		 tu_src("models/devices/m1max.ini"), tu_path("noin.h5"), pred);
	x = tu_write("noin.ini", text);
	cr_expect_neq(tu_lifsim(out, sizeof out, "-q sweep %s -o %s", x, tu_path("lr2")), 0);
	cr_expect(strstr(out, "needs the trace's FFN inputs"), "%s", out);
}
