/* Low-bit weights in the simulator: [sim] bits / group / kernel (sim/core/sim.h),
 * the gemv format's bytes (models/gemv/gemv.h) and the measured kernel rates of a
 * device's [compute] section (models/compute.h). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/device.h"
#include "models/gemv/gemv.h"
#include "sim/core/layout.h"
#include "sim/core/sim.h"
#include "tests/testutil.h"
#include "traces/synth.h"

TestSuite(lowbit_sim, .init = tu_init);

static double rel(double a, double b)
{
	return fabs(a - b) / fmax(fabs(b), 1e-300);
}

struct fmt_case {
	int bits, group;
};

static struct fmt_case fmt_cases[] = {
	{1, 32}, {2, 32}, {3, 32}, {4, 32}, {1, 64}, {2, 64}, {3, 64}, {4, 64},
};

ParameterizedTestParameters(lowbit_sim, bundle_and_layout_bytes_are_the_gemv_format)
{
	return cr_make_param_array(struct fmt_case, fmt_cases, sizeof fmt_cases / sizeof fmt_cases[0]);
}

/* d_model 100 is a multiple of neither group nor 8/bits: the rounding shows. */
ParameterizedTest(struct fmt_case *c, lowbit_sim, bundle_and_layout_bytes_are_the_gemv_format)
{
	struct llm_desc m;
	struct lif_err e = {0};
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "odd");
	m.layers = 2, m.d_model = 100, m.d_ffn = 40, m.heads = 4, m.vocab = 50;
	m.ffn_kind = LLM_FFN_GATED3, m.dtype = LLM_FP16, m.sparsity = 0.9;
	m.weight_bits = c->bits, m.weight_group = c->group;
	cr_assert_eq(llm_derive(&m, "odd", &e), 0, "%s", e.msg);
	int64_t row = (100 * c->bits + 7) / 8 + (100 + c->group - 1) / c->group * 4;
	cr_expect_eq(gemv_bytes(1, 100, c->bits, c->group), row);
	cr_expect_eq(m.row_bytes, row);
	cr_expect_eq(m.bundle_bytes, 3 * row);
	cr_expect_eq(m.ffn_bytes, 3 * row * 40 * 2);
	/* q, k, v, o: 400 rows of 100 per layer; two norms of 2 x 100 fp16 values */
	cr_expect_eq(m.attn_bytes, (400 * row + 4 * 100 * 2) * 2);
	/* embeddings stay fp16: 2 x 50 x 100 values (untied) */
	cr_expect_eq(m.embed_bytes, 2 * 50 * 100 * 2);
	struct layout *sep = layout_new(LAYOUT_SEPARATE, &m, NULL, 1, 0, 1, &e);
	struct layout *rc = layout_new(LAYOUT_ROWCOL, &m, NULL, 1, 0, 1, &e);
	cr_assert(sep && rc, "%s", e.msg);
	cr_expect_eq(sep->piece_bytes, row);
	cr_expect_eq(rc->piece_bytes, 3 * row);
	cr_expect_eq(rc->layer_bytes, 3 * row * 40);
	layout_free(sep), layout_free(rc);
}

Test(lowbit_sim, bits_outside_1_to_4_or_a_bad_group_are_refused_by_the_model)
{
	struct llm_desc m;
	struct lif_err e = {0};
	memset(&m, 0, sizeof m);
	m.layers = 1, m.d_model = 64, m.d_ffn = 8, m.heads = 1, m.vocab = 4, m.dtype = LLM_FP16;
	m.weight_bits = 4, m.weight_group = 48;
	cr_expect_neq(llm_derive(&m, "odd", &e), 0);
	cr_expect(strstr(e.msg, "odd: low-bit weights need bits in 1..4 and group 32 or 64 "
				"(got bits 4, group 48)"), "%s", e.msg);
}

/* tiny.ini (3 layers, d_model 64, 203 neurons, relu) with a synthetic trace. */
static struct trace *tiny_trace(struct llm_desc *m)
{
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src("tests/data/tiny.ini"), m, &e), 0, "%s", e.msg);
	struct synth_params sp;
	synth_defaults(&sp);
	sp.tokens = 80;
	struct trace *t = synth_generate(m, &sp, 1, &e);
	cr_assert(t, "%s", e.msg);
	return t;
}

static struct device m1max_with_rates(const double *lut, const double *deq)
{
	struct device d;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/m1max.ini"), &d, &e), 0, "%s", e.msg);
	memcpy(d.compute.lut_weights_per_s, lut, 4 * sizeof *lut), d.compute.n_lut = 4;
	memcpy(d.compute.dequant_weights_per_s, deq, 4 * sizeof *deq), d.compute.n_dequant = 4;
	return d;
}

Test(lowbit_sim, bytes_read_copied_and_held_scale_with_the_row_bytes)
{
	struct llm_desc m;
	struct trace *t = tiny_trace(&m);
	const double r[4] = {1e9, 1e9, 1e9, 1e9};
	struct device d = m1max_with_rates(r, r);
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	cr_assert(c, "%s", e.msg);
	struct sim_params p;
	sim_default_params(&p);
	p.predictor = PRED_ORACLE;
	p.window = 3;
	p.layout = LAYOUT_ROWCOL;
	p.merge = 0;
	struct sim_result base, res;
	cr_assert_eq(sim_run(c, &d, &p, 1, &base, NULL, &e), 0, "%s", e.msg);
	cr_expect_gt(base.bytes_read_per_token, 0);
	const double fp16_row = 64 * 2;
	for (int bits = 1; bits <= 4; bits++)
		for (int g = 0; g < 2; g++) {
			p.bits = bits, p.group = g;
			cr_assert_eq(sim_run(c, &d, &p, 1, &res, NULL, &e), 0, "%s", e.msg);
			double ratio = gemv_bytes(1, 64, bits, 32 << g) / fp16_row;
			/* the same neurons move; each costs ratio times the fp16 bytes */
			cr_expect(rel(res.bytes_read_per_token, ratio * base.bytes_read_per_token) < 1e-12,
				  "bits %d group %d: %g vs %g x %g", bits, 32 << g,
				  res.bytes_read_per_token, ratio, base.bytes_read_per_token);
			cr_expect(rel(res.mem_bytes_copied_per_token,
				      ratio * base.mem_bytes_copied_per_token) < 1e-12);
			cr_expect_eq(res.load_frac_per_token, base.load_frac_per_token);
			cr_expect_eq(res.dram_window_bytes * 128, base.dram_window_bytes *
				     gemv_bytes(1, 64, bits, 32 << g));
			cr_expect_eq(res.dram_embed_bytes, base.dram_embed_bytes);
			/* tiny's reads are all under the 4 KiB alignment: each costs one
			 * aligned request whatever the bits, so I/O time cannot grow */
			cr_expect_leq(res.io_ms, base.io_ms);
		}
	/* 1 bit + 4 bytes per 64 weights = 12 bytes a row: 1/10.67 of fp16's 128 */
	p.bits = 1, p.group = 1;
	cr_assert_eq(sim_run(c, &d, &p, 1, &res, NULL, &e), 0, "%s", e.msg);
	cr_expect(rel(res.bytes_read_per_token * 128, 12 * base.bytes_read_per_token) < 1e-12);
	sim_cache_free(c);
	trace_free(t);
}

Test(lowbit_sim, compute_time_of_linear_layers_is_weights_over_the_measured_rate)
{
	struct llm_desc m;
	struct trace *t = tiny_trace(&m);
	/* the lut table is so fast its linear layers cost nothing measurable;
	 * dequant's rate then shows alone in the difference */
	const double fast[4] = {1e30, 1e30, 1e30, 1e30}, deq[4] = {4e8, 3e8, 2e8, 1e8};
	struct device d = m1max_with_rates(fast, deq);
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	cr_assert(c, "%s", e.msg);
	struct sim_params p;
	sim_default_params(&p);
	p.strategy = SIM_NAIVE; /* every row computed: a known number of weights */
	struct sim_result lut, dq;
	/* attention: q, k, v, o of 64 x 64; FFN: 203 neurons x 2 matrices x 64 */
	const double weights = 3 * (4.0 * 64 * 64 + 203.0 * 2 * 64);
	for (int bits = 1; bits <= 4; bits++) {
		p.bits = bits;
		p.kernel = COMPUTE_LUT;
		cr_assert_eq(sim_run(c, &d, &p, 1, &lut, NULL, &e), 0, "%s", e.msg);
		p.kernel = COMPUTE_DEQUANT;
		cr_assert_eq(sim_run(c, &d, &p, 1, &dq, NULL, &e), 0, "%s", e.msg);
		double want_ms = weights / deq[bits - 1] * 1e3;
		cr_expect(rel(dq.compute_ms - lut.compute_ms, want_ms) < 1e-9, "bits %d: %g vs %g",
			  bits, dq.compute_ms - lut.compute_ms, want_ms);
		cr_expect_eq(dq.io_ms, lut.io_ms);
	}
	sim_cache_free(c);
	trace_free(t);
}

Test(lowbit_sim, a_device_without_the_kernel_table_is_a_clear_error)
{
	struct llm_desc m;
	struct trace *t = tiny_trace(&m);
	const double r[4] = {1e9, 1e9, 1e9, 1e9};
	struct device d = m1max_with_rates(r, r);
	d.compute.n_dequant = 0;
	struct lif_err e = {0};
	struct sim_cache *c = sim_cache_new(t, &m, &e);
	cr_assert(c, "%s", e.msg);
	struct sim_params p;
	struct sim_result res;
	sim_default_params(&p);
	p.bits = 3;
	cr_expect_eq(sim_run(c, &d, &p, 1, &res, NULL, &e), 0, "lut is there: %s", e.msg);
	p.kernel = COMPUTE_DEQUANT;
	cr_expect_neq(sim_run(c, &d, &p, 1, &res, NULL, &e), 0);
	cr_expect(strstr(e.msg, "device m1max: [compute] dequant_weights_per_s: missing, but 3-bit "
				"weights with kernel = dequant need the measured kernel speed "
				"(lifsim bench-gemv --profile"), "%s", e.msg);
	/* bits = 0 needs no table */
	err_clear(&e);
	p.bits = 0;
	cr_expect_eq(sim_run(c, &d, &p, 1, &res, NULL, &e), 0, "%s", e.msg);
	sim_cache_free(c);
	trace_free(t);
}

Test(lowbit_sim, bench_gemv_writes_the_measured_rates_into_a_copy_of_the_profile)
{
	char out[16384];
	const char *dst = tu_path("measured.ini");
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q bench-gemv --shapes 64x128,128x64 --repeats 1 "
				  "--probe-mib 64 --threads-list 1 --kernels dequant,lut "
				  "--profile %s -o %s", tu_src("models/devices/m1max.ini"), dst),
		     0, "%s", out);
	struct device in, got;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/m1max.ini"), &in, &e), 0, "%s", e.msg);
	cr_assert_eq(device_load(dst, &got, &e), 0, "%s", e.msg);
	cr_expect_eq(got.compute.n_lut, 4);
	cr_expect_eq(got.compute.n_dequant, 4);
	for (int b = 0; b < 4; b++)
		cr_expect(got.compute.lut_weights_per_s[b] > 0 && got.compute.dequant_weights_per_s[b] > 0);
	/* everything else is the profile read */
	cr_expect_str_eq(got.name, in.name);
	cr_expect(!memcmp(&got.flash, &in.flash, sizeof in.flash));
	cr_expect(!memcmp(&got.dram, &in.dram, sizeof in.dram));
	cr_expect_eq(got.compute.flops_per_s, in.compute.flops_per_s);
	cr_expect_eq(got.compute.mem_bytes_per_s, in.compute.mem_bytes_per_s);
}

struct bench_bad {
	char args[160];
	char want[160];
};

static struct bench_bad bench_bads[] = {
	{"--profile P", "--profile and -o go together"},
	{"-o X --profile P --bits 2,4", "--profile needs every bit width 1,2,3,4 and both"},
	{"-o X --profile P --kernels lut", "--profile needs every bit width 1,2,3,4 and both"},
	{"-o X --profile no-such.ini", "no device profile 'no-such.ini' in: "},
};

ParameterizedTestParameters(lowbit_sim, bench_gemv_profile_errors_say_what_is_wrong)
{
	return cr_make_param_array(struct bench_bad, bench_bads, sizeof bench_bads / sizeof bench_bads[0]);
}

ParameterizedTest(struct bench_bad *b, lowbit_sim, bench_gemv_profile_errors_say_what_is_wrong)
{
	char out[8192], args[1024];
	const char *p = tu_src("models/devices/m1max.ini");
	/* P: the shipped profile; X: an output that must not appear */
	snprintf(args, sizeof args, "%s", b->args);
	char *at = strstr(args, " P");
	if (at && (at[2] == 0 || at[2] == ' ')) {
		char rest[512];
		snprintf(rest, sizeof rest, "%s", at + 2);
		snprintf(at, sizeof args - (at - args), " %s%s", p, rest);
	}
	at = strstr(args, "-o X");
	char dst[4096];
	snprintf(dst, sizeof dst, "%s", tu_path("x.ini"));
	if (at) {
		char rest[512];
		snprintf(rest, sizeof rest, "%s", at + 4);
		snprintf(at, sizeof args - (at - args), "-o %s%s", dst, rest);
	}
	cr_expect_neq(tu_lifsim(out, sizeof out, "bench-gemv --shapes 64x64 --repeats 1 %s", args), 0);
	cr_expect(strstr(out, b->want), "'%s' lacks '%s'", out, b->want);
	FILE *f = fopen(dst, "r");
	cr_expect_null(f, "%s was written", dst);
	if (f)
		fclose(f);
}
