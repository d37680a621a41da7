#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"
#include "traces/stats.h"

TestSuite(stats, .init = tu_init);

/* A hand-made trace: one layer of 4 neurons over 6 tokens.
 *   token: 0    1    2    3    4    5
 *   n0     1    1    0    0    1    0
 *   n1     0    1    0    0    0    0
 *   n2     0    0    1    0    0    0
 *   n3     0    0    0    0    0    0 */
static struct trace *hand_trace(void)
{
	static const char *rows[6] = {"1000", "1100", "0010", "0000", "1000", "0000"};
	struct trace *t = calloc(1, sizeof *t);
	t->meta.layers = 1, t->meta.d_ffn = 4, t->meta.tokens = 6;
	t->row_bytes = 1;
	t->token_ids = calloc(6, sizeof *t->token_ids);
	t->bits = calloc(6, 1);
	for (int k = 0; k < 6; k++)
		for (int i = 0; i < 4; i++)
			if (rows[k][i] == '1')
				trace_set_bit(t->bits + k, i);
	return t;
}

Test(stats, windowed_load_and_s_agg_match_a_hand_worked_trace)
{
	struct trace *t = hand_trace();
	struct stats_opts o;
	struct stats_result r;
	struct lif_err e = {0};
	stats_default_opts(&o);
	o.coact_samples = 0;
	cr_assert_eq(stats_compute(t, &o, 1, &r, &e), 0, "%s", e.msg);
	/* 5 activations in 24 slots */
	cr_expect_float_eq(r.all.sparsity, 1 - 5.0 / 24, 1e-12);
	/* s_agg(1): per-token density = mean(1,2,1,0,1,0)/4 = 5/24 */
	cr_expect_float_eq(r.all.s_agg[1], 5.0 / 24, 1e-12);
	/* s_agg(2) over windows ending at 1..5: unions {0,1},{0,1,2},{2},{0},{0} = 2,3,1,1,1 */
	cr_expect_float_eq(r.all.s_agg[2], (2 + 3 + 1 + 1 + 1) / 5.0 / 4, 1e-12);
	/* load(0): everything active loads: 5 / (6 tokens * 4) */
	cr_expect_float_eq(r.all.load[0], 5.0 / 24, 1e-12);
	/* load(1), tokens 1..5: new vs the previous token: {n1}, {n2}, {}, {n0}, {} = 1,1,0,1,0 */
	cr_expect_float_eq(r.all.load[1], 3.0 / 5 / 4, 1e-12);
	/* load(2), tokens 2..5: new vs the two before: {n2}, {}, {n0}, {} */
	cr_expect_float_eq(r.all.load[2], 2.0 / 4 / 4, 1e-12);
	/* load(3), tokens 3..5: token 4's n0 was active at 1: resident with k=3 */
	cr_expect_float_eq(r.all.load[3], 0.0, 1e-12);
	stats_result_free(&r);
	trace_free(t);
}

Test(stats, closest_friend_of_a_pair_that_always_fires_together)
{
	struct trace *t = hand_trace();
	struct stats_opts o;
	struct stats_result r;
	struct lif_err e = {0};
	stats_default_opts(&o);
	o.coact_min_count = 1;
	cr_assert_eq(stats_compute(t, &o, 1, &r, &e), 0, "%s", e.msg);
	/* n0 (3 firings) and n1 (1) and n2 (1): n1's friend is n0 with P = 1;
	 * n0's friend is n1 with P = 1/3; n2 has no friend (P = 0) */
	cr_expect_eq(r.all.coact_n, 3);
	cr_expect_float_eq(r.all.friend_prob_mean, (1 + 1.0 / 3 + 0) / 3, 1e-12);
	stats_result_free(&r);
	trace_free(t);
}

Test(stats, csv_is_tidy_and_written_atomically)
{
	struct trace *t = hand_trace();
	struct stats_opts o;
	struct stats_result r;
	struct lif_err e = {0};
	stats_default_opts(&o);
	cr_assert_eq(stats_compute(t, &o, 1, &r, &e), 0);
	const char *p = tu_path("s.csv");
	cr_assert_eq(stats_write_csv(&r, p, &e), 0, "%s", e.msg);
	FILE *f = fopen(p, "r");
	char line[256];
	cr_assert(fgets(line, sizeof line, f));
	cr_expect_str_eq(line, "metric,layer,k,x,value\n");
	int rows = 0, cols_ok = 1;
	while (fgets(line, sizeof line, f)) {
		int commas = 0;
		for (char *c = line; *c; c++)
			commas += *c == ',';
		cols_ok &= commas == 4;
		rows++;
	}
	fclose(f);
	cr_expect(cols_ok);
	cr_expect_gt(rows, 20);
	cr_expect_neq(stats_write_csv(&r, "/nonexistent-dir/s.csv", &e), 0);
	cr_expect(strstr(e.msg, "/nonexistent-dir/s.csv") != NULL, "%s", e.msg);
	stats_result_free(&r);
	trace_free(t);
}

Test(stats, a_single_token_trace_is_refused)
{
	struct trace *t = hand_trace();
	t->meta.tokens = 1;
	struct stats_opts o;
	struct stats_result r;
	struct lif_err e = {0};
	stats_default_opts(&o);
	cr_expect_neq(stats_compute(t, &o, 1, &r, &e), 0);
	cr_expect(strstr(e.msg, "at least 2") != NULL, "%s", e.msg);
	trace_free(t);
}
