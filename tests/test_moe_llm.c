#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "models/llm.h"
#include "tests/testutil.h"

TestSuite(moe_llm, .init = tu_init);

struct moe_shipped {
	char file[64];
	int experts, top_k;
	int64_t expert_bytes; /* bf16: 3 matrices x d_expert x d_model x 2 */
	double params, active; /* published; active with the token embedding */
};

static struct moe_shipped moe_shipped[] = {
	{"mixtral-8x7b.ini", 8, 2, 3LL * 14336 * 4096 * 2, 46.7e9, 12.9e9},
	{"qwen3-30b-a3b.ini", 128, 8, 3LL * 768 * 2048 * 2, 30.5e9, 3.3e9},
	{"gpt-oss-20b.ini", 32, 4, 3LL * 2880 * 2880 * 2, 20.9e9, 3.6e9 + 201088.0 * 2880},
	{"gpt-oss-120b.ini", 128, 4, 3LL * 2880 * 2880 * 2, 116.8e9, 5.1e9 + 201088.0 * 2880},
	{"olmoe-1b-7b.ini", 64, 8, 3LL * 1024 * 2048 * 2, 6.9e9, 1.3e9},
};

ParameterizedTestParameters(moe_llm, shipped_moe_descriptions_give_published_totals_and_active_params)
{
	return cr_make_param_array(struct moe_shipped, moe_shipped,
				   sizeof moe_shipped / sizeof moe_shipped[0]);
}

ParameterizedTest(struct moe_shipped *s, moe_llm,
		  shipped_moe_descriptions_give_published_totals_and_active_params, .init = tu_init)
{
	char rel[128];
	snprintf(rel, sizeof rel, "models/llms/%s", s->file);
	struct llm_desc d;
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src(rel), &d, &e), 0, "%s", e.msg);
	cr_expect(llm_is_moe(&d));
	cr_expect_eq(d.experts, s->experts);
	cr_expect_eq(d.experts_per_token, s->top_k);
	cr_expect_eq(d.expert_bytes, s->expert_bytes);
	cr_expect_eq(d.experts_bytes, s->expert_bytes * d.experts * d.moe_layers);
	cr_expect(fabs(d.params_computed / s->params - 1) < 0.02, "%g vs %g", d.params_computed,
		  s->params);
	cr_expect(fabs(d.active_params / s->active - 1) < 0.03, "%g vs %g", d.active_params,
		  s->active);
}

Test(moe_llm, dense_layers_shared_experts_and_router_are_resident)
{
	struct llm_desc d = {.name = "t", .layers = 4, .d_model = 64, .d_ffn = 256, .heads = 4,
			     .vocab = 100, .ffn_kind = LLM_FFN_GATED3, .dtype = LLM_FP16,
			     .experts = 16, .experts_per_token = 2, .d_expert = 32, .d_shared = 48,
			     .dense_layers = 1};
	struct lif_err e = {0};
	cr_assert_eq(llm_derive(&d, "t", &e), 0, "%s", e.msg);
	int64_t row = 64 * 2;
	cr_expect_eq(d.moe_layers, 3);
	cr_expect_eq(d.expert_matrix_bytes, 32 * row);
	cr_expect_eq(d.expert_bytes, 3 * 32 * row);
	cr_expect_eq(d.experts_bytes, 3 * 32 * row * 16 * 3);
	cr_expect_eq(d.resident_ffn_bytes, 3 * row * 256 + (3 * row * 48 + 64 * 16 * 2) * 3);
	cr_expect_eq(d.ffn_bytes, d.experts_bytes + d.resident_ffn_bytes);
}

Test(moe_llm, head_dim_sets_the_attention_width)
{
	struct llm_desc d = {.name = "t", .layers = 1, .d_model = 64, .d_ffn = 256, .heads = 4,
			     .kv_heads = 2, .head_dim = 32, .vocab = 100, .dtype = LLM_FP16,
			     .sparsity = 0.5};
	struct lif_err e = {0};
	cr_assert_eq(llm_derive(&d, "t", &e), 0, "%s", e.msg);
	/* q, o: 64 x 128 each; k, v: 64 x 64 each; norms 4 x 64 */
	cr_expect_eq(d.attn_bytes, (2 * 64 * 128 + 2 * 64 * 64 + 4 * 64) * 2);
}

struct moe_bad {
	char keys[160];
	char msg[64];
};

static struct moe_bad moe_bad[] = {
	{"experts = 8\nexperts_per_token = 9\nd_expert = 16\n", "experts_per_token 9 outside"},
	{"experts = 8\nexperts_per_token = 2\n", "needs d_expert"},
	{"experts_per_token = 2\n", "need experts > 0"},
	{"experts = 8\nexperts_per_token = 2\nd_expert = 16\ndense_layers = 2\n", "leaves no MoE layer"},
};

ParameterizedTestParameters(moe_llm, inconsistent_moe_keys_are_rejected)
{
	return cr_make_param_array(struct moe_bad, moe_bad, sizeof moe_bad / sizeof moe_bad[0]);
}

ParameterizedTest(struct moe_bad *b, moe_llm, inconsistent_moe_keys_are_rejected, .init = tu_init)
{
	char text[512];
	snprintf(text, sizeof text, "[model]\nname = t\nlayers = 2\nd_model = 64\nd_ffn = 128\n"
		 "heads = 4\nvocab = 100\nffn = gated\nsparsity = 0\n%s", b->keys);
	const char *p = tu_write("moe.ini", text);
	struct llm_desc d;
	struct lif_err e = {0};
	cr_expect_neq(llm_load(p, &d, &e), 0);
	cr_expect(strstr(e.msg, b->msg) != NULL, "message: %s", e.msg);
}
