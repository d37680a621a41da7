/* The fast pass (sim/core/pass.h) against the reference stepper
 * (sim/core/step.h): on random traces, every predictor, window, layout,
 * bundle, merging and hybrid setting gives byte-identical results and
 * per-token costs, point by point and with the points hinted
 * (sim_cache_hint: decisions built a predictor and pinned set at a time),
 * and with the trace streamed by blocks of tokens (sim_cache_new_stream). */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/device.h"
#include "sim/core/layout.h"
#include "sim/core/pass.h"
#include "sim/core/pred.h"
#include "sim/core/sim.h"
#include "tests/testutil.h"
#include "traces/predictor/predictor.h"
#include "traces/synth.h"

TestSuite(pass, .init = tu_init);

static struct llm_desc rand_model(gsl_rng *r)
{
	static const int widths[] = {8, 37, 64, 100, 129, 200, 255, 320};
	struct llm_desc m;
	struct lif_err e = {0};
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "rand");
	m.layers = 1 + (int)gsl_rng_uniform_int(r, 3);
	m.d_model = 8, m.heads = 1, m.vocab = 10;
	m.d_ffn = widths[gsl_rng_uniform_int(r, sizeof widths / sizeof widths[0])];
	m.ffn_kind = gsl_rng_uniform_int(r, 2) ? LLM_FFN_RELU2 : LLM_FFN_GATED3;
	m.dtype = LLM_FP16, m.sparsity = 0.5 + 0.45 * gsl_rng_uniform(r);
	cr_assert_eq(llm_derive(&m, "rand", &e), 0, "%s", e.msg);
	return m;
}

/* A synthetic trace with its band, plus random FFN inputs for a low-rank
 * predictor trained on it (least squares only). */
static struct trace *rand_trace(gsl_rng *r, const struct llm_desc *m, struct predictor **pred)
{
	struct lif_err e = {0};
	struct synth_params sp;
	synth_defaults(&sp);
	sp.tokens = 4 + (int64_t)gsl_rng_uniform_int(r, 40);
	sp.seed = (int64_t)gsl_rng_get(r);
	sp.group_size = 1 + (int)gsl_rng_uniform_int(r, 8);
	struct trace *t = synth_generate(m, &sp, 1, &e);
	cr_assert(t, "%s", e.msg);
	t->meta.d_model = m->d_model;
	t->meta.has |= TRACE_HAS_INPUTS;
	size_t n = (size_t)m->layers * t->meta.tokens * m->d_model;
	t->inputs = malloc(n * sizeof *t->inputs);
	for (size_t i = 0; i < n; i++)
		t->inputs[i] = (float)(gsl_rng_uniform(r) - 0.5);
	struct predictor_train_opts o;
	predictor_train_opts_default(&o);
	o.rank = 2, o.epochs = 0, o.holdout = 0, o.threads = 1;
	cr_assert_eq(predictor_train(t, &o, r, pred, &e), 0, "%s", e.msg);
	return t;
}

static void rand_params(gsl_rng *r, const struct llm_desc *m, int64_t tokens, struct sim_params *p)
{
	static const int kinds[] = {PRED_NONE, PRED_ORACLE, PRED_MODELED, PRED_RANDOM, PRED_LOWRANK};
	sim_default_params(p);
	p->predictor = kinds[gsl_rng_uniform_int(r, 5)];
	p->recall = 0.5 + 0.5 * gsl_rng_uniform(r);
	p->fp_rate = 0.2 * gsl_rng_uniform(r);
	p->predictor_seed = (int64_t)gsl_rng_uniform_int(r, 1000);
	snprintf(p->predictor_file, sizeof p->predictor_file, "mem");
	int windows[] = {0, 1, 2, 3, 5, (int)tokens - 1, (int)tokens + 3};
	p->window = windows[gsl_rng_uniform_int(r, 7)];
	p->window = p->window < 0 ? 0 : p->window;
	p->layout = (int)gsl_rng_uniform_int(r, 5);
	int bundles[] = {1, 1, 1, 2, 3, 8};
	p->bundle = bundles[gsl_rng_uniform_int(r, 6)];
	p->bundle = p->bundle > m->d_ffn ? 1 : p->bundle;
	p->layout_train_tokens = 1 + (int)gsl_rng_uniform_int(r, (unsigned long)tokens + 2);
	p->merge = gsl_rng_uniform(r) < 0.8;
	int64_t gaps[] = {0, 0, 1, m->bundle_bytes, 3 * m->bundle_bytes, 40 * m->bundle_bytes};
	p->max_gap = gaps[gsl_rng_uniform_int(r, 6)];
	p->parallelism = 1 + (int)gsl_rng_uniform_int(r, 64);
	static const char *hyb[] = {"0", "0", "0.1", "0.3", "0.9", "1"};
	snprintf(p->hybrid, sizeof p->hybrid, "%s", hyb[gsl_rng_uniform_int(r, 6)]);
	p->hybrid_policy = (int)gsl_rng_uniform_int(r, 2);
	p->ffn_rows = (int)gsl_rng_uniform_int(r, 2);
	p->warmup_tokens = (int)gsl_rng_uniform_int(r, 3);
	p->strategy = gsl_rng_uniform(r) < 0.05 ? SIM_NAIVE : SIM_SPARSE;
}

static struct device m1max(void)
{
	struct device d;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/m1max.ini"), &d, &e), 0, "%s", e.msg);
	return d;
}

/* A trace in memory as a streaming cache's source (sim/core/sim.h). */
static int mem_read(void *ctx, int64_t t0, int64_t n, uint8_t *bits, uint8_t *band, struct lif_err *err)
{
	const struct trace *t = ctx;
	const size_t rb = (size_t)t->row_bytes;
	(void)err;
	cr_assert(t0 >= 0 && n >= 1 && t0 + n <= t->meta.tokens, "read %lld..%lld of %lld", (long long)t0,
		  (long long)(t0 + n), (long long)t->meta.tokens);
	for (int l = 0; l < t->meta.layers; l++) {
		memcpy(bits + (size_t)l * n * rb, trace_active(t, l, t0), (size_t)n * rb);
		if (band)
			memcpy(band + (size_t)l * n * 2 * rb, trace_band_row(t, l, t0), (size_t)n * 2 * rb);
	}
	return 0;
}

static struct sim_cache *stream_cache(const struct trace *t, const struct llm_desc *m, int64_t block)
{
	struct lif_err e = {0};
	struct trace meta = *t;
	meta.bits = meta.band = NULL, meta.inputs = NULL, meta.token_ids = NULL;
	const struct sim_source src = {(void *)t, mem_read, block, t->band != NULL, NULL};
	struct sim_cache *c = sim_cache_new_stream(&meta, &src, m, &e);
	cr_assert(c, "%s", e.msg);
	return c;
}

/* 40 random points per trial through three caches: the reference, the fast
 * pass point by point and (hinted) the fast pass by groups, the points run in
 * a random order so that groups are built from any member. */
Test(pass, the_fast_pass_matches_the_reference_on_random_traces)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, 15);
	struct device d = m1max();
	int points = 0, streamed = 0;
	enum { N = 40 };
	for (int trial = 0; trial < 14; trial++) {
		pass_use_simd(trial % 2); /* the SIMD run counter, when the CPU has it, and the scalar one */
		struct llm_desc m = rand_model(r);
		struct predictor *pred = NULL;
		struct trace *t = rand_trace(r, &m, &pred);
		struct lif_err e = {0};
		struct sim_cache *fast = sim_cache_new(t, &m, &e), *ref = sim_cache_new(t, &m, &e);
		struct sim_cache *grp = sim_cache_new(t, &m, &e);
		cr_assert(fast && ref && grp, "%s", e.msg);
		/* streamed by blocks of 1, 2, 7 tokens, or one block of more than the
		 * trace (read whole once, decided as unstreamed) */
		const int64_t blocks[] = {1, 2, 7, t->meta.tokens + 5};
		struct sim_cache *str = stream_cache(t, &m, blocks[trial % 4]);
		sim_cache_set_reference(ref, 1);
		cr_assert_eq(sim_cache_add_predictor(fast, "mem", pred, &e), 0);
		cr_assert_eq(sim_cache_add_predictor(ref, "mem", pred, &e), 0);
		cr_assert_eq(sim_cache_add_predictor(grp, "mem", pred, &e), 0);
		const int64_t T = t->meta.tokens;
		struct sim_token *tf = calloc(T, sizeof *tf), *tr = calloc(T, sizeof *tr);
		struct sim_token *tg = calloc(T, sizeof *tg), *ts = calloc(T, sizeof *ts);
		struct sim_params ps[N];
		int order[N];
		for (int i = 0; i < N; i++) {
			rand_params(r, &m, T, &ps[i]);
			if (i > 0 && gsl_rng_uniform(r) < 0.5) { /* a neighbour in the same group */
				struct sim_params q = ps[gsl_rng_uniform_int(r, i)];
				q.window = ps[i].window, q.layout = ps[i].layout, q.bundle = ps[i].bundle;
				q.merge = ps[i].merge, q.max_gap = ps[i].max_gap;
				q.parallelism = ps[i].parallelism;
				ps[i] = q;
			}
			order[i] = i;
		}
		gsl_ran_shuffle(r, order, N, sizeof *order);
		cr_assert_eq(sim_cache_hint(grp, ps, N, &e), 0, "%s", e.msg);
		cr_assert_eq(sim_cache_hint(str, ps, N, &e), 0, "%s", e.msg);
		for (int k = 0; k < N; k++) {
			const int i = order[k];
			struct sim_params p = ps[i];
			struct sim_result a, b, g;
			memset(&a, 0, sizeof a), memset(&b, 0, sizeof b), memset(&g, 0, sizeof g);
			struct lif_err ea = {0}, eb = {0}, eg = {0};
			int ra = sim_run(fast, &d, &p, 1 + i % 2, &a, tf, &ea);
			int rb = sim_run(ref, &d, &p, 1, &b, tr, &eb);
			int rg = sim_run(grp, &d, &p, 1 + k % 2, &g, tg, &eg);
			cr_assert_eq(ra, rb, "trial %d point %d: %s | %s", trial, i, ea.msg, eb.msg);
			cr_assert_eq(rg, rb, "trial %d point %d (grouped): %s | %s", trial, i, eg.msg, eb.msg);
			/* the source has no FFN inputs: a trained predictor never streams (pointin) */
			if (p.predictor != PRED_LOWRANK) {
				struct sim_result st;
				struct lif_err es = {0};
				memset(&st, 0, sizeof st);
				int rs = sim_run(str, &d, &p, 1 + k % 2, &st, ts, &es);
				cr_assert_eq(rs, rb, "trial %d point %d (streamed): %s | %s", trial, i, es.msg, eb.msg);
				cr_assert(rs || !memcmp(&st, &b, sizeof st),
					  "trial %d point %d (streamed by %lld; predictor %d window %d layout %d "
					  "hybrid %s): results differ (bytes %.17g vs %.17g, io %.17g vs %.17g)",
					  trial, i, (long long)blocks[trial % 4], p.predictor, p.window, p.layout,
					  p.hybrid, st.bytes_read_per_token, b.bytes_read_per_token, st.io_ms, b.io_ms);
				cr_assert(rs || !memcmp(ts, tr, T * sizeof *ts),
					  "trial %d point %d (streamed): per-token costs differ", trial, i);
				streamed += !rs;
			}
			if (ra)
				continue;
			points++;
			cr_assert_eq(memcmp(&a, &b, sizeof a), 0,
				     "trial %d point %d (predictor %d window %d layout %d bundle %d merge %d "
				     "gap %lld hybrid %s): results differ (bytes %.17g vs %.17g, io %.17g vs %.17g)",
				     trial, i, p.predictor, p.window, p.layout, p.bundle, p.merge,
				     (long long)p.max_gap, p.hybrid, a.bytes_read_per_token,
				     b.bytes_read_per_token, a.io_ms, b.io_ms);
			cr_assert_eq(memcmp(&g, &b, sizeof g), 0,
				     "trial %d point %d (grouped; predictor %d window %d layout %d bundle %d "
				     "merge %d gap %lld hybrid %s): results differ (bytes %.17g vs %.17g)",
				     trial, i, p.predictor, p.window, p.layout, p.bundle, p.merge,
				     (long long)p.max_gap, p.hybrid, g.bytes_read_per_token,
				     b.bytes_read_per_token);
			cr_assert_eq(memcmp(tf, tr, T * sizeof *tf), 0, "trial %d point %d: per-token costs differ",
				     trial, i);
			cr_assert_eq(memcmp(tg, tr, T * sizeof *tg), 0,
				     "trial %d point %d (grouped): per-token costs differ", trial, i);
		}
		free(tf), free(tr), free(tg), free(ts);
		sim_cache_free(fast), sim_cache_free(ref), sim_cache_free(grp), sim_cache_free(str);
		predictor_free(pred);
		trace_free(t);
	}
	pass_use_simd(1);
	cr_expect_gt(points, 14 * 30, "only %d points ran", points);
	cr_expect_gt(streamed, 14 * 20, "only %d points streamed", streamed);
	gsl_rng_free(r);
}

/* A streamed sweep's working memory (block buffers, each layer's window
 * passes, planners and block of decisions) is set by the model's width, the
 * windows and the block, not by the trace's length: the same sweep over 30
 * and 900 tokens claims the same bytes. */
Test(pass, streamed_working_memory_does_not_grow_with_the_tokens)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, 7);
	struct llm_desc m = rand_model(r);
	struct device d = m1max();
	int64_t peak[2] = {0, 0};
	const int64_t tokens[2] = {30, 900};
	for (int k = 0; k < 2; k++) {
		struct lif_err e = {0};
		struct synth_params sp;
		synth_defaults(&sp);
		sp.tokens = tokens[k], sp.seed = 3;
		struct trace *t = synth_generate(&m, &sp, 1, &e);
		cr_assert(t, "%s", e.msg);
		struct sim_cache *c = stream_cache(t, &m, 8);
		struct sim_params ps[6];
		for (int i = 0; i < 6; i++) {
			sim_default_params(&ps[i]);
			ps[i].predictor = i < 3 ? PRED_ORACLE : PRED_MODELED;
			ps[i].window = (i % 3) * 2; /* 0, 2, 4: under either trace's length */
			ps[i].layout = i % 2;
		}
		cr_assert_eq(sim_cache_hint(c, ps, 6, &e), 0, "%s", e.msg);
		for (int i = 0; i < 6; i++) {
			struct sim_result o;
			cr_assert_eq(sim_run(c, &d, &ps[i], 1, &o, NULL, &e), 0, "%s", e.msg);
		}
		peak[k] = sim_cache_stream_peak_bytes(c);
		sim_cache_free(c);
		trace_free(t);
	}
	cr_assert_gt(peak[0], 0);
	cr_assert_eq(peak[0], peak[1], "%lld bytes over %lld tokens, %lld over %lld", (long long)peak[0],
		     (long long)tokens[0], (long long)peak[1], (long long)tokens[1]);
	gsl_rng_free(r);
}

/* Window 0 keeps no matrix: every loaded row goes after its token. */
Test(pass, window_zero_loads_every_predicted_neuron_and_keeps_none)
{
	struct llm_desc m;
	struct lif_err e = {0};
	memset(&m, 0, sizeof m);
	m.layers = 1, m.d_model = 4, m.d_ffn = 70, m.heads = 1, m.vocab = 10;
	m.ffn_kind = LLM_FFN_RELU2, m.dtype = LLM_FP16, m.sparsity = 0.9;
	cr_assert_eq(llm_derive(&m, "w0", &e), 0, "%s", e.msg);
	struct layout *lay = layout_new(LAYOUT_ROWCOL, &m, NULL, 1, 0, 1, &e);
	cr_assert(lay, "%s", e.msg);
	struct pass_layer *s = pass_layer_new(lay, 0, m.d_ffn, 10, 0, 0, NULL, PASS_ALL, &e);
	uint8_t row[9] = {0};
	/* neurons 0, 1, 2 (one run), 10 and 64..69 (a run crossing a word) */
	row[0] = 0x07, row[1] = 0x04, row[8] = 0x3F;
	struct pass_out o;
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(pass_layer_next(s, row, &o, &e), 0);
		cr_expect_eq(o.nload, 10);
		cr_expect_eq(o.ndie, 10);
		cr_expect_eq(o.window_rows, 0);
		cr_expect_eq(o.used_rows, 10);
		cr_expect_eq(o.nmoves, 0);
		cr_assert_eq(o.nsizes, 3);
		cr_expect_eq(o.sizes[0], 3 * m.bundle_bytes);
		cr_expect_eq(o.sizes[1], m.bundle_bytes);
		cr_expect_eq(o.sizes[2], 6 * m.bundle_bytes);
		cr_expect_eq(o.bytes_read, 10 * m.bundle_bytes);
	}
	cr_expect_eq(pass_layer_peak_rows(s), 10);
	pass_layer_free(s);
	layout_free(lay);
}

/* The run counts of a row bit by bit: the reference for pass_count_runs. */
static void naive_runs(const uint64_t *w, int64_t bits, struct pass_runs *h)
{
	memset(h, 0, sizeof *h);
	h->valid = 1;
	for (int64_t i = 0; i < bits;) {
		if (!((w[i >> 6] >> (i & 63)) & 1)) {
			i++;
			continue;
		}
		int64_t b = i;
		while (i < bits && ((w[i >> 6] >> (i & 63)) & 1))
			i++;
		int64_t m = i - b;
		h->n += m;
		if (m >= 64) {
			h->long_run = 1;
			return;
		}
		if (!h->cnt[m])
			h->first[m] = b;
		h->cnt[m]++;
		h->maxm = m > h->maxm ? (int)m : h->maxm;
	}
}

static void expect_same_runs(const struct pass_runs *a, const struct pass_runs *b, const char *what,
			     int trial)
{
	cr_assert_eq(a->long_run, b->long_run, "%s trial %d: long_run", what, trial);
	if (a->long_run)
		return;
	cr_assert_eq(a->n, b->n, "%s trial %d: bits", what, trial);
	cr_assert_eq(a->maxm, b->maxm, "%s trial %d: longest", what, trial);
	for (int m = 1; m < 64; m++) {
		cr_assert_eq(a->cnt[m], b->cnt[m], "%s trial %d: runs of %d", what, trial, m);
		if (a->cnt[m])
			cr_assert_eq(a->first[m], b->first[m], "%s trial %d: first run of %d", what, trial, m);
	}
}

/* The SIMD run counter and the word-by-word one agree with a bit-by-bit
 * count on random rows of any width, density and run length (runs across
 * words and vectors, at the row's ends, 64 and longer). */
Test(pass, run_counts_match_a_bit_by_bit_count)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, 16);
	static const int64_t widths[] = {1, 7, 63, 64, 65, 127, 500, 511, 512, 513, 1000, 4096, 5000};
	for (int trial = 0; trial < 600; trial++) {
		int64_t bits = widths[gsl_rng_uniform_int(r, sizeof widths / sizeof *widths)];
		int64_t uw = (bits + 63) / 64;
		uint64_t *w = calloc(uw + 1, sizeof *w);
		double dens = gsl_rng_uniform(r), stay = 0.999 * gsl_rng_uniform(r);
		int on = gsl_rng_uniform(r) < dens;
		for (int64_t i = 0; i < bits; i++) { /* runs of geometric length */
			if (on)
				w[i >> 6] |= 1ull << (i & 63);
			if (gsl_rng_uniform(r) > stay)
				on = gsl_rng_uniform(r) < dens;
		}
		struct pass_runs ref, simd, scalar;
		naive_runs(w, bits, &ref);
		pass_use_simd(1);
		pass_count_runs(w, uw, &simd);
		pass_use_simd(0);
		pass_count_runs(w, uw, &scalar);
		expect_same_runs(&simd, &ref, "simd", trial);
		expect_same_runs(&scalar, &ref, "scalar", trial);
		free(w);
	}
	pass_use_simd(1);
	gsl_rng_free(r);
}

/* Sort keys of the reference modeled predictor: band level first, then
 * priority, then id, all descending. */
static int by_key_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The modeled predictor (priority buckets, whole levels by word operations)
 * against its definition: of the active neurons, the n_fn of highest band
 * level, then priority, are dropped; of the inactive ones, the n_fp of
 * highest level, then priority, are added. */
Test(pass, modeled_predictor_matches_a_sort_by_level_and_priority)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(r, 17);
	for (int trial = 0; trial < 30; trial++) {
		struct llm_desc m = rand_model(r);
		if (trial % 3 == 0) { /* wide enough for every priority bucket */
			m.d_ffn = 2000 + (int)gsl_rng_uniform_int(r, 3000);
			struct lif_err e0 = {0};
			cr_assert_eq(llm_derive(&m, "rand", &e0), 0, "%s", e0.msg);
		}
		struct predictor *lr = NULL;
		struct trace *t = rand_trace(r, &m, &lr);
		struct pred_params p = {.kind = PRED_MODELED, .recall = gsl_rng_uniform(r),
					.fp_rate = 0.3 * gsl_rng_uniform(r), .seed = gsl_rng_get(r)};
		struct lif_err e = {0};
		pred_use_simd(trial % 2); /* AVX-512 popcounts, when the CPU has them, and word by word */
		uint8_t *got = pred_sets(t, &p, 1 + trial % 2, NULL, &e);
		cr_assert(got, "%s", e.msg);
		const int d = t->meta.d_ffn, rb = t->row_bytes;
		uint64_t *fn = malloc(d * sizeof *fn), *fp = malloc(d * sizeof *fp);
		uint8_t *want = malloc(rb);
		for (int l = 0; l < t->meta.layers; l++)
			for (int64_t k = 0; k < t->meta.tokens; k++) {
				const uint8_t *a = trace_active(t, l, k), *band = trace_band_row(t, l, k);
				int na = 0, ni = 0;
				for (int i = 0; i < d; i++) {
					uint64_t key = (uint64_t)trace_band_level(band, rb, i) << 62 |
						       (uint64_t)pred_priority(p.seed, l, i) << 30 | (uint64_t)i;
					if (trace_bit(a, i))
						fn[na++] = key;
					else
						fp[ni++] = key;
				}
				qsort(fn, na, sizeof *fn, by_key_desc);
				qsort(fp, ni, sizeof *fp, by_key_desc);
				memcpy(want, a, rb);
				long n_fn = lround((1 - p.recall) * na), n_fp = lround(p.fp_rate * ni);
				for (long q = 0; q < n_fn && q < na; q++) {
					int i = (int)(fn[q] & ((1u << 30) - 1));
					want[i >> 3] &= (uint8_t)~(1u << (i & 7));
				}
				for (long q = 0; q < n_fp && q < ni; q++)
					trace_set_bit(want, (int)(fp[q] & ((1u << 30) - 1)));
				cr_assert_eq(memcmp(want, got + ((size_t)l * t->meta.tokens + k) * rb, rb), 0,
					     "trial %d (d_ffn %d) layer %d token %lld: predicted sets differ",
					     trial, d, l, (long long)k);
			}
		free(fn), free(fp), free(want), free(got);
		pred_use_simd(1);
		predictor_free(lr);
		trace_free(t);
	}
	gsl_rng_free(r);
}
