#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <hdf5.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "models/compute.h"
#include "models/device.h"
#include "models/flash.h"
#include "sim/core/moe.h"
#include "sim/core/timeline.h"
#include "traces/router.h"
#include "traces/router_stats.h"
#include "traces/router_synth.h"
#include "traces/trace.h"
#include "tests/testutil.h"

TestSuite(moe, .init = tu_init);

/* A one-layer trace of E experts, top-k, from rows (T, k). */
static struct router_trace *hand_trace(int E, int k, int T, const int16_t *rows)
{
	struct router_meta m = {.model = "hand", .layers = 1, .experts = E, .top_k = k,
				.d_expert = 32, .tokens = T};
	struct lif_err e = {0};
	struct router_trace *rt = router_trace_new(&m, &e);
	cr_assert_not_null(rt, "%s", e.msg);
	memcpy(rt->ids, rows, (size_t)T * k * sizeof *rows);
	for (int i = 0; i < T * k; i++)
		rt->weights[i] = 1.0f / k;
	return rt;
}

static const int16_t hand_rows[] = {0, 1, 0, 2, 1, 2, 0, 1};

static struct llm_desc hand_model(void)
{
	struct llm_desc d = {.name = "hand", .layers = 1, .d_model = 64, .d_ffn = 32, .heads = 4,
			     .vocab = 100, .ffn_kind = LLM_FFN_GATED3, .dtype = LLM_FP16,
			     .experts = 4, .experts_per_token = 2, .d_expert = 32};
	struct lif_err e = {0};
	cr_assert_eq(llm_derive(&d, "hand", &e), 0, "%s", e.msg);
	return d;
}

/* Hits of each policy on 0,1 | 0,2 | 1,2 | 0,1 with two experts held, worked by hand
 * (the comment in each row is the cache after each token). */
Test(moe, hand_made_trace_gives_hand_worked_hits)
{
	struct router_trace *rt = hand_trace(4, 2, 4, hand_rows);
	struct { const char *name; int64_t hits; } want[] = {
		{"lru", 2},    /* [0,1] [0,2] [2,1] [0,1] */
		{"lfu", 1},    /* [0,1] [0,2] [1,2] [0,1] */
		{"static", 4}, /* pinned {0,1}: 0,1 | 0 | 1 | 0,1 after loading */
		{"belady", 4}, /* [0,1] [1,2] [1,2] [1,2] (0 bypassed at the end) */
	};
	struct lif_err e = {0};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		int64_t h = -1;
		cr_assert_eq(moe_layer_hits(rt, 0, moe_cache_find(want[i].name), 2, &h, &e), 0, "%s", e.msg);
		cr_expect_eq(h, want[i].hits, "%s: %lld hits", want[i].name, (long long)h);
	}
	int64_t hist[5], first;
	router_stack_distances(rt, 0, hist, &first);
	cr_expect_eq(first, 3);
	cr_expect_eq(hist[1], 0);
	cr_expect_eq(hist[2], 2);
	cr_expect_eq(hist[3], 3);
	router_trace_free(rt);
}

Test(moe, hand_made_trace_gives_hand_worked_bytes_and_times)
{
	struct router_trace *rt = hand_trace(4, 2, 4, hand_rows);
	struct llm_desc m = hand_model();
	struct device dev;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	struct moe_params p = {.cache_policy = "lru", .expert_cache = 2, .parallelism = 1,
			       .max_gap = -1, .layout = MOE_LAYOUT_EXPERT};
	struct moe_result r;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &r, &e), 0, "%s", e.msg);
	int64_t eb = 3 * 32 * 64 * 2; /* one expert: gate, up, down, 32 rows of 64 fp16 */
	cr_expect_eq(m.expert_bytes, eb);
	cr_expect_float_eq(r.expert_hit_rate, 2.0 / 8, 1e-12);
	/* 6 misses over 4 tokens, each its own read */
	cr_expect_float_eq(r.expert_bytes_read_per_token, 6.0 * eb / 4, 1e-9);
	cr_expect_float_eq(r.reads_per_token, 1.5, 1e-12);
	double one = flash_extent_ns(&dev.flash, eb, 1);
	cr_expect_float_eq(r.io_ms, 6 * one / 4 * 1e-6, 1e-9);
	/* 6 inserts and 4 evictions: 2.5 operations per token; each insert copies
	 * its expert from staging into the cache: 1.5 x 12288 = 18432 bytes per
	 * token at the profile's 15e9 B/s = 1228.8 ns, + 2.5 x 1000 ns */
	cr_expect_float_eq(r.expert_bytes_copied_per_token, 18432, 1e-9);
	cr_expect_float_eq(r.mem_ms, (1228.8 + 2500) * 1e-6, 1e-12);
	cr_expect_float_eq(r.total_ms, r.io_ms + r.mem_ms + r.compute_ms, 1e-12);
	/* merging touching experts: 0,1 | 2 | 1 | 0,1 are one read each */
	p.max_gap = 0;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &r, &e), 0, "%s", e.msg);
	cr_expect_float_eq(r.reads_per_token, 1.0, 1e-12);
	cr_expect_float_eq(r.io_ms, (2 * flash_extent_ns(&dev.flash, 2 * eb, 1) + 2 * one) / 4 * 1e-6,
			   1e-9);
	/* per matrix: three reads per missed expert */
	p.max_gap = -1;
	p.layout = MOE_LAYOUT_MATRIX;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &r, &e), 0, "%s", e.msg);
	cr_expect_float_eq(r.reads_per_token, 4.5, 1e-12);
	cr_expect_float_eq(r.expert_bytes_read_per_token, 6.0 * eb / 4, 1e-9);
	router_trace_free(rt);
}

Test(moe, prefetch_reads_wrong_experts_for_nothing_and_oracle_wastes_none)
{
	struct router_trace *rt = hand_trace(4, 2, 4, hand_rows);
	struct llm_desc m = hand_model();
	struct device dev;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	struct moe_params p = {.cache_policy = "lru", .expert_cache = 2, .parallelism = 1,
			       .max_gap = -1, .prefetch = MOE_PREFETCH_ORACLE};
	struct moe_result r;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &r, &e), 0, "%s", e.msg);
	cr_expect_float_eq(r.prefetch_wasted_bytes_per_token, 0, 1e-12);
	cr_expect_float_eq(r.io_ahead_ms, r.io_ms, 1e-12); /* every miss was read ahead */
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	p.prefetch = MOE_PREFETCH_MODELED;
	p.prefetch_accuracy = 0;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, rng, &r, &e), 0, "%s", e.msg);
	/* two wrong experts per token; a wrong one already resident is not read */
	cr_expect(r.prefetch_wasted_bytes_per_token > 0);
	cr_expect(r.prefetch_wasted_bytes_per_token <= 2.0 * m.expert_bytes);
	cr_expect_float_eq(r.expert_hit_rate, 2.0 / 8, 1e-12); /* wrong reads are not kept */
	gsl_rng_free(rng);
	router_trace_free(rt);
}

static struct router_trace *random_trace(int E, int k, int L, double zipf, double repeat,
					 int64_t seed)
{
	struct llm_desc d = {.name = "rand", .layers = L, .d_model = 64, .d_ffn = 32, .heads = 4,
			     .vocab = 100, .ffn_kind = LLM_FFN_GATED3, .dtype = LLM_FP16,
			     .experts = E, .experts_per_token = k, .d_expert = 32};
	struct lif_err e = {0};
	cr_assert_eq(llm_derive(&d, "rand", &e), 0, "%s", e.msg);
	struct router_synth_params p;
	router_synth_defaults(&p);
	p.tokens = 300, p.seed = seed, p.zipf = zipf, p.repeat = repeat, p.layer_corr = 0.3;
	struct router_trace *rt = router_synth_generate(&d, &p, &e);
	cr_assert_not_null(rt, "%s", e.msg);
	return rt;
}

struct rand_case {
	int experts, top_k;
	double zipf, repeat;
	int64_t seed;
};

static struct rand_case rand_cases[] = {
	{8, 2, 0.0, 0.0, 1}, {16, 4, 0.5, 0.35, 2}, {32, 4, 1.2, 0.1, 3},
	{64, 8, 0.3, 0.6, 4}, {12, 1, 0.8, 0.2, 5}, {40, 6, 0.0, 0.9, 6},
};

ParameterizedTestParameters(moe, belady_hits_at_least_every_policy_on_random_traces)
{
	return cr_make_param_array(struct rand_case, rand_cases,
				   sizeof rand_cases / sizeof rand_cases[0]);
}

ParameterizedTest(struct rand_case *c, moe, belady_hits_at_least_every_policy_on_random_traces,
		  .init = tu_init)
{
	struct router_trace *rt = random_trace(c->experts, c->top_k, 2, c->zipf, c->repeat, c->seed);
	struct lif_err e = {0};
	for (int l = 0; l < 2; l++)
		for (int cap = 0; cap <= c->experts; cap++) {
			int64_t best;
			cr_assert_eq(moe_layer_hits(rt, l, moe_cache_find("belady"), cap, &best, &e), 0);
			for (int i = 0; moe_cache_policies[i]; i++) {
				int64_t h;
				cr_assert_eq(moe_layer_hits(rt, l, moe_cache_policies[i], cap, &h, &e), 0);
				cr_expect(best >= h, "cache %d layer %d: belady %lld < %s %lld", cap, l,
					  (long long)best, moe_cache_policies[i]->name, (long long)h);
			}
		}
	router_trace_free(rt);
}

ParameterizedTestParameters(moe, one_pass_stack_distance_curve_equals_lru_at_every_size)
{
	return cr_make_param_array(struct rand_case, rand_cases,
				   sizeof rand_cases / sizeof rand_cases[0]);
}

ParameterizedTest(struct rand_case *c, moe, one_pass_stack_distance_curve_equals_lru_at_every_size,
		  .init = tu_init)
{
	struct router_trace *rt = random_trace(c->experts, c->top_k, 2, c->zipf, c->repeat, c->seed);
	struct router_stats s;
	struct lif_err e = {0};
	cr_assert_eq(router_stats_compute(rt, &s, &e), 0, "%s", e.msg);
	double n = (double)rt->meta.tokens * rt->meta.top_k;
	for (int l = 0; l < 2; l++)
		for (int cap = 0; cap <= c->experts; cap++) {
			int64_t h;
			cr_assert_eq(moe_layer_hits(rt, l, moe_cache_find("lru"), cap, &h, &e), 0);
			cr_expect_float_eq(s.layer[l].lru_hit[cap], h / n, 1e-12, "layer %d cache %d", l, cap);
		}
	router_stats_free(&s);
	router_trace_free(rt);
}

Test(moe, router_trace_round_trips_and_the_neuron_reader_names_it)
{
	struct router_trace *rt = random_trace(16, 4, 3, 0.5, 0.3, 9);
	const char *p = tu_path("router.h5");
	struct lif_err e = {0};
	cr_assert_eq(router_write(p, rt, &e), 0, "%s", e.msg);
	cr_expect(router_is_router_trace(p));
	struct router_trace *back = router_load(p, &e);
	cr_assert_not_null(back, "%s", e.msg);
	size_t n = (size_t)3 * rt->meta.tokens * 4;
	cr_expect_eq(memcmp(back->ids, rt->ids, n * sizeof *rt->ids), 0);
	cr_expect_eq(memcmp(back->weights, rt->weights, n * sizeof *rt->weights), 0);
	cr_expect_eq(back->meta.experts, 16);
	cr_expect_eq(back->meta.top_k, 4);
	cr_expect_str_eq(back->meta.model, "rand");
	router_trace_free(back);
	struct trace *t = trace_load(p, 0, &e);
	cr_expect_null(t);
	cr_expect(strstr(e.msg, "a router trace"), "%s", e.msg);
	cr_expect_eq(access(tu_path("router.h5.tmp"), F_OK), -1);
	router_trace_free(rt);
}

struct bad_row {
	int16_t ids[2];
	float w[2];
	char msg[48];
};

static struct bad_row bad_rows[] = {
	{{0, 4}, {0.5f, 0.5f}, "expert id 4 outside [0, 4)"},
	{{-1, 1}, {0.5f, 0.5f}, "expert id -1 outside"},
	{{2, 2}, {0.5f, 0.5f}, "expert 2 selected twice"},
	{{0, 1}, {-0.5f, 0.5f}, "gate weight -0.5"},
	{{0, 1}, {NAN, 0.5f}, "gate weight nan"},
};

ParameterizedTestParameters(moe, bad_router_rows_are_refused_naming_token_and_layer)
{
	return cr_make_param_array(struct bad_row, bad_rows, sizeof bad_rows / sizeof bad_rows[0]);
}

ParameterizedTest(struct bad_row *b, moe, bad_router_rows_are_refused_naming_token_and_layer,
		  .init = tu_init)
{
	struct router_trace *rt = hand_trace(4, 2, 4, hand_rows);
	memcpy(rt->ids + 4, b->ids, sizeof b->ids);
	memcpy(rt->weights + 4, b->w, sizeof b->w);
	struct lif_err e = {0};
	const char *p = tu_path("badrow.h5");
	cr_expect_neq(router_write(p, rt, &e), 0);
	cr_expect(strstr(e.msg, b->msg) && strstr(e.msg, "token 2 layer 0"), "%s", e.msg);
	cr_expect_eq(access(p, F_OK), -1);
	router_trace_free(rt);
}

Test(moe, synthetic_routing_follows_its_parameters)
{
	/* repeat = 0 and uniform popularity: about k/E of selections repeat the
	 * previous token; repeat = 0.6 raises it by about 0.6 (1 - k/E) */
	struct router_trace *a = random_trace(64, 4, 2, 0.0, 0.0, 11);
	struct router_trace *b = random_trace(64, 4, 2, 0.0, 0.6, 11);
	struct router_stats sa, sb;
	struct lif_err e = {0};
	cr_assert_eq(router_stats_compute(a, &sa, &e), 0);
	cr_assert_eq(router_stats_compute(b, &sb, &e), 0);
	cr_expect(fabs(sa.layer[0].repeat - 4.0 / 64) < 0.02, "%g", sa.layer[0].repeat);
	cr_expect(fabs(sb.layer[0].repeat - (0.6 + 0.4 * 4.0 / 64)) < 0.05, "%g", sb.layer[0].repeat);
	router_stats_free(&sa);
	router_stats_free(&sb);
	router_trace_free(a);
	router_trace_free(b);
}

Test(moe, synth_then_stats_on_an_moe_model_end_to_end)
{
	char out[8192];
	const char *trace = tu_path("olmoe.h5"), *csv = tu_path("olmoe.csv");
	int st = tu_lifsim(out, sizeof out, "synth %s --tokens 60 --seed 3 --set repeat=0.5 -o %s",
			   tu_src("models/llms/olmoe-1b-7b.ini"), trace);
	cr_assert_eq(st, 0, "%s", out);
	cr_expect(strstr(out, "olmoe-1b-7b router trace, 60 tokens x 16 MoE layers, top-8 of 64"),
		  "%s", out);
	st = tu_lifsim(out, sizeof out, "stats %s -o %s", trace, csv);
	cr_assert_eq(st, 0, "%s", out);
	cr_expect(strstr(out, "LRU hit rate by cache size"), "%s", out);
	cr_expect_eq(access(csv, F_OK), 0);
	st = tu_lifsim(out, sizeof out, "synth %s --tokens 10 --set phi=0.5 -o %s",
		       tu_src("models/llms/olmoe-1b-7b.ini"), trace);
	cr_expect_neq(st, 0);
	cr_expect(strstr(out, "unknown generator parameter 'phi'"), "%s", out);
}

Test(moe, sweep_point_needs_exactly_one_of_cache_and_budget)
{
	char out[8192], ini[2048];
	snprintf(ini, sizeof ini, "[experiment]\nkind = moe\nmodel = %s\ndevice = %s\n"
		 "[synth]\ntokens = 20\n[moe]\nexpert_cache = 4\ndram_budget = 8GB\n",
		 tu_src("models/llms/olmoe-1b-7b.ini"), tu_src("models/devices/ufs40-phone.ini"));
	const char *p = tu_write("both.ini", ini);
	int st = tu_lifsim(out, sizeof out, "sweep %s -o %s", p, tu_path("both.out"));
	cr_expect_neq(st, 0);
	cr_expect(strstr(out, "give exactly one of expert_cache"), "%s", out);
}

/* Two MoE layers of 4 experts, top-2, with router inputs of width 8: layer
 * 1 selects {a, a+1 mod 4} where layer 0's router input is one-hot a (a = t
 * mod 4, plus a constant feature), so a linear predictor fitted on the
 * warm-up tokens predicts every held-out token exactly. */
static struct router_trace *linear_rule_trace(int T)
{
	struct router_meta m = {.model = "hand", .layers = 2, .experts = 4, .top_k = 2,
				.d_expert = 32, .tokens = T, .d_model = 8};
	struct lif_err e = {0};
	struct router_trace *rt = router_trace_new(&m, &e);
	cr_assert_not_null(rt, "%s", e.msg);
	for (int t = 0; t < T; t++) {
		int a = (t * 7 + t / 4) % 4;
		int16_t *l0 = rt->ids + (size_t)t * 2, *l1 = rt->ids + ((size_t)T + t) * 2;
		l0[0] = (int16_t)(t % 4), l0[1] = (int16_t)((t + 2) % 4);
		l1[0] = (int16_t)a, l1[1] = (int16_t)((a + 1) % 4);
		float *x = rt->inputs + (size_t)t * 8; /* layer 0's router input */
		x[a] = 1.0f;
		x[7] = 0.5f;
	}
	for (int i = 0; i < 2 * T * 2; i++)
		rt->weights[i] = 0.5f;
	return rt;
}

Test(moe, trained_predictor_learns_a_linear_next_layer_rule_on_warmup_tokens)
{
	struct router_trace *rt = linear_rule_trace(40);
	struct llm_desc m = hand_model();
	m.layers = 2;
	m.params = 0;
	struct lif_err e = {0};
	cr_assert_eq(llm_derive(&m, "hand", &e), 0, "%s", e.msg);
	cr_assert_eq(m.moe_layers, 2);
	struct device dev;
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	struct moe_params p = {.cache_policy = "lru", .expert_cache = 1, .parallelism = 1,
			       .max_gap = -1, .warmup_tokens = 20};
	struct moe_result none, tr, oracle;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &none, &e), 0, "%s", e.msg);
	cr_expect_float_eq(none.prefetch_recall, -1, 0);
	p.prefetch = MOE_PREFETCH_TRAINED;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &tr, &e), 0, "%s", e.msg);
	/* layer 1 is predicted exactly on the 20 held-out tokens, layer 0 not at all */
	cr_expect_float_eq(tr.prefetch_recall, 1.0, 1e-12);
	cr_expect_float_eq(tr.prefetch_wasted_bytes_per_token, 0, 1e-12);
	cr_expect_float_eq(tr.expert_hit_rate, none.expert_hit_rate, 1e-12); /* prefetch does not change hits */
	cr_expect_gt(tr.io_ahead_ms, 0);
	p.prefetch = MOE_PREFETCH_ORACLE;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &oracle, &e), 0, "%s", e.msg);
	cr_expect_lt(tr.io_ahead_ms, oracle.io_ahead_ms); /* layer 0's misses are not read ahead */
	/* its cost: one (experts x d_model) product for the one predicted layer */
	double extra = compute_linear_ns(&dev.compute, &m, (double)m.d_model * m.experts) * 1e-6;
	cr_expect_float_eq(tr.compute_ms - none.compute_ms, extra, 1e-12);
	/* the inputs survive a write and a load */
	const char *path = tu_path("inputs.h5");
	cr_assert_eq(router_write(path, rt, &e), 0, "%s", e.msg);
	struct router_trace *back = router_load(path, &e);
	cr_assert_not_null(back, "%s", e.msg);
	cr_expect_eq(back->meta.d_model, 8);
	cr_expect_eq(memcmp(back->inputs, rt->inputs, (size_t)2 * 40 * 8 * sizeof(float)), 0);
	router_trace_free(back);
	router_trace_free(rt);
}

Test(moe, trained_predictor_needs_router_inputs_and_warmup_tokens)
{
	struct router_trace *rt = hand_trace(4, 2, 4, hand_rows);
	struct llm_desc m = hand_model();
	struct device dev;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	struct moe_params p = {.cache_policy = "lru", .expert_cache = 2, .parallelism = 1, .max_gap = -1,
			       .prefetch = MOE_PREFETCH_TRAINED, .warmup_tokens = 2};
	struct moe_result r;
	cr_expect_neq(moe_run(rt, &m, &dev, &p, NULL, &r, &e), 0);
	cr_expect(strstr(e.msg, "needs a router trace with router inputs"), "%s", e.msg);
	router_trace_free(rt);
	rt = linear_rule_trace(8);
	m.layers = 2;
	m.params = 0;
	cr_assert_eq(llm_derive(&m, "hand", &e), 0, "%s", e.msg);
	p.warmup_tokens = 0;
	memset(&e, 0, sizeof e);
	cr_expect_neq(moe_run(rt, &m, &dev, &p, NULL, &r, &e), 0);
	cr_expect(strstr(e.msg, "warmup_tokens must be >= 1"), "%s", e.msg);
	router_trace_free(rt);
}

Test(moe, non_finite_router_inputs_are_refused_naming_token_and_layer)
{
	struct router_trace *rt = linear_rule_trace(6);
	rt->inputs[((size_t)1 * 6 + 4) * 8 + 3] = NAN; /* layer 1, token 4 */
	struct lif_err e = {0};
	const char *p = tu_path("nan.h5");
	cr_expect_neq(router_write(p, rt, &e), 0);
	cr_expect(strstr(e.msg, "router input of token 4 layer 1 is not finite"), "%s", e.msg);
	cr_expect_eq(access(p, F_OK), -1, "no file is written");
	router_trace_free(rt);
}

/* overlap = pipelined, worked by hand on two MoE layers with no expert cache
 * (every selection is read: two extents of one expert each per layer and
 * token, flash time X) and oracle prefetch (all of it read ahead): with C =
 * a layer's attention + router and experts and the tail = the rest of the
 * compute + mem, timeline.h gives max(X + C, 2X) + C + tail per token.
 * Without prefetch nothing is read ahead and pipelined equals serial. */
Test(moe, pipelined_overlap_matches_the_timeline_worked_by_hand)
{
	struct router_trace *rt = linear_rule_trace(10);
	struct llm_desc m = hand_model();
	m.layers = 2;
	m.params = 0;
	struct lif_err e = {0};
	cr_assert_eq(llm_derive(&m, "hand", &e), 0, "%s", e.msg);
	struct device dev;
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	struct moe_params p = {.cache_policy = "lru", .expert_cache = 0, .parallelism = 4, .max_gap = -1,
			       .context_tokens = 64, .depth = 1};
	struct moe_result serial, pipe;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &serial, &e), 0, "%s", e.msg);
	p.overlap = TIMELINE_PIPELINED;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &pipe, &e), 0, "%s", e.msg);
	cr_expect_float_eq(pipe.total_ms, serial.total_ms, 1e-9 * serial.total_ms);
	p.prefetch = MOE_PREFETCH_ORACLE;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &pipe, &e), 0, "%s", e.msg);
	int64_t lens[2] = {m.expert_bytes, m.expert_bytes};
	double X = flash_time_ns(&dev.flash, lens, 2, 2), attn = 0, head = 0;
	double dense = compute_dense_ns(&dev.compute, &m, 64, &attn, &head);
	double moe_ns = compute_linear_ns(&dev.compute, &m, (2.0 * m.d_expert * m.ffn_matrices + m.experts) * m.d_model);
	double C = attn / 2 + moe_ns, tail = dense - attn + serial.mem_ms * 1e6;
	cr_expect_float_eq(serial.io_ms, 2 * X * 1e-6, 1e-12);
	cr_expect_float_eq(serial.compute_ms, (dense + 2 * moe_ns) * 1e-6, 1e-12);
	double want = (fmax(X + C, 2 * X) + C + tail) * 1e-6;
	cr_expect_float_eq(pipe.total_ms, want, 1e-9 * want, "%g vs %g", pipe.total_ms, want);
	cr_expect_lt(pipe.total_ms, serial.total_ms);
	router_trace_free(rt);
}
