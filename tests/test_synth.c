#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "models/llm.h"
#include "tests/testutil.h"
#include "traces/stats.h"
#include "traces/synth.h"

TestSuite(synth, .init = tu_init);

/* A model description cut to a few layers so tests stay fast; the generator
 * is per layer, so the statistics of a layer do not depend on the count. */
static struct llm_desc load_model(const char *file, int layers)
{
	char rel[128];
	struct llm_desc m;
	struct lif_err e = {0};
	snprintf(rel, sizeof rel, "models/llms/%s", file);
	cr_assert_eq(llm_load(tu_src(rel), &m, &e), 0, "%s", e.msg);
	m.layers = layers;
	m.params = 0; /* a cut model no longer has the declared size */
	cr_assert_eq(llm_derive(&m, file, &e), 0, "%s", e.msg);
	return m;
}

static struct trace *gen(const struct llm_desc *m, int64_t tokens, int64_t seed, int threads)
{
	struct synth_params p;
	struct lif_err e = {0};
	synth_defaults(&p);
	p.tokens = tokens;
	p.seed = seed;
	struct trace *t = synth_generate(m, &p, threads, &e);
	cr_assert(t, "%s", e.msg);
	return t;
}

Test(synth, same_seed_gives_the_same_trace_for_any_thread_count)
{
	struct llm_desc m = load_model("opt-6.7b.ini", 3);
	struct trace *a = gen(&m, 50, 7, 1), *b = gen(&m, 50, 7, 2), *c = gen(&m, 50, 8, 2);
	size_t nb = (size_t)m.layers * 50 * a->row_bytes;
	cr_expect_eq(memcmp(a->bits, b->bits, nb), 0);
	cr_expect_eq(memcmp(a->band, b->band, 2 * nb), 0);
	cr_expect_neq(memcmp(a->bits, c->bits, nb), 0, "a different seed gave the same trace");
	trace_free(a), trace_free(b), trace_free(c);
}

Test(synth, written_file_equals_the_in_memory_trace)
{
	struct llm_desc m;
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src("tests/data/tiny.ini"), &m, &e), 0, "%s", e.msg);
	struct synth_params p;
	synth_defaults(&p);
	p.tokens = 130; /* two full chunks and a partial one */
	struct trace *mem = synth_generate(&m, &p, 2, &e);
	cr_assert(mem, "%s", e.msg);
	const char *path = tu_path("tiny.h5");
	cr_assert_eq(synth_write(&m, &p, path, 2, NULL, NULL, &e), 0, "%s", e.msg);
	struct trace *file = trace_load(path, TRACE_LOAD_MAGNITUDES, &e);
	cr_assert(file, "%s", e.msg);
	size_t nb = (size_t)m.layers * p.tokens * mem->row_bytes;
	cr_expect_eq(memcmp(mem->bits, file->bits, nb), 0);
	cr_expect_eq(memcmp(mem->band, file->band, 2 * nb), 0);
	cr_expect(strstr(file->meta.generator, "phi=0.8") != NULL, "%s", file->meta.generator);
	cr_expect_eq(file->meta.seed, 1);
	trace_free(mem), trace_free(file);
}

struct published {
	char file[32];
	double sparsity; /* REFERENCES.md */
};

static struct published published[] = {
	{"opt-6.7b.ini", 0.97},
	{"falcon-7b.ini", 0.95},
	{"llama-2-7b.ini", 0.90},
};

ParameterizedTestParameters(synth, sparsity_and_persistence_match_the_published_structure)
{
	return cr_make_param_array(struct published, published, sizeof published / sizeof published[0]);
}

/* Within +-15% of the published active fraction, and windowing works: the
 * incremental load at k=5 is under half the per-token active fraction. */
ParameterizedTest(struct published *pub, synth, sparsity_and_persistence_match_the_published_structure,
		  .init = tu_init)
{
	struct llm_desc m = load_model(pub->file, 2);
	struct trace *t = gen(&m, 400, 3, 2);
	struct stats_opts o;
	struct stats_result r;
	struct lif_err e = {0};
	stats_default_opts(&o);
	o.coact_samples = 0;
	cr_assert_eq(stats_compute(t, &o, 2, &r, &e), 0, "%s", e.msg);
	double want = 1 - pub->sparsity, got = 1 - r.all.sparsity;
	cr_expect(fabs(got / want - 1) < 0.15, "%s: active %.4f, published %.4f", pub->file, got, want);
	cr_expect_lt(r.all.load[5], 0.5 * got, "load(5) %.4f vs active %.4f", r.all.load[5], got);
	/* s_agg grows far slower than k times the per-token fraction */
	cr_expect_lt(r.all.s_agg[8], 0.5 * 8 * got);
	stats_result_free(&r);
	trace_free(t);
}

Test(synth, frequency_is_skewed_and_groups_co_activate)
{
	struct llm_desc m = load_model("opt-6.7b.ini", 1);
	struct trace *t = gen(&m, 300, 5, 1);
	struct stats_opts o;
	struct stats_result r;
	struct lif_err e = {0};
	stats_default_opts(&o);
	cr_assert_eq(stats_compute(t, &o, 1, &r, &e), 0, "%s", e.msg);
	/* power law: the top 1% of neurons fire far more than 1% of activations */
	cr_expect_gt(r.all.top_share[1], 0.10, "top 1%% share %.3f", r.all.top_share[1]);
	cr_expect_gt(r.all.top_share[3], 0.40, "top 10%% share %.3f", r.all.top_share[3]);
	/* closest friends fire together far more often than the mean density */
	cr_expect_gt(r.all.friend_prob_mean, 0.5);
	stats_result_free(&r);
	trace_free(t);
}

Test(synth, band_brackets_the_threshold)
{
	struct llm_desc m = load_model("opt-6.7b.ini", 1);
	struct trace *t = gen(&m, 50, 9, 1);
	long inner_inactive = 0, inner_active = 0, far = 0, n = 0;
	for (int k = 0; k < 50; k++) {
		const uint8_t *row = trace_active(t, 0, k), *band = trace_band_row(t, 0, k);
		for (int i = 0; i < m.d_ffn; i++, n++) {
			int lvl = trace_band_level(band, t->row_bytes, i);
			far += lvl == 0;
			inner_inactive += lvl == 3 && !trace_bit(row, i);
			inner_active += lvl == 3 && trace_bit(row, i);
		}
	}
	/* most neurons are far below; both sides of the threshold have close ones */
	cr_expect_gt((double)far / n, 0.6);
	cr_expect_gt(inner_inactive, 0);
	cr_expect_gt(inner_active, 0);
	trace_free(t);
}

Test(synth, bad_parameters_are_rejected)
{
	struct llm_desc m = load_model("opt-6.7b.ini", 1);
	struct synth_params p;
	struct lif_err e = {0};
	synth_defaults(&p);
	p.phi = 1.0;
	cr_expect_null(synth_generate(&m, &p, 1, &e));
	cr_expect(strstr(e.msg, "0 <= phi < 1") != NULL, "%s", e.msg);
}
