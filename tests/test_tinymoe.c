/* The shipped small mixture of experts (traces/tinymoe): its checkpoint is a
 * standard Mixtral checkpoint and reproduces, through the independent numpy
 * forward of its training script, the held-out loss and per-layer expert
 * shares its recipe records; lifsim records real routing from it (router
 * choices against the numpy reference: tests/test_record.c), and a router
 * predictor trained on its recorded router inputs predicts the next layer's
 * experts better than their popularity does. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/device.h"
#include "models/llm.h"
#include "sim/core/moe.h"
#include "tests/testutil.h"
#include "traces/router.h"

static int run(char *out, size_t cap, const char *cmd)
{
	char full[20100];
	snprintf(full, sizeof full, "%s 2>&1", cmd);
	FILE *p = popen(full, "r");
	cr_assert(p, "cannot run %s", cmd);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

TestSuite(tinymoe, .init = tu_init, .timeout = 300);

Test(tinymoe, shipped_checkpoint_reproduces_its_recipe_in_numpy)
{
	char cmd[20000], out[8192];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --check-only --out %s --expect-recipe",
		 tu_src("traces/tinymoe/train.py"), tu_src("traces/tinymoe"));
	int rc = run(out, sizeof out, cmd);
	cr_assert_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "matches recipe.json"), "%s", out);
}

/* A recorded trace goes through stats: the one-pass LRU curve is 0 at no
 * cache and 1 - (first selections)/(selections) at all 16 experts. */
Test(tinymoe, recorded_trace_goes_through_stats)
{
	char msg[8192], ids[4096] = "";
	for (int k = 0; k < 64; k++)
		snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%d ", "The package manager "[k % 20]);
	const char *idf = tu_write("ids", ids), *tr = tu_path("r.h5"), *st = tu_path("s.csv");
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record -q --model '%s' --tokens-file '%s' --generate 64 -o '%s'",
			       tu_src("traces/tinymoe"), idf, tr), 0, "%s", msg);
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "stats -q '%s' -o '%s'", tr, st), 0, "%s", msg);
	struct lif_err e = {0};
	struct router_trace *rt = router_load(tr, &e);
	cr_assert(rt, "%s", e.msg);
	cr_expect_eq(rt->meta.tokens, 128);
	/* the hit rate with all experts resident, counted by hand */
	for (int l = 0; l < rt->meta.layers; l++) {
		int seen[16] = {0}, first = 0, n = 0;
		for (int64_t t = 0; t < rt->meta.tokens; t++)
			for (int j = 0; j < rt->meta.top_k; j++, n++)
				first += !seen[router_ids(rt, l, t)[j]]++;
		char want[64];
		snprintf(want, sizeof want, "lru_hit_rate,%d,16,", l);
		char *line = strstr(slurp(st), want);
		cr_assert(line, "no %s in stats", want);
		double v = strtod(line + strlen(want), NULL);
		cr_expect_float_eq(v, 1.0 - (double)first / n, 1e-9, "layer %d: %g", l, v);
	}
	router_trace_free(rt);
}

/* 512 held-out bytes recorded with their router inputs; the trained
 * predictor is fitted on the first 256 tokens (the warm-up) and counted on
 * the last 256. Its recall must beat predicting, for every token, the k
 * experts most selected in the warm-up (the best input-blind guess). */
Test(tinymoe, trained_router_predictor_beats_popularity_on_held_out_tokens)
{
	char msg[8192], ids[8192] = "";
	FILE *f = fopen(tu_src("traces/tinymoe/heldout.txt"), "rb");
	cr_assert(f);
	unsigned char text[512];
	cr_assert_eq(fread(text, 1, sizeof text, f), sizeof text);
	fclose(f);
	for (size_t k = 0; k < sizeof text; k++)
		snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%d ", text[k]);
	const char *tr = tu_path("in.h5");
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "record -q --model '%s' --tokens-file '%s' --inputs -o '%s'",
			       tu_src("traces/tinymoe"), tu_write("ids", ids), tr), 0, "%s", msg);
	struct lif_err e = {0};
	struct router_trace *rt = router_load(tr, &e);
	cr_assert(rt, "%s", e.msg);
	cr_assert_eq(rt->meta.d_model, 256);
	struct llm_desc m;
	struct device dev;
	cr_assert_eq(llm_load(tu_src("models/llms/tinymoe.ini"), &m, &e), 0, "%s", e.msg);
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	struct moe_params p = {.cache_policy = "lru", .expert_cache = 4, .parallelism = 4, .max_gap = -1,
			       .prefetch = MOE_PREFETCH_TRAINED, .warmup_tokens = 256};
	struct moe_result r;
	cr_assert_eq(moe_run(rt, &m, &dev, &p, NULL, &r, &e), 0, "%s", e.msg);
	/* the popularity guess over the same layers (1..3) and tokens */
	const struct router_meta *mt = &rt->meta;
	double hit = 0, n = 0;
	for (int l = 1; l < mt->layers; l++) {
		int count[16] = {0}, top[2] = {-1, -1};
		for (int64_t t = 0; t < 256; t++)
			for (int j = 0; j < 2; j++)
				count[router_ids(rt, l, t)[j]]++;
		for (int j = 0; j < 2; j++)
			for (int x = 0; x < 16; x++)
				if (x != top[0] && (top[j] < 0 || count[x] > count[top[j]]))
					top[j] = x;
		for (int64_t t = 256; t < mt->tokens; t++)
			for (int j = 0; j < 2; j++, n++)
				hit += router_ids(rt, l, t)[j] == top[0] || router_ids(rt, l, t)[j] == top[1];
	}
	cr_log_info("tinymoe: trained predictor recall %.3f, popularity %.3f", r.prefetch_recall, hit / n);
	cr_expect_gt(r.prefetch_recall, hit / n + 0.2, "trained %.3f vs popularity %.3f", r.prefetch_recall,
		     hit / n);
	cr_expect_gt(r.io_ahead_ms, 0);
	router_trace_free(rt);

	/* and through a sweep of kind moe */
	char ini[4096];
	snprintf(ini, sizeof ini, "[experiment]\nkind = moe\nmodel = %s\ndevice = %s\ntrace = %s\n"
		 "[moe]\nexpert_cache = 4\nprefetch = none, oracle, trained\nwarmup_tokens = 256\n",
		 tu_src("models/llms/tinymoe.ini"), tu_src("models/devices/ufs40-phone.ini"), tr);
	cr_assert_eq(tu_lifsim(msg, sizeof msg, "sweep -q '%s' -o '%s'", tu_write("t.ini", ini), tu_path("out")),
		     0, "%s", msg);
	const char *res = slurp(tu_path("out/results.csv"));
	cr_expect(strstr(res, ",trained,"), "%s", res);
}
