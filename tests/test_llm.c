#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "models/llm.h"
#include "tests/testutil.h"

TestSuite(llm, .init = tu_init);

struct shipped {
	char file[64];
	int64_t bundle_bytes; /* fp16 */
	double params;
	double sparsity;
};

static struct shipped shipped[] = {
	{"opt-6.7b.ini", 2 * 4096 * 2, 6.7e9, 0.97},
	{"falcon-7b.ini", 2 * 4544 * 2, 6.9e9, 0.95},
	{"llama-2-7b.ini", 3 * 4096 * 2, 6.74e9, 0.90},
	{"persimmon-8b.ini", 2 * 4096 * 2, 9.3e9, 0.90},
	{"phi-2.ini", 2 * 2560 * 2, 2.78e9, 0.90},
};

ParameterizedTestParameters(llm, shipped_descriptions_load_with_derived_sizes)
{
	return cr_make_param_array(struct shipped, shipped, sizeof shipped / sizeof shipped[0]);
}

ParameterizedTest(struct shipped *s, llm, shipped_descriptions_load_with_derived_sizes,
		  .init = tu_init)
{
	char rel[128];
	snprintf(rel, sizeof rel, "models/llms/%s", s->file);
	struct llm_desc d;
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src(rel), &d, &e), 0, "%s", e.msg);
	cr_expect_eq(d.bundle_bytes, s->bundle_bytes);
	cr_expect(fabs(d.params_computed / s->params - 1) < 0.05);
	cr_expect_float_eq(d.sparsity, s->sparsity, 1e-12);
	cr_expect_eq(d.ffn_bytes, d.bundle_bytes * d.d_ffn * d.layers);
	cr_expect_eq(d.total_bytes, d.ffn_bytes + d.attn_bytes + d.embed_bytes);
}

Test(llm, opt_sizes_match_the_paper)
{
	struct llm_desc d;
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src("models/llms/opt-6.7b.ini"), &d, &e), 0, "%s", e.msg);
	/* 16 KiB bundles at fp16; FFN about 8.6 GB; whole model about 13.4 GB (Table 2) */
	cr_expect_eq(d.bundle_bytes, 16384);
	cr_expect(fabs(d.ffn_bytes / 8.59e9 - 1) < 0.01, "ffn %lld", (long long)d.ffn_bytes);
	cr_expect(fabs(d.total_bytes / 13.4e9 - 1) < 0.02, "total %lld", (long long)d.total_bytes);
}

Test(llm, falcon_fp32_bundle_is_35_5_kib)
{
	struct llm_desc d;
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src("models/llms/falcon-7b.ini"), &d, &e), 0, "%s", e.msg);
	d.dtype = LLM_FP32;
	cr_assert_eq(llm_derive(&d, "falcon", &e), 0, "%s", e.msg);
	cr_expect_eq(d.bundle_bytes, (int64_t)(35.5 * 1024));
}

struct bad_desc {
	char text[400];
	char want[160];
};

#define BASE "[model]\nname = m\nlayers = 2\nd_ffn = 64\nvocab = 10\nffn = relu\nsparsity = 0.9\n"
static struct bad_desc bad_descs[] = {
	{BASE "d_model = 30\nheads = 4\n", "d_model 30 is not a multiple of heads 4"},
	{BASE "d_model = 32\nheads = 4\nkv_heads = 3\n", "heads 4 is not a multiple of kv_heads 3"},
	{BASE "d_model = 32\nheads = 4\nparams = 1e9\n", "declared params 1e+09 but the shape gives"},
	{BASE "d_model = 32\nheads = 4\nsparsity = 1.5\n", "m.ini:10: [model] sparsity: '1.5' is outside"},
	{BASE "d_model = 32\nheads = 4\nffn = swish\n", "m.ini:10: [model] ffn: 'swish' is not one of relu|gated|gelu"},
	{BASE "d_model = 32\nheads = 4\nwidth = 3\n", "m.ini:10: [model] width: unknown key"},
	{BASE "heads = 4\n", "[model] d_model: required key is missing"},
	{BASE "d_model = 32\nheads = four\n", "m.ini:9: [model] heads: 'four' is not an integer"},
	{BASE "d_model = 32\nheads = 4\nsparsity_first = 0.8\nsparsity_last = 0.9\n",
	 "sparsity_first/last average 0.85 but sparsity is 0.9"},
};

ParameterizedTestParameters(llm, inconsistent_descriptions_are_rejected_naming_file_line_and_key)
{
	return cr_make_param_array(struct bad_desc, bad_descs, sizeof bad_descs / sizeof bad_descs[0]);
}

ParameterizedTest(struct bad_desc *b, llm, inconsistent_descriptions_are_rejected_naming_file_line_and_key,
		  .init = tu_init)
{
	const char *p = tu_write("m.ini", b->text);
	struct llm_desc d;
	struct lif_err e = {0};
	cr_assert_neq(llm_load(p, &d, &e), 0);
	cr_expect(strstr(e.msg, b->want) != NULL, "message '%s' lacks '%s'", e.msg, b->want);
}

Test(llm, missing_file_names_the_file)
{
	struct llm_desc d;
	struct lif_err e = {0};
	cr_assert_neq(llm_load("/nonexistent/x.ini", &d, &e), 0);
	cr_expect(strstr(e.msg, "/nonexistent/x.ini: cannot open") != NULL, "%s", e.msg);
}
