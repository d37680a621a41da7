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
#include "sim/core/spec.h"
#include "sim/core/step.h"
#include "sim/core/timeline.h"
#include "sim/core/pred.h"
#include "sim/core/sim.h"
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

Test(sim, oracle_predicts_the_trace_and_none_predicts_every_neuron)
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
	cr_assert(s, "%s", e.msg);
	cr_expect_float_eq(q.predicted_frac, 1.0, 1e-12);
	free(s);
	trace_free(t);
}

/* The sets of predictor kind at recall 0.95, fp_rate 0.07 (seed 3) on t. */
static uint8_t *sets_of(const struct trace *t, int kind, struct pred_quality *q)
{
	struct lif_err e = {0};
	struct pred_params p = {kind, 0.95, 0.07, 3, NULL};
	uint8_t *s = pred_sets(t, &p, 1, q, &e);
	cr_assert(s, "%s", e.msg);
	return s;
}

Test(sim, modeled_predictor_hits_its_rates_with_false_positives_from_the_band)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 1, 200);
	struct pred_quality q;
	uint8_t *mod = sets_of(t, PRED_MODELED, &q);
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
	free(mod);
	trace_free(t);
}

Test(sim, modeled_mistakes_persist_across_tokens_and_random_ones_do_not)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 1, 200);
	struct pred_quality q;
	uint8_t *mod = sets_of(t, PRED_MODELED, &q), *rnd = sets_of(t, PRED_RANDOM, &q);
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

/* m1max() with a GPU backend: host-to-GPU at 1 GB/s (1 byte per ns), row
 * copies free and no bookkeeping, so the memory time is the transfer alone. */
static struct device gpu_of(struct device d, int64_t vram)
{
	d.dram.h2d_bytes_per_s = 1e9, d.dram.vram_bytes = vram;
	d.dram.copy_bytes_per_s = 1e30, d.dram.per_op_ns = 0;
	return d;
}

/* The small model (2 layers, d_model 4, 16 neurons, fp16: a bundle is 16 B,
 * the FFN 2 x 16 x 16 = 512 B), naive over 5 tokens at context 3: every
 * non-resident byte moves host-to-GPU each token; the KV cache holds
 * 2 (K, V) x 2 layers x 4 x (3 + 5) positions x 2 B = 256 B. */
Test(sim, gpu_naive_moves_every_non_resident_weight_each_token)
{
	struct llm_desc m = small_model(16);
	const char *rows[] = {"1", "1", "1", "1", "1"};
	struct trace *t = hand_trace(&m, rows, 5);
	struct device cpu = m1max(), gpu = gpu_of(cpu, 1 << 20);
	cpu.dram.copy_bytes_per_s = 1e30, cpu.dram.per_op_ns = 0;
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	sim_default_params(&p);
	p.strategy = SIM_NAIVE, p.context_tokens = 3;
	cr_assert_eq(m.ffn_bytes, 512);
	/* the whole model moves: flash -> host -> GPU */
	cr_assert_eq(sim_run(c, &gpu, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	cr_expect_float_eq(r.h2d_bytes_per_token, (double)m.total_bytes, 1e-9);
	cr_expect_float_eq(r.mem_ms, m.total_bytes * 1e-6, 1e-12, "%g ms", r.mem_ms);
	cr_expect_eq(r.vram_kv_bytes, 256);
	cr_expect_eq(r.vram_stage_bytes, m.total_bytes);
	cr_expect_eq(r.vram_bytes, m.total_bytes + 256); /* nothing resident: dram_bytes 0 */
	cr_expect_eq(r.vram_capacity_bytes, 1 << 20);
	/* attention and embeddings resident in VRAM: only the FFN moves */
	p.naive_keep_dense = 1;
	cr_assert_eq(sim_run(c, &gpu, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	cr_expect_float_eq(r.h2d_bytes_per_token, 512, 1e-9);
	cr_expect_float_eq(r.mem_ms, 512e-6, 1e-12, "%g ms", r.mem_ms);
	cr_expect_eq(r.vram_bytes, m.embed_bytes + m.attn_bytes + 256 + 512);
	/* a CPU backend moves nothing to a GPU and has no VRAM */
	cr_assert_eq(sim_run(c, &cpu, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(r.mem_ms, 0);
	cr_expect_eq(r.h2d_bytes_per_token, 0);
	cr_expect_eq(r.vram_bytes, 0);
	sim_cache_free(c);
	trace_free(t);
}

/* The windowing trace (k = 2) on a GPU: per layer the tokens load 3, 1, 1, 1, 0
 * rows (12 in both layers over 5 tokens), each a 16 B bundle, so 38.4 B move
 * host-to-GPU per token, 38.4 ns at 1 GB/s; the VRAM holds what DRAM holds on
 * a CPU plus the KV cache (2 x 2 x 4 x 5 x 2 B = 160 B), and one byte less
 * capacity refuses the point. */
Test(sim, gpu_sparse_moves_the_loaded_rows_and_refuses_what_does_not_fit)
{
	struct llm_desc m = small_model(16);
	const char *rows[] = {"1110000000000000", "0101000000000000", "0000100000000000",
			      "1100000000000000", "0000000000000000"};
	struct trace *t = hand_trace(&m, rows, 5);
	struct device gpu = gpu_of(m1max(), 1 << 20);
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	sim_default_params(&p);
	p.window = 2, p.context_tokens = 0;
	cr_assert_eq(sim_run(c, &gpu, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	cr_expect_float_eq(r.h2d_bytes_per_token, 12 * 16 / 5.0, 1e-9);
	cr_expect_float_eq(r.mem_ms, 38.4e-6, 1e-12, "%g ms", r.mem_ms);
	cr_expect_eq(r.vram_kv_bytes, 160);
	cr_expect_eq(r.vram_stage_bytes, 0);
	cr_expect_eq(r.vram_bytes, r.dram_bytes + 160);
	cr_expect_gt(r.dram_window_bytes, 0);
	int64_t need = r.vram_bytes;
	gpu.dram.vram_bytes = need - 1;
	cr_expect_neq(sim_run(c, &gpu, &p, 1, &r, NULL, &e), 0);
	cr_expect(strstr(e.msg, "device m1max: needs ") && strstr(e.msg, "KV cache") &&
		  strstr(e.msg, "but [dram] vram_bytes is"), "%s", e.msg);
	gpu.dram.vram_bytes = need;
	cr_expect_eq(sim_run(c, &gpu, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
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

/* The h2d and vram_* columns appear in every row of a sweep with a GPU
 * point (empty of meaning, 0, on the CPU rows) and in no CPU-only sweep. */
Test(sim, a_sweep_with_a_gpu_point_adds_the_gpu_columns_to_every_row)
{
	char out[8192], extra[1024], cmd[1024];
	snprintf(extra, sizeof extra,
		 "[sweep]\nrows = cpu, gpu\n[row cpu]\nsim.window = 0\n[row gpu]\n"
		 "experiment.device = %s\n", tu_src("models/devices/rtx4090.ini"));
	const char *x = experiment("mixed.ini", extra);
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s", x, tu_path("mixed")), 0, "%s", out);
	snprintf(cmd, sizeof cmd, "head -1 %s/results.csv | grep -q ',h2d_bytes_per_token,vram_bytes,"
		 "vram_kv_bytes,vram_stage_bytes,vram_capacity_bytes'", tu_path("mixed"));
	cr_expect_eq(system(cmd), 0, "the GPU columns are missing");
	snprintf(cmd, sizeof cmd, "grep -c ',25769803776' %s/results.csv", tu_path("mixed"));
	FILE *f = popen(cmd, "r");
	int gpu_rows = 0;
	cr_assert_eq(fscanf(f, "%d", &gpu_rows), 1);
	pclose(f);
	cr_expect_eq(gpu_rows, 4, "the GPU row's capacity (24 GiB): windows 0, 3 x two layouts");
	x = experiment("cpu.ini", "");
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s", x, tu_path("cpu")), 0, "%s", out);
	snprintf(cmd, sizeof cmd, "grep -q vram %s/results.csv", tu_path("cpu"));
	cr_expect_neq(system(cmd), 0, "a CPU-only sweep has no GPU columns");
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

/* Budgets in the dtype held (issue 14): dram_budget_frac is a fraction of the
 * model as it sits in DRAM (compute_dtype), so the same fraction is the same
 * share of the model, and hybrid = auto fills it, whatever the dtypes. */
struct budget_case {
	int compute_dtype;
	int bytes; /* per weight */
};

static struct budget_case budget_cases[] = {
	{LLM_FP32, 4}, {LLM_FP16, 2}, {LLM_BF16, 2}, {LLM_INT8, 1}};

ParameterizedTestParameters(sim, the_dram_budget_is_a_share_of_the_model_as_held)
{
	return cr_make_param_array(struct budget_case, budget_cases,
				   sizeof budget_cases / sizeof budget_cases[0]);
}

ParameterizedTest(struct budget_case *bc, sim, the_dram_budget_is_a_share_of_the_model_as_held,
		  .init = tu_init)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 2, 60);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	sim_default_params(&p);
	p.compute_dtype = bc->compute_dtype;
	snprintf(p.hybrid, sizeof p.hybrid, "auto");
	p.dram_budget_frac = 0.7;
	cr_assert_eq(sim_run(c, &d, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	/* the fp16 description's bytes, scaled to the dtype held */
	double held = (double)m.total_bytes / 2 * bc->bytes;
	cr_expect(fabs((double)r.dram_budget_bytes - 0.7 * held) <= 1, "budget %lld, want %.0f",
		  (long long)r.dram_budget_bytes, 0.7 * held);
	cr_expect_leq(r.dram_bytes, r.dram_budget_bytes);
	/* the FFN is 2/3 of this 2-layer model: 70% leaves room to pin a good part */
	cr_expect_gt(r.hybrid_frac, 0.2, "pinned %g", r.hybrid_frac);
	cr_expect_eq(r.dram_ffn_bytes, (int64_t)m.ffn_bytes / 2 * bc->bytes);
	sim_cache_free(c);
	trace_free(t);
}

/* Per-layer predictor ranks (the paper: OPT 128 for the first layers, 1024 for
 * the last 4): DRAM counts r x (d_model + d_ffn) weights per layer in DRAM's
 * dtype, and compute their two products. 2 layers of OPT-6.7B, the last
 * one's predictor of rank 1024, on the M1 Max's flat 200 GB/s. */
Test(sim, each_layer_predictor_is_counted_in_dram_and_compute)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 2, 60);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r, r0, rn;
	sim_default_params(&p);
	p.predictor = PRED_MODELED;
	p.compute_dtype = LLM_FP32;
	p.predictor_rank = 128, p.predictor_rank_last = 1024, p.predictor_last_layers = 1;
	cr_assert_eq(sim_run(c, &d, &p, 1, &r, NULL, &e), 0, "%s", e.msg);
	const double w = 4096 + 16384;
	cr_expect_eq(r.dram_predictor_bytes, (int64_t)((128 + 1024) * w * 4));
	p.predictor_rank = 0, p.predictor_rank_last = 0;
	cr_assert_eq(sim_run(c, &d, &p, 1, &r0, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(r0.dram_predictor_bytes, 0);
	/* the same decisions, plus (128 + 1024) x 20480 x 4 B at 200 GB/s = 0.4719 ms */
	double want = (128 + 1024) * w * 4 / 200e9 * 1e3;
	cr_expect(fabs(r.compute_ms - r0.compute_ms - want) < 1e-9, "%g ms, want %g",
		  r.compute_ms - r0.compute_ms, want);
	cr_expect_eq(r.io_ms, r0.io_ms);
	/* no predictor, nothing counted */
	p.predictor = PRED_NONE, p.predictor_rank = 128;
	cr_assert_eq(sim_run(c, &d, &p, 1, &rn, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(rn.dram_predictor_bytes, 0);
	/* more last layers than the model has is refused */
	p.predictor = PRED_MODELED, p.predictor_last_layers = 3;
	cr_expect_neq(sim_run(c, &d, &p, 1, &rn, NULL, &e), 0);
	cr_expect(strstr(e.msg, "predictor_last_layers: 3 is more than the model's 2 layers"), "%s",
		  e.msg);
	sim_cache_free(c);
	trace_free(t);
}

/* ---- the pipelined timeline (sim/core/timeline.h), worked by hand ---- */

struct timeline_case {
	char name[16];
	double io[3], cpu[3];
	int depth;
	double none, pipelined; /* ns, tail 2 */
};

static struct timeline_case timeline_cases[] = {
	/* I/O bound: the reads back to back, then the last layer's compute */
	{"io-bound", {10, 10, 10}, {1, 1, 1}, 1, 35, 10 + 10 + 10 + 1 + 2},
	/* compute bound: the first read, then the compute back to back */
	{"compute-bound", {1, 1, 1}, {10, 10, 10}, 1, 35, 1 + 10 + 10 + 10 + 2},
	/* balanced: (L + 1) x 5 */
	{"balanced", {5, 5, 5}, {5, 5, 5}, 1, 32, 4 * 5 + 2},
	/* one buffer: layer 2's long read waits for layer 1's compute to start (11)
	 * -> [11, 21], compute [21, 22] */
	{"depth-1", {1, 1, 10}, {10, 1, 1}, 1, 26, 22 + 2},
	/* two buffers: layer 2 reads from 2 -> [2, 12], computes [12, 13] */
	{"depth-2", {1, 1, 10}, {10, 1, 1}, 2, 26, 13 + 2},
};

ParameterizedTestParameters(timeline, hand_worked_cases)
{
	return cr_make_param_array(struct timeline_case, timeline_cases,
				   sizeof timeline_cases / sizeof timeline_cases[0]);
}

ParameterizedTest(struct timeline_case *tc, timeline, hand_worked_cases)
{
	cr_expect_eq(timeline_token_ns(TIMELINE_NONE, tc->io, tc->cpu, 3, tc->depth, 2), tc->none,
		     "%s", tc->name);
	cr_expect_eq(timeline_token_ns(TIMELINE_PIPELINED, tc->io, tc->cpu, 3, tc->depth, 2),
		     tc->pipelined, "%s: %g", tc->name,
		     timeline_token_ns(TIMELINE_PIPELINED, tc->io, tc->cpu, 3, tc->depth, 2));
}

/* The reader's CPU work (the stored-to-held conversion, place) on the
 * timeline: it follows the layer's reads on the reader, delays that layer's
 * compute, and with the CPU contended stalls the compute it overlaps. */
struct timeline_cpu_case {
	char name[24];
	double io[3], place[3], cpu[3];
	double none, free_core, contended; /* ns, depth 1, tail 2 */
};

static struct timeline_cpu_case timeline_cpu_cases[] = {
	/* compute bound: reader 0 [0,1] place [1,3]; compute 0 from 3; place 1
	 * [4,6] inside it: contended, compute 0 ends 15 (not 13), place 2 [16,18]
	 * inside compute 1 [15,27]; compute 2 [27,37]: io0 + place0 + sum(cpu) +
	 * place1 + place2 + tail. With a free core: 1 + 2 + 30 + 2. */
	{"compute-bound", {1, 1, 1}, {2, 2, 2}, {10, 10, 10}, 41, 35, 39},
	/* I/O bound: every conversion runs while the compute waits for rows:
	 * sum(io) + sum(place) + cpu[2] + tail either way */
	{"io-bound", {10, 10, 10}, {2, 2, 2}, {1, 1, 1}, 41, 39, 39},
	/* balanced, partly overlapping: reader 0 [0,4] place [4,6]; compute 0 [6,
	 * 11) meets place 1 [10,12]: contended it runs 4, stalls to 12, runs 1
	 * -> 13; reader 2 [13,17] place [17,19] inside compute 1 [13,18): 4 run,
	 * stall to 19, 1 -> 20; compute 2 [20,25] + 2 = 27. Free core: compute 1
	 * waits for place 1 (12), reader 2 [12,16] place [16,18], compute 2
	 * [18,23] + 2 = 25. */
	{"balanced", {4, 4, 4}, {2, 2, 2}, {5, 5, 5}, 35, 25, 27},
};

ParameterizedTestParameters(timeline, reader_cpu_cases)
{
	return cr_make_param_array(struct timeline_cpu_case, timeline_cpu_cases,
				   sizeof timeline_cpu_cases / sizeof timeline_cpu_cases[0]);
}

ParameterizedTest(struct timeline_cpu_case *tc, timeline, reader_cpu_cases)
{
	for (int c = 0; c < 2; c++)
		cr_expect_eq(timeline_token_cpu_ns(TIMELINE_NONE, tc->io, tc->place, tc->cpu, 3, 1, 2, c),
			     tc->none, "%s", tc->name);
	double f = timeline_token_cpu_ns(TIMELINE_PIPELINED, tc->io, tc->place, tc->cpu, 3, 1, 2, 0);
	double k = timeline_token_cpu_ns(TIMELINE_PIPELINED, tc->io, tc->place, tc->cpu, 3, 1, 2, 1);
	cr_expect_eq(f, tc->free_core, "%s: free core %g", tc->name, f);
	cr_expect_eq(k, tc->contended, "%s: contended %g", tc->name, k);
}

/* No reader CPU work: the contended timeline is the plain one. */
Test(timeline, no_place_is_the_plain_timeline)
{
	const double io[3] = {1, 1, 10}, cpu[3] = {10, 1, 1}, zero[3] = {0};
	for (int depth = 1; depth <= 3; depth++) {
		double a = timeline_token_ns(TIMELINE_PIPELINED, io, cpu, 3, depth, 2);
		cr_expect_eq(timeline_token_cpu_ns(TIMELINE_PIPELINED, io, zero, cpu, 3, depth, 2, 1), a);
		cr_expect_eq(timeline_token_cpu_ns(TIMELINE_PIPELINED, io, NULL, cpu, 3, depth, 2, 1), a);
	}
}

/* The stored-to-held conversion (models/dram.h): rows stored fp16 and held
 * fp32 cost loaded rows x fp16 bundle bytes / convert_bytes_per_s more
 * memory-manager time; nothing when the dtypes agree or without a rate; with
 * overlap = pipelined and a contended CPU the total grows by at least the
 * conversions' share that cannot hide behind the reads. */
Test(sim, conversion_is_charged_when_dtypes_differ)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 4, 60);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result a, b, same, pa, pf, pc;
	sim_default_params(&p);
	p.compute_dtype = LLM_FP32;
	cr_assert_eq(sim_run(c, &d, &p, 1, &a, NULL, &e), 0, "%s", e.msg);
	d.dram.convert_bytes_per_s = 1e9;
	cr_assert_eq(sim_run(c, &d, &p, 1, &b, NULL, &e), 0, "%s", e.msg);
	const double fp16_bundle = (double)m.ffn_matrices * m.d_model * 2;
	const double loaded = b.load_frac_per_token * m.layers * m.d_ffn;
	cr_expect_gt(loaded, 0);
	cr_expect(fabs(b.mem_ms - a.mem_ms - loaded * fp16_bundle / 1e9 * 1e3) < 1e-6 * b.mem_ms,
		  "mem %g -> %g for %g rows", a.mem_ms, b.mem_ms, loaded);
	cr_expect_eq(b.io_ms, a.io_ms);
	cr_expect_eq(b.compute_ms, a.compute_ms);
	p.compute_dtype = LLM_FP16; /* stored as held: nothing to convert */
	struct sim_result a16;
	cr_assert_eq(sim_run(c, &d, &p, 1, &same, NULL, &e), 0, "%s", e.msg);
	d.dram.convert_bytes_per_s = 0;
	cr_assert_eq(sim_run(c, &d, &p, 1, &a16, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(same.mem_ms, a16.mem_ms);
	cr_expect_eq(same.total_ms, a16.total_ms);
	/* pipelined: no rate, a free core, a contended CPU */
	p.compute_dtype = LLM_FP32, p.overlap = TIMELINE_PIPELINED;
	cr_assert_eq(sim_run(c, &d, &p, 1, &pa, NULL, &e), 0, "%s", e.msg);
	d.dram.convert_bytes_per_s = 1e9, d.compute.cores = 10, d.compute.threads = 8;
	cr_assert_eq(sim_run(c, &d, &p, 1, &pf, NULL, &e), 0, "%s", e.msg);
	d.compute.threads = 0; /* all cores */
	cr_assert_eq(sim_run(c, &d, &p, 1, &pc, NULL, &e), 0, "%s", e.msg);
	cr_expect_gt(pf.total_ms, pa.total_ms);
	cr_expect_gt(pc.total_ms, pf.total_ms);
	/* contended, the conversions never hide: at least compute + all of them */
	cr_expect_geq(pc.total_ms + 1e-9, pc.compute_ms + (pc.mem_ms - pa.mem_ms));
	cr_expect_leq(pc.total_ms, b.total_ms + 1e-9);
	sim_cache_free(c);
	trace_free(t);
}

/* In the simulator: pipelined keeps the parts and shortens the total, by at
 * most the smaller of I/O and CPU time, never below the larger. */
Test(sim, pipelined_overlap_shortens_the_total_within_its_bounds)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 4, 60);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result a, b;
	sim_default_params(&p);
	cr_assert_eq(sim_run(c, &d, &p, 1, &a, NULL, &e), 0, "%s", e.msg);
	p.overlap = TIMELINE_PIPELINED;
	cr_assert_eq(sim_run(c, &d, &p, 1, &b, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(a.io_ms, b.io_ms);
	cr_expect_eq(a.compute_ms, b.compute_ms);
	cr_expect_eq(a.mem_ms, b.mem_ms);
	cr_expect(fabs(a.total_ms - (a.io_ms + a.mem_ms + a.compute_ms)) < 1e-9);
	cr_expect_lt(b.total_ms, a.total_ms);
	cr_expect_geq(b.total_ms + 1e-9, fmax(b.io_ms, b.mem_ms + b.compute_ms));
	cr_expect_geq(b.total_ms + 1e-9, a.total_ms - fmin(a.io_ms, a.mem_ms + a.compute_ms));
	sim_cache_free(c);
	trace_free(t);
}

/* ---- speculative decoding (sim/core/spec.h) on hand-made sets ---- */

TestSuite(spec, .init = tu_init);

/* 8 neurons of one layer; sets as strings of 0/1 */
static void set_of(uint8_t *row, const char *bits)
{
	row[0] = 0;
	for (int i = 0; bits[i]; i++)
		if (bits[i] == '1')
			row[0] |= (uint8_t)(1u << i);
}

Test(spec, verification_loads_the_union_and_the_window_follows_the_accepted_tokens)
{
	struct llm_desc m = small_model(8);
	struct lif_err e = {0};
	struct layout *lay = layout_new(LAYOUT_ROWCOL, &m, NULL, 1, 0, 1, &e);
	cr_assert(lay, "%s", e.msg);
	struct spec_layer *s = spec_layer_new(lay, 0, 1, -1, NULL, &e);
	cr_assert(s, "%s", e.msg);
	uint8_t p[4][1];
	set_of(p[0], "10000000"), set_of(p[1], "01000000");
	set_of(p[2], "00100000"), set_of(p[3], "00010000");
	const uint8_t *r[3] = {p[0], p[1], p[2]};
	struct spec_out o;
	/* step 0, lambda 2: positions 0, 1, 2 -> loads {0, 1, 2}; the first draft is
	 * rejected, one token emitted: the window (k = 1) keeps token 0's {0} and
	 * the rejected drafts' {1, 2} are deleted */
	cr_assert_eq(spec_layer_step(s, r, 3, 1, &o, &e), 0, "%s", e.msg);
	cr_expect_eq(o.nunion, 3);
	cr_expect_eq(o.nload, 3);
	cr_expect_eq(o.used_rows, 3);
	cr_expect_eq(o.ndie, 2);
	cr_expect_eq(o.window_rows, 1);
	cr_expect_eq(o.plan->bytes_read, 3 * m.bundle_bytes);
	/* step 1 at token 1: positions 1, 2, 3 -> {1, 2, 3}, none resident, 3 loads;
	 * all accepted (3 tokens emitted): the window is token 3's {3} */
	const uint8_t *r2[3] = {p[1], p[2], p[3]};
	cr_assert_eq(spec_layer_step(s, r2, 3, 3, &o, &e), 0, "%s", e.msg);
	cr_expect_eq(o.nload, 3);
	cr_expect_eq(o.used_rows, 4);
	cr_expect_eq(o.ndie, 3);
	cr_expect_eq(o.window_rows, 1);
	/* emitted must be in 1..n */
	cr_expect_neq(spec_layer_step(s, r2, 3, 4, &o, &e), 0);
	spec_layer_free(s);
	layout_free(lay);
}

/* lambda = 0 is the ordinary stepper, load for load and copy for copy */
Test(spec, one_position_per_step_is_the_stepper)
{
	struct llm_desc m = small_model(16);
	struct lif_err e = {0};
	struct layout *lay = layout_new(LAYOUT_ROWCOL, &m, NULL, 1, 0, 1, &e);
	cr_assert(lay, "%s", e.msg);
	uint8_t pin[2] = {0x81, 0x00}; /* neurons 0 and 7 pinned */
	struct spec_layer *s = spec_layer_new(lay, 1, 2, 0, pin, &e);
	struct step_layer *st = step_layer_new(lay, 1, 40, 2, 0, pin, &e);
	cr_assert(s && st, "%s", e.msg);
	uint64_t z = 12345;
	for (int t = 0; t < 40; t++) {
		uint8_t row[2];
		z = z * 6364136223846793005ULL + 1442695040888963407ULL;
		row[0] = (uint8_t)(z >> 40), row[1] = (uint8_t)(z >> 52);
		const uint8_t *r[1] = {row};
		struct spec_out o;
		struct step_out so;
		cr_assert_eq(spec_layer_step(s, r, 1, 1, &o, &e), 0, "%s", e.msg);
		cr_assert_eq(step_layer_next(st, row, &so, &e), 0, "%s", e.msg);
		cr_expect_eq(o.nload, so.nload, "token %d", t);
		cr_expect_eq(o.ndie, so.ndie, "token %d", t);
		cr_expect_eq(o.nmoves, so.nmoves, "token %d", t);
		cr_expect_eq(o.used_rows, so.used_rows, "token %d", t);
		cr_expect_eq(o.window_rows, so.window_rows, "token %d", t);
		cr_expect_eq(o.plan->bytes_read, so.plan->bytes_read, "token %d", t);
	}
	spec_layer_free(s);
	step_layer_free(st);
	layout_free(lay);
}

Test(spec, drafts_are_accepted_at_the_rate_until_the_first_rejection)
{
	cr_expect_eq(spec_accepted(0.0, 4, 1, 7), 0);
	cr_expect_eq(spec_accepted(1.0, 4, 1, 7), 4);
	cr_expect_eq(spec_accepted(0.7, 4, 1, 7), spec_accepted(0.7, 4, 1, 7));
	/* E[a] = sum_{i=1..lambda} alpha^i: 0.7 + 0.49 + 0.343 + 0.2401 = 1.7731 */
	double sum = 0;
	for (int64_t k = 0; k < 20000; k++)
		sum += spec_accepted(0.7, 4, 1, k);
	cr_expect(fabs(sum / 20000 - 1.7731) < 0.03, "%g", sum / 20000);
}

Test(spec, speculative_points_need_a_draft_model)
{
	struct llm_desc m;
	struct trace *t = opt_trace(&m, 2, 30);
	struct device d = m1max();
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	sim_default_params(&p);
	p.spec_lambda = 2;
	cr_expect_neq(sim_run(c, &d, &p, 1, &r, NULL, &e), 0);
	cr_expect(strstr(e.msg, "spec_lambda > 0 needs") != NULL, "%s", e.msg);
	/* with one (the model itself as its own draft) every token is emitted once */
	p.draft = m;
	p.warmup_tokens = 0;
	err_clear(&e);
	struct sim_token tok[30];
	cr_assert_eq(sim_run(c, &d, &p, 1, &r, tok, &e), 0, "%s", e.msg);
	cr_expect_eq(r.tokens, 30);
	cr_expect_gt(r.compute_ms, 0);
	/* per token: each step's costs shared by the tokens it emitted */
	double sum = 0;
	for (int k = 0; k < 30; k++)
		sum += tok[k].total_ms;
	cr_expect(fabs(sum / 30 - r.total_ms) < 1e-9 * r.total_ms, "%g vs %g", sum / 30, r.total_ms);
	sim_cache_free(c);
	trace_free(t);
}
