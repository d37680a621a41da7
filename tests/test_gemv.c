#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gemv/gemv.h"
#include "tests/testutil.h"

TestSuite(gemv, .init = tu_init);

/* Deterministic pseudo-Gaussian values (sum of 4 uniforms, centred). */
static float *randv(size_t n, unsigned seed, float scale)
{
	float *v = malloc(n * sizeof *v);
	unsigned s = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		float u = 0;
		for (int k = 0; k < 4; k++) {
			s = s * 1664525u + 1013904223u;
			u += (float)(s >> 8) / 16777216.0f;
		}
		v[i] = scale * (u - 2.0f) * 1.7f;
	}
	return v;
}

/* Reference ŵ·x in double, and sum |ŵ_i x_i| for the fp32 rounding slack. */
static void reference(const float *wh, const float *x, int d_out, int d_in, double *y, double *mag)
{
	for (int r = 0; r < d_out; r++) {
		double s = 0, m = 0;
		for (int i = 0; i < d_in; i++) {
			double t = (double)wh[(size_t)r * d_in + i] * x[i];
			s += t, m += fabs(t);
		}
		y[r] = s, mag[r] = m;
	}
}

struct kcase {
	int kernel, bits, group, d_out, d_in, scalar;
};

#define KC(b, dout, din, g)                                                                     \
	{GEMV_LUT, b, g, dout, din, 0}, {GEMV_LUT, b, g, dout, din, 1},                          \
		{GEMV_DEQUANT, b, g, dout, din, 0}, {GEMV_DEQUANT, b, g, dout, din, 1}
#define KB(b) KC(b, 1, 1, 32), KC(b, 33, 97, 32), KC(b, 70, 200, 64), KC(b, 64, 1024, 64)

ParameterizedTestParameters(gemv, kernels_stay_within_their_error_bound)
{
	static struct kcase cases[] = {KB(1), KB(2), KB(3), KB(4)};
	return cr_make_param_array(struct kcase, cases, sizeof cases / sizeof cases[0]);
}

/* Every bit width, odd shapes (rows not a multiple of the 32-row tile,
 * columns not a multiple of the group), both code paths: |y - ŵ·x| stays
 * within gemv_error_bound plus fp32 rounding. */
ParameterizedTest(struct kcase *c, gemv, kernels_stay_within_their_error_bound)
{
	struct lif_err e = {0};
	float *w = randv((size_t)c->d_out * c->d_in, 1, 0.05f), *x = randv(c->d_in, 2, 1.0f);
	float *wh = malloc((size_t)c->d_out * c->d_in * sizeof *wh);
	float *y = malloc(c->d_out * sizeof *y), *bound = malloc(c->d_out * sizeof *bound);
	double *ref = malloc(c->d_out * sizeof *ref), *mag = malloc(c->d_out * sizeof *mag);
	struct gemv_qmat *q = gemv_quantize(w, c->d_out, c->d_in, c->bits, c->group, &e);
	cr_assert(q, "%s", e.msg);
	cr_assert_eq(gemv_qmat_dequantize(q, wh, &e), 0, "%s", e.msg);
	reference(wh, x, c->d_out, c->d_in, ref, mag);
	cr_assert_eq(gemv_run(c->kernel, q, x, y, 2, c->scalar, &e), 0, "%s", e.msg);
	cr_assert_eq(gemv_error_bound(c->kernel, q, x, bound, &e), 0, "%s", e.msg);
	for (int r = 0; r < c->d_out; r++) {
		double slack = bound[r] + 1e-5 * mag[r] + 1e-6;
		cr_assert_leq(fabs(y[r] - ref[r]), slack, "%s %d-bit row %d: y %g, ref %g, bound %g",
			      gemv_kernel_name(c->kernel), c->bits, r, y[r], ref[r], bound[r]);
	}
	gemv_qmat_free(q);
	free(w), free(x), free(wh), free(y), free(bound), free(ref), free(mag);
}

struct pcase {
	int kernel, bits, group;
};

ParameterizedTestParameters(gemv, avx2_and_portable_paths_agree)
{
	static struct pcase cases[] = {
		{GEMV_LUT, 1, 32},     {GEMV_LUT, 2, 64},     {GEMV_LUT, 3, 32},
		{GEMV_LUT, 4, 64},     {GEMV_DEQUANT, 1, 64}, {GEMV_DEQUANT, 2, 32},
		{GEMV_DEQUANT, 3, 64}, {GEMV_DEQUANT, 4, 32}, {GEMV_DENSE, 16, 0},
	};
	return cr_make_param_array(struct pcase, cases, sizeof cases / sizeof cases[0]);
}

/* Both paths do the same integer arithmetic: they differ only in the order
 * of fp32 additions. */
ParameterizedTest(struct pcase *c, gemv, avx2_and_portable_paths_agree)
{
	if (!gemv_have_avx2())
		cr_skip_test("no AVX2 on this CPU: only the portable path exists");
	int d_out = 45, d_in = 333;
	struct lif_err e = {0};
	float *w = randv((size_t)d_out * d_in, 3, 0.1f), *x = randv(d_in, 4, 2.0f);
	float *wh = malloc((size_t)d_out * d_in * sizeof *wh);
	float ya[45], ys[45];
	double ref[45], mag[45];
	struct gemv_qmat *q = gemv_quantize(w, d_out, d_in, c->bits, c->group, &e);
	cr_assert(q, "%s", e.msg);
	gemv_qmat_dequantize(q, wh, &e);
	reference(wh, x, d_out, d_in, ref, mag);
	cr_assert_eq(gemv_run(c->kernel, q, x, ya, 1, 0, &e), 0, "%s", e.msg);
	cr_assert_eq(gemv_run(c->kernel, q, x, ys, 1, 1, &e), 0, "%s", e.msg);
	for (int r = 0; r < d_out; r++)
		cr_assert_leq(fabs(ya[r] - ys[r]), 1e-5 * mag[r] + 1e-6, "row %d: avx2 %g, portable %g",
			      r, ya[r], ys[r]);
	gemv_qmat_free(q);
	free(w), free(x), free(wh);
}

Test(gemv, results_do_not_depend_on_the_thread_count)
{
	int d_out = 200, d_in = 256;
	struct lif_err e = {0};
	float *w = randv((size_t)d_out * d_in, 5, 0.1f), *x = randv(d_in, 6, 1.0f);
	float y1[200], y3[200];
	for (int k = GEMV_DEQUANT; k <= GEMV_LUT; k++) {
		struct gemv_qmat *q = gemv_quantize(w, d_out, d_in, 2, 32, &e);
		cr_assert(q, "%s", e.msg);
		cr_assert_eq(gemv_run(k, q, x, y1, 1, 0, &e), 0, "%s", e.msg);
		cr_assert_eq(gemv_run(k, q, x, y3, 3, 0, &e), 0, "%s", e.msg);
		cr_expect_arr_eq(y1, y3, sizeof y1, "%s differs with 3 threads", gemv_kernel_name(k));
		gemv_qmat_free(q);
	}
	free(w), free(x);
}

/* The LUT error is the table rounding: it is real (non-zero), and small next
 * to the output, and the bound is within an order of magnitude of the worst
 * case seen on Gaussian data (it adds worst-case roundings). */
Test(gemv, lut_table_error_is_nonzero_small_and_bounded)
{
	int d_out = 256, d_in = 4096;
	struct lif_err e = {0};
	float *w = randv((size_t)d_out * d_in, 7, 0.02f), *x = randv(d_in, 8, 1.0f);
	float *wh = malloc((size_t)d_out * d_in * sizeof *wh), y[256], bound[256];
	double ref[256], mag[256], err2 = 0, ref2 = 0, worst = 0;
	struct gemv_qmat *q = gemv_quantize(w, d_out, d_in, 4, 32, &e);
	cr_assert(q, "%s", e.msg);
	gemv_qmat_dequantize(q, wh, &e);
	reference(wh, x, d_out, d_in, ref, mag);
	cr_assert_eq(gemv_run(GEMV_LUT, q, x, y, 1, 0, &e), 0, "%s", e.msg);
	gemv_error_bound(GEMV_LUT, q, x, bound, &e);
	for (int r = 0; r < d_out; r++) {
		double d = y[r] - ref[r];
		err2 += d * d, ref2 += ref[r] * ref[r];
		worst = fmax(worst, fabs(d) / bound[r]);
	}
	double rel = sqrt(err2 / ref2);
	cr_expect_gt(rel, 1e-5, "the tables are int8: some error must show (rel %g)", rel);
	cr_expect_lt(rel, 0.05, "relative RMS error %g of the LUT kernel", rel);
	cr_expect_leq(worst, 1.0, "worst error / bound %g", worst);
	cr_expect_gt(worst, 0.001, "bound %g times too loose", 1 / worst);
	gemv_qmat_free(q);
	free(w), free(x), free(wh);
}

Test(gemv, zero_activations_give_zero_output)
{
	struct lif_err e = {0};
	float *w = randv(40 * 64, 9, 1.0f), x[64] = {0}, y[40];
	for (int k = GEMV_DEQUANT; k <= GEMV_LUT; k++) {
		struct gemv_qmat *q = gemv_quantize(w, 40, 64, 3, 64, &e);
		cr_assert_eq(gemv_run(k, q, x, y, 1, 0, &e), 0, "%s", e.msg);
		for (int r = 0; r < 40; r++)
			cr_expect_eq(y[r], 0.0f, "%s row %d", gemv_kernel_name(k), r);
		gemv_qmat_free(q);
	}
	free(w);
}

ParameterizedTestParameters(gemv, quantizer_rounds_to_nearest_level)
{
	static int bits[] = {1, 2, 3, 4};
	return cr_make_param_array(int, bits, 4);
}

/* |w - ŵ| <= s/2 (plus the fp16 rounding of the centre and the scale). */
ParameterizedTest(int *b, gemv, quantizer_rounds_to_nearest_level)
{
	int d_out = 3, d_in = 130;
	struct lif_err e = {0};
	float *w = randv(d_out * d_in, 10, 1.0f), wh[3 * 130];
	struct gemv_qmat *q = gemv_quantize(w, d_out, d_in, *b, 32, &e);
	cr_assert(q, "%s", e.msg);
	gemv_qmat_dequantize(q, wh, &e);
	for (int r = 0; r < d_out; r++)
		for (int g = 0; g * 32 < d_in; g++) {
			float lo = INFINITY, hi = -INFINITY;
			for (int i = g * 32; i < d_in && i < g * 32 + 32; i++)
				lo = fminf(lo, w[r * d_in + i]), hi = fmaxf(hi, w[r * d_in + i]);
			float s = (hi - lo) / ((1 << *b) - 1);
			for (int i = g * 32; i < d_in && i < g * 32 + 32; i++)
				cr_assert_leq(fabsf(w[r * d_in + i] - wh[r * d_in + i]),
					      0.5f * s * 1.01f + 2e-3f * fabsf(hi + lo), "w %g ŵ %g s %g",
					      w[r * d_in + i], wh[r * d_in + i], s);
		}
	gemv_qmat_free(q);
	free(w);
}

Test(gemv, dense_kernels_match_the_reference)
{
	int d_out = 37, d_in = 1000;
	struct lif_err e = {0};
	float *w = randv((size_t)d_out * d_in, 11, 0.1f), *x = randv(d_in, 12, 1.0f), y[37];
	float *wh = malloc((size_t)d_out * d_in * sizeof *wh);
	double ref[37], mag[37];
	for (int bits = 16; bits <= 32; bits += 16)
		for (int scalar = 0; scalar < 2; scalar++) {
			struct gemv_qmat *q = gemv_quantize(w, d_out, d_in, bits, 0, &e);
			cr_assert(q, "%s", e.msg);
			gemv_qmat_dequantize(q, wh, &e);
			reference(wh, x, d_out, d_in, ref, mag);
			cr_assert_eq(gemv_run(GEMV_DENSE, q, x, y, 2, scalar, &e), 0, "%s", e.msg);
			for (int r = 0; r < d_out; r++)
				cr_assert_leq(fabs(y[r] - ref[r]), 1e-5 * mag[r], "fp%d row %d", bits, r);
			gemv_qmat_free(q);
		}
	free(w), free(x), free(wh);
}

Test(gemv, bytes_count_codes_and_fp16_scales)
{
	struct lif_err e = {0};
	float *w = randv(100 * 100, 13, 1.0f);
	struct gemv_qmat *q = gemv_quantize(w, 100, 100, 3, 64, &e);
	/* 10000 codes of 3 bits, 100 rows x 2 groups x (scale + centre) fp16 */
	cr_expect_eq(gemv_qmat_bytes(q), 3750 + 100 * 2 * 4);
	cr_expect_eq(gemv_bytes(100, 100, 3, 64), gemv_qmat_bytes(q));
	gemv_qmat_free(q);
	/* an FFN neuron of OPT-6.7B (d_model 4096) at 4 bits, group 32 */
	cr_expect_eq(gemv_bytes(1, 4096, 4, 32), 2048 + 128 * 4);
	cr_expect_eq(gemv_bytes(1, 4096, 5, 32), -1);
	q = gemv_quantize(w, 100, 100, 16, 0, &e);
	cr_expect_eq(gemv_qmat_bytes(q), 20000);
	gemv_qmat_free(q);
	free(w);
}

struct badq {
	int d_out, d_in, bits, group;
	float poison;
	char want[96];
};

ParameterizedTestParameters(gemv, bad_matrices_are_refused_with_a_message)
{
	static struct badq cases[] = {
		{0, 10, 4, 32, 0, "shape 0x10 is empty"},
		{4, 10, 5, 32, 0, "5 bits is not supported"},
		{4, 10, 8, 32, 0, "8 bits is not supported"},
		{4, 10, 4, 48, 0, "group size 48 is not supported (32 or 64)"},
		{4, 10, 2, 32, NAN, "weight (1, 2) is not finite"},
		{4, 10, 2, 32, 1e6f, "row 1, group 0: weights exceed the fp16 range"},
		{4, 10, 16, 0, 1e6f, "weight 12 (-1e+06) is outside the fp16 range"},
	};
	return cr_make_param_array(struct badq, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct badq *c, gemv, bad_matrices_are_refused_with_a_message)
{
	float w[40] = {0};
	struct lif_err e = {0};
	w[13] = c->poison;
	w[12] = -c->poison;
	cr_assert_null(gemv_quantize(w, c->d_out, c->d_in, c->bits, c->group, &e));
	cr_expect(strstr(e.msg, c->want), "message '%s' lacks '%s'", e.msg, c->want);
}

Test(gemv, kernel_and_format_must_match)
{
	float w[64] = {0}, x[8] = {0}, y[8];
	struct lif_err e = {0};
	struct gemv_qmat *q = gemv_quantize(w, 8, 8, 4, 32, &e);
	cr_expect_eq(gemv_run(GEMV_DENSE, q, x, y, 1, 0, &e), ERR_INVAL);
	cr_expect_str_eq(e.msg, "gemv: kernel dense does not run on 4-bit weights");
	err_clear(&e);
	cr_expect_eq(gemv_run(GEMV_LUT, q, x, y, 0, 0, &e), ERR_INVAL);
	cr_expect_str_eq(e.msg, "gemv: 0 threads");
	gemv_qmat_free(q);
	gemv_qmat_free(NULL);
}

/* Through the fp16 dense format: nearest even, subnormals, overflow. */
Test(gemv, fp16_conversion_rounds_to_nearest_even)
{
	struct {
		float f, want; /* want NAN: must overflow */
	} cases[] = {{1.0f, 1.0f},
		     {-2.0f, -2.0f},
		     {65504.0f, 65504.0f},
		     {65520.0f, NAN},
		     {1.0f + 0x1p-11f, 1.0f},            /* tie, to even */
		     {1.0f + 0x3p-11f, 1.0f + 0x1p-9f},  /* tie, to even */
		     {1.0f + 0x1.8p-11f, 1.0f + 0x1p-10f},
		     {0x1p-24f, 0x1p-24f},
		     {0x1p-26f, 0.0f},
		     {0x1.8p-24f, 0x1p-23f},
		     {0x1p-14f, 0x1p-14f}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct lif_err e = {0};
		float w = cases[i].f, back;
		struct gemv_qmat *q = gemv_quantize(&w, 1, 1, 16, 0, &e);
		if (isnan(cases[i].want)) {
			cr_expect_null(q, "%a should overflow fp16", cases[i].f);
			continue;
		}
		cr_assert(q, "%s", e.msg);
		gemv_qmat_dequantize(q, &back, &e);
		cr_expect_eq(back, cases[i].want, "%a -> %a, want %a", cases[i].f, back, cases[i].want);
		gemv_qmat_free(q);
	}
}

/* ---- the bench-gemv verb ---- */

Test(gemv, bench_runs_only_the_kernels_asked_for)
{
	char out[8192];
	int rc = tu_lifsim(out, sizeof out,
			   "bench-gemv --kernels lut --warm --bits 3 --threads-list 1 --shapes 40x70 "
			   "--repeats 2 --probe-mib 64");
	cr_assert_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "lut       3 bits  1 thr     40x70"), "%s", out);
	cr_expect(!strstr(out, "dequant") && !strstr(out, "dense"), "%s", out);
}

Test(gemv, bench_writes_a_csv_row_per_kernel_bits_and_threads)
{
	char out[8192], line[512];
	const char *csv = tu_path("g.csv");
	int rc = tu_lifsim(out, sizeof out,
			   "bench-gemv --quiet --csv %s --bits 1,4 --threads-list 1,2 --shapes 64x96 "
			   "--repeats 2 --probe-mib 64",
			   csv);
	cr_assert_eq(rc, 0, "%s", out);
	FILE *f = fopen(csv, "r");
	cr_assert(f);
	cr_assert(fgets(line, sizeof line, f));
	line[strcspn(line, "\n")] = 0;
	cr_expect_str_eq(line, "kernel,bits,threads,d_out,d_in,group,ms_median,gflops,"
			       "weight_gb_per_s,bw_gb_per_s,bw_frac,speedup_vs_dequant,ms_min,"
			       "bw_frac_best,rel_err_rms,rel_err_vs_fp32_rms,repeats");
	int rows = 0, lut = 0, dense = 0;
	while (fgets(line, sizeof line, f)) {
		char k[16];
		int bits, thr, dout, din;
		double ms, bwf;
		cr_assert_eq(sscanf(line, "%15[^,],%d,%d,%d,%d,%*d,%lf,%*f,%*f,%*f,%lf", k, &bits, &thr,
				    &dout, &din, &ms, &bwf),
			     7, "%s", line);
		cr_expect(dout == 64 && din == 96 && ms > 0 && bwf > 0, "%s", line);
		if (!strcmp(k, "lut")) {
			double sp = 0;
			const char *c = line;
			for (int i = 0; i < 11; i++)
				c = strchr(c, ',') + 1;
			cr_expect(sscanf(c, "%lf", &sp) == 1 && sp > 0, "lut row lacks a speedup: %s", line);
		}
		/* rel_err_rms: the kernel against ŵ·x; exact-ish for dense */
		double err = -1;
		const char *c = line;
		for (int i = 0; i < 14; i++)
			c = strchr(c, ',') + 1;
		cr_expect(sscanf(c, "%lf", &err) == 1 && err >= 0 && err < (strcmp(k, "dense") ? 0.05 : 1e-5),
			  "rel_err_rms out of range: %s", line);
		rows++, lut += !strcmp(k, "lut"), dense += !strcmp(k, "dense");
	}
	fclose(f);
	/* per thread count: dense fp32 + fp16, and dequant + lut per bit width */
	cr_expect_eq(rows, 2 * (2 + 2 * 2));
	cr_expect_eq(lut, 4);
	cr_expect_eq(dense, 4);
}

struct badcli {
	char args[128];
	char want[128];
};

ParameterizedTestParameters(gemv, bench_rejects_bad_options)
{
	static struct badcli cases[] = {
		{"--bits 5", "lifsim bench-gemv: --bits: '5' is not an integer in [1, 4]"},
		{"--shapes 10y20", "lifsim bench-gemv: --shapes: '10y20' is not D_OUTxD_IN"},
		{"--group 48", "lifsim bench-gemv: --group: '48' is not 32 or 64"},
		{"--threads-list 0", "--threads-list: '0' is not an integer in [1, 1024]"},
		{"--repeats", "lifsim bench-gemv: option '--repeats' needs a value"},
		{"--frobnicate", "lifsim bench-gemv: unknown option '--frobnicate'"},
		{"--model /nonexistent/m.ini", "lifsim bench-gemv: /nonexistent/m.ini"},
		{"--kernels lut,fast", "lifsim bench-gemv: --kernels: 'fast' is not one of dequant, lut, dense"},
		{"--csv /nonexistent/dir/g.csv --shapes 8x8 --probe-mib 64",
		 "lifsim bench-gemv: /nonexistent/dir/g.csv: cannot write: No such file"},
	};
	return cr_make_param_array(struct badcli, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct badcli *c, gemv, bench_rejects_bad_options)
{
	char out[4096];
	int rc = tu_lifsim(out, sizeof out, "bench-gemv %s", c->args);
	cr_expect_neq(rc, 0);
	cr_expect(strstr(out, c->want), "output '%s' lacks '%s'", out, c->want);
}
