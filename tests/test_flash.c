#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/flash.h"
#include "sim/base/conf.h"
#include "tests/testutil.h"

/* A parametric device whose caps are far away unless a test brings them in. */
static struct flash_model parametric(double t0_us, double xfer, double iops, double bmax,
				     double p)
{
	struct flash_model m;
	memset(&m, 0, sizeof m);
	m.kind = FLASH_PARAMETRIC;
	m.par = (struct flash_params){.t0_us = t0_us, .xfer_bytes_per_s = xfer, .iops_max = iops,
				      .max_bytes_per_s = bmax, .alignment_bytes = 4096,
				      .softmin_p = p};
	return m;
}

static double rel(double got, double want)
{
	return fabs(got / want - 1);
}

TestSuite(flash, .init = tu_init);

Test(flash, parametric_follows_littles_law_below_saturation)
{
	struct flash_model m = parametric(100, 2e9, 1e9, 1e12, 4);
	for (int n = 1; n <= 8; n *= 2) {
		for (int64_t b = 4096; b <= 65536; b *= 2) {
			double t_s = 100e-6 + b / 2e9;
			double want = n * b / t_s;
			double got = flash_throughput_bytes_per_s(&m, b, n);
			cr_expect(rel(got, want) < 0.01, "b=%lld N=%d: %g vs N*b/t(b) = %g",
				  (long long)b, n, got, want);
		}
	}
}

Test(flash, parametric_caps_at_iops_above_saturation)
{
	struct flash_model m = parametric(100, 2e9, 1e5, 1e12, 4);
	for (int64_t b = 4096; b <= 16384; b *= 2) {
		double got = flash_throughput_bytes_per_s(&m, b, 100000);
		cr_expect(rel(got, 1e5 * b) < 0.01, "b=%lld: %g vs IOPS*b = %g", (long long)b, got,
			  1e5 * b);
	}
}

Test(flash, parametric_caps_at_bandwidth_above_saturation)
{
	struct flash_model m = parametric(100, 64e9, 1e9, 3e9, 4);
	for (int64_t b = 1 << 20; b <= 1 << 26; b *= 4) {
		double got = flash_throughput_bytes_per_s(&m, b, 4096);
		cr_expect(rel(got, 3e9) < 0.01, "b=%lld: %g vs B_max = 3e9", (long long)b, got);
		cr_expect(got <= 3e9, "the bandwidth cap is never exceeded (%g)", got);
	}
}

Test(flash, parametric_knee_is_the_soft_minimum)
{
	/* Two equal limits at p = 2 give 1/sqrt(2) of either. */
	struct flash_model m = parametric(0, 1e20, 1e6, 4096e6, 2);
	double got = flash_throughput_bytes_per_s(&m, 4096, 1 << 20);
	cr_expect(rel(got, 4096e6 / sqrt(2)) < 1e-3, "%g", got);
	/* A large p approaches the hard minimum. */
	m.par.softmin_p = 64;
	got = flash_throughput_bytes_per_s(&m, 4096, 1 << 20);
	cr_expect(rel(got, 4096e6) < 0.02, "%g", got);
}

Test(flash, parametric_is_monotone_in_chunk_and_parallelism)
{
	struct flash_model m = parametric(80, 64e9, 2e5, 6.1e9, 1.5);
	for (int64_t b = 4096; b <= (1 << 24); b *= 2)
		for (int n = 1; n <= 256; n *= 2) {
			double x = flash_throughput_bytes_per_s(&m, b, n);
			cr_expect(flash_throughput_bytes_per_s(&m, 2 * b, n) >= x, "chunk %lld N %d",
				  (long long)b, n);
			cr_expect(flash_throughput_bytes_per_s(&m, b, 2 * n) >= x, "chunk %lld N %d",
				  (long long)b, n);
		}
}

Test(flash, reads_are_rounded_up_to_the_alignment)
{
	struct flash_model m = parametric(80, 64e9, 2e5, 6.1e9, 1.5);
	double t4k = flash_extent_ns(&m, 4096, 8);
	cr_expect_float_eq(flash_extent_ns(&m, 1, 8), t4k, 1e-9);
	cr_expect_float_eq(flash_extent_ns(&m, 4000, 8), t4k, 1e-9);
	cr_expect_float_eq(flash_extent_ns(&m, 4097, 8), flash_extent_ns(&m, 8192, 8), 1e-9);
}

Test(flash, time_is_the_sum_of_extent_shares)
{
	struct flash_model m = parametric(80, 64e9, 2e5, 6.1e9, 1.5);
	int64_t ext[2000];
	double want = 0;
	uint64_t s = 12345;
	for (int i = 0; i < 2000; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		ext[i] = (int64_t)((s >> 33) % 300) * 4096 - 4096; /* some <= 0, many repeats */
		want += flash_extent_ns(&m, ext[i], 32);
	}
	cr_expect(rel(flash_time_ns(&m, ext, 2000, 32), want) < 1e-12);
	cr_expect_eq(flash_time_ns(&m, ext, 0, 32), 0.0);
	cr_expect_eq(flash_extent_ns(&m, 0, 32), 0.0);
	cr_expect_eq(flash_extent_ns(&m, -5, 32), 0.0);
	/* parallelism below 1 counts as 1 */
	cr_expect_eq(flash_extent_ns(&m, 8192, 0), flash_extent_ns(&m, 8192, 1));
}

/* A 3 x 3 table following X = 1e6 * b^0.5 * N^0.25 exactly. */
static struct flash_model power_table(void)
{
	struct flash_model m;
	memset(&m, 0, sizeof m);
	m.kind = FLASH_TABULATED;
	struct flash_table *t = &m.tab;
	double c[] = {4096, 16384, 262144}, p[] = {1, 4, 64};
	t->n_chunks = 3;
	t->n_parallelism = 3;
	for (int i = 0; i < 3; i++) {
		t->chunk_bytes[i] = c[i];
		t->parallelism[i] = p[i];
		for (int j = 0; j < 3; j++)
			t->bytes_per_s[i * 3 + j] = 1e6 * sqrt(c[i]) * pow(p[j], 0.25);
	}
	return m;
}

Test(flash, table_points_are_hit_exactly)
{
	struct flash_model m = power_table();
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++) {
			double want = m.tab.bytes_per_s[i * 3 + j];
			double got = flash_throughput_bytes_per_s(&m, (int64_t)m.tab.chunk_bytes[i],
								  (int)m.tab.parallelism[j]);
			cr_expect(rel(got, want) < 1e-12, "cell %d,%d: %g vs %g", i, j, got, want);
		}
}

Test(flash, table_interpolates_in_log_space)
{
	struct flash_model m = power_table();
	/* a power law between points is reproduced exactly, at any interior point */
	int64_t bs[] = {5000, 8192, 100000, 200000};
	int ns[] = {2, 3, 10, 33};
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) {
			double want = 1e6 * sqrt((double)bs[i]) * pow(ns[j], 0.25);
			double got = flash_throughput_bytes_per_s(&m, bs[i], ns[j]);
			cr_expect(rel(got, want) < 1e-9, "b=%lld N=%d: %g vs %g", (long long)bs[i],
				  ns[j], got, want);
		}
	/* midway in log chunk: the geometric mean of the neighbours, not the mean */
	double a = m.tab.bytes_per_s[0], b = m.tab.bytes_per_s[3];
	double mid = flash_table_bytes_per_s(&m.tab, 8192, 1);
	cr_expect(rel(mid, sqrt(a * b)) < 1e-12);
	cr_expect(rel(mid, (a + b) / 2) > 0.01);
}

Test(flash, table_is_clamped_outside_its_range)
{
	struct flash_model m = power_table();
	const struct flash_table *t = &m.tab;
	/* beyond the largest parallelism: no gain; below the smallest: no extrapolation */
	cr_expect(rel(flash_throughput_bytes_per_s(&m, 16384, 1000), t->bytes_per_s[5]) < 1e-12);
	/* beyond the largest chunk: that row's throughput (bandwidth bound) */
	cr_expect(rel(flash_throughput_bytes_per_s(&m, 1 << 24, 4), t->bytes_per_s[7]) < 1e-12);
	/* below the smallest chunk: the time of a smallest-chunk read (request bound) */
	cr_expect(rel(flash_extent_ns(&m, 512, 4), flash_extent_ns(&m, 4096, 4)) < 1e-12);
}

Test(flash, one_column_table_ignores_parallelism)
{
	struct flash_model m;
	memset(&m, 0, sizeof m);
	m.kind = FLASH_TABULATED;
	m.tab.n_chunks = 2;
	m.tab.n_parallelism = 1;
	m.tab.chunk_bytes[0] = 4096, m.tab.chunk_bytes[1] = 524288;
	m.tab.parallelism[0] = 1;
	m.tab.bytes_per_s[0] = 450e6, m.tab.bytes_per_s[1] = 3500e6;
	for (int n = 1; n <= 64; n *= 4)
		cr_expect(rel(flash_throughput_bytes_per_s(&m, 4096, n), 450e6) < 1e-12);
	const char *key = NULL;
	struct lif_err e = {0};
	cr_expect_eq(flash_check(&m, &key, &e), 0, "%s", e.msg);
}

Test(flash, forms_are_found_by_name_in_the_ini_order)
{
	cr_expect_eq(flash_ops_find("parametric"), &flash_ops_table[FLASH_PARAMETRIC]);
	cr_expect_eq(flash_ops_find("tabulated"), &flash_ops_table[FLASH_TABULATED]);
	cr_expect_null(flash_ops_find("magnetic"));
	char choices[64];
	cr_expect_str_eq(conf_names_join(flash_kind_choice, choices, sizeof choices),
			 "parametric|tabulated");
}

struct check_case {
	int kind;
	double t0_us, softmin_p;
	double chunk1, par1, cell;
	char key[32];
};

static struct check_case check_cases[] = {
	{FLASH_PARAMETRIC, -1, 1.5, 8192, 2, 1, "t0_us"},
	{FLASH_PARAMETRIC, 80, 0.1, 8192, 2, 1, "softmin_p"},
	{FLASH_TABULATED, 80, 1.5, 2048, 2, 1, "chunk_bytes"},
	{FLASH_TABULATED, 80, 1.5, 8192, 1, 1, "parallelism"},
	{FLASH_TABULATED, 80, 1.5, 8192, 2, 0, "mb_per_s"},
};

ParameterizedTestParameters(flash, check_names_the_bad_key)
{
	return cr_make_param_array(struct check_case, check_cases,
				   sizeof check_cases / sizeof check_cases[0]);
}

ParameterizedTest(struct check_case *c, flash, check_names_the_bad_key, .init = tu_init)
{
	struct flash_model m = parametric(c->t0_us, 64e9, 2e5, 6.1e9, c->softmin_p);
	m.kind = c->kind;
	m.tab.n_chunks = m.tab.n_parallelism = 2;
	m.tab.chunk_bytes[0] = 4096, m.tab.chunk_bytes[1] = c->chunk1;
	m.tab.parallelism[0] = 1, m.tab.parallelism[1] = c->par1;
	for (int i = 0; i < 4; i++)
		m.tab.bytes_per_s[i] = 1e8;
	m.tab.bytes_per_s[3] = c->cell;
	const char *key = NULL;
	struct lif_err e = {0};
	cr_assert_neq(flash_check(&m, &key, &e), 0);
	cr_expect_str_eq(key, c->key);
	char want[64];
	snprintf(want, sizeof want, "[flash] %s: ", c->key);
	cr_expect(strstr(e.msg, want) != NULL, "'%s' lacks '%s'", e.msg, want);
}
