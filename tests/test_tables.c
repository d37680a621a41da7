/* The ops and name tables, their enums and the choice lists the option tables
 * and error messages show (read off the tables): each entry's kind is its
 * index, the choice list names the entries in order, and the INI row built on
 * it maps each name to that index and back. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "models/compute.h"
#include "models/device.h"
#include "models/flash.h"
#include "models/llm.h"
#include "sim/base/conf.h"
#include "sim/core/layout.h"
#include "sim/core/moe.h"
#include "sim/core/pred.h"
#include "sim/core/sim.h"
#include "sim/real/io.h"

/* Number of choices of fn; checks every name is set and distinct. */
static int count_choices(conf_names_fn *fn)
{
	int n = 0;
	for (; fn(n); n++)
		for (int j = 0; j < n; j++)
			cr_expect_str_neq(fn(j), fn(n));
	cr_expect_null(fn(-1));
	return n;
}

/* The row (section, key) of opts lists fn's names, parses name i to i and
 * prints i as name i; the help shows the list. */
static void expect_row_uses(const struct conf_opt *opts, const char *section, const char *key,
			    conf_names_fn *fn)
{
	const struct conf_opt *o = conf_find(opts, section, key);
	cr_assert_not_null(o, "[%s] %s", section, key);
	cr_expect_eq(o->names, fn, "[%s] %s", section, key);
	static char target[1 << 20];
	char buf[64];
	cr_assert_lt(o->offset + sizeof(int), sizeof target);
	struct lif_err err = {0};
	for (int i = 0; fn(i); i++) {
		cr_expect_eq(conf_set(o, target, fn(i), NULL, &err), 0, "%s", fn(i));
		cr_expect_eq(*(int *)(target + o->offset), i);
		conf_format(o, target, buf, sizeof buf);
		cr_expect_str_eq(buf, fn(i));
	}
	cr_expect_neq(conf_set(o, target, "no-such-choice", NULL, &err), 0);
}

Test(tables, layout_strategies_match_enum_and_choices)
{
	int n = count_choices(layout_choice);
	cr_expect_eq(n, LAYOUT_FRIENDS + 1);
	for (int i = 0; i < n; i++) {
		cr_expect_eq(layout_strategies[i]->kind, i, "%s", layout_strategies[i]->name);
		cr_expect_eq(layout_by_kind(i), layout_strategies[i]);
		cr_expect_str_eq(layout_choice(i), layout_strategies[i]->name);
		cr_expect_eq(layout_find(layout_choice(i)), layout_strategies[i]);
	}
	cr_expect_null(layout_strategies[n]);
	expect_row_uses(sim_opts, "sim", "layout", layout_choice);
}

Test(tables, predictor_modes_match_enum_and_choices)
{
	int n = count_choices(pred_choice);
	cr_expect_eq(n, PRED_LOWRANK + 1);
	for (int i = 0; i < n; i++) {
		cr_expect_eq(pred_modes[i]->kind, i, "%s", pred_modes[i]->name);
		cr_expect_eq(pred_by_kind(i), pred_modes[i]);
		cr_expect_str_eq(pred_choice(i), pred_modes[i]->name);
		cr_expect_eq(pred_find(pred_choice(i)), pred_modes[i]);
	}
	cr_expect_null(pred_modes[n]);
	expect_row_uses(sim_opts, "sim", "predictor", pred_choice);
}

Test(tables, flash_models_match_enum_and_choices)
{
	cr_expect_eq(count_choices(flash_kind_choice), FLASH_NKINDS);
	for (int i = 0; i < FLASH_NKINDS; i++) {
		cr_expect_str_eq(flash_kind_choice(i), flash_ops_table[i].name);
		cr_expect_eq(flash_ops_find(flash_kind_choice(i)), &flash_ops_table[i]);
		cr_expect_not_null(flash_ops_table[i].extent_ns);
		cr_expect_not_null(flash_ops_table[i].check);
	}
	expect_row_uses(device_opts, "flash", "model", flash_kind_choice);
}

Test(tables, io_engines_match_choices)
{
	int n = count_choices(io_engine_choice);
	for (int i = 0; i < n; i++) {
		cr_expect_str_eq(io_engine_choice(i), io_engines[i]->name);
		cr_expect_eq(io_find(io_engine_choice(i)), io_engines[i]);
		cr_expect(io_engines[i]->open && io_engines[i]->close && io_engines[i]->read, "%s",
			  io_engines[i]->name);
	}
	cr_expect_null(io_engines[n]);
	char buf[128];
	cr_expect_str_eq(conf_names_join(io_engine_choice, buf, sizeof buf), "psync|io_uring|mem");
}

Test(tables, moe_policies_match_choices)
{
	int n = count_choices(moe_policy_choice);
	for (int i = 0; i < n; i++)
		cr_expect_eq(moe_cache_find(moe_policy_choice(i)), moe_cache_policies[i]);
	cr_expect_null(moe_cache_policies[n]);
	cr_expect_eq(count_choices(moe_prefetch_choice), MOE_PREFETCH_TRAINED + 1);
	cr_expect_str_eq(moe_prefetch_choice(MOE_PREFETCH_TRAINED), "trained");
	cr_expect_str_eq(moe_prefetch_choice(MOE_PREFETCH_ORACLE), "oracle");
	cr_expect_eq(count_choices(moe_layout_choice), MOE_LAYOUT_COSEL + 1);
	cr_expect_str_eq(moe_layout_choice(MOE_LAYOUT_MATRIX), "matrix");
}

Test(tables, dtypes_and_kernels_match_enum_and_choices)
{
	cr_expect_eq(count_choices(llm_dtype_choice), LLM_NDTYPES);
	for (int i = 0; i < LLM_NDTYPES; i++)
		cr_expect_str_eq(llm_dtype_name(i), llm_dtype_choice(i));
	cr_expect_str_eq(llm_dtype_name(LLM_NDTYPES), "?");
	cr_expect_eq(llm_dtype_bytes(LLM_BF16), 2);
	expect_row_uses(llm_opts, "model", "dtype", llm_dtype_choice);
	cr_expect_eq(count_choices(compute_kernel_choice), COMPUTE_DEQUANT + 1);
	expect_row_uses(sim_opts, "sim", "kernel", compute_kernel_choice);
}

/* [sim] dtype and compute_dtype: the dtypes, then "model" / "stored" as
 * LLM_NDTYPES. */
Test(tables, sim_dtypes_extend_the_model_dtypes)
{
	char buf[128];
	struct sim_params p;
	struct lif_err err = {0};
	const struct conf_opt *o = conf_find(sim_opts, "sim", "dtype");
	cr_assert_not_null(o);
	cr_expect_str_eq(conf_choices(o, buf, sizeof buf), "fp32|fp16|bf16|int8|model");
	cr_expect_eq(conf_set(o, &p, "model", NULL, &err), 0);
	cr_expect_eq(p.dtype, LLM_NDTYPES);
	o = conf_find(sim_opts, "sim", "compute_dtype");
	cr_assert_not_null(o);
	cr_expect_str_eq(conf_choices(o, buf, sizeof buf), "fp32|fp16|bf16|int8|stored");
	cr_expect_eq(conf_set(o, &p, "int8", NULL, &err), 0);
	cr_expect_eq(p.compute_dtype, LLM_INT8);
}

/* What the ops declare agrees with how they place: learning layouts have a
 * per-layer placement, only they reorder or pair neurons. */
Test(tables, layout_ops_flags_agree_with_placement)
{
	for (int i = 0; layout_strategies[i]; i++) {
		const struct layout_ops *o = layout_strategies[i];
		cr_expect_eq(o->needs_trace, o->place_layer != NULL, "%s", o->name);
		cr_expect(!(o->reorders || o->pairs) || o->needs_trace, "%s", o->name);
		cr_expect(!(o->reorders && o->pairs), "%s", o->name);
		cr_expect(!(o->split_matrices && o->pairs), "%s", o->name);
	}
}

/* Only predictors with a model cost DRAM; rates, training and the trace's own
 * sets exclude each other. */
Test(tables, predictor_ops_flags_are_consistent)
{
	for (int i = 0; pred_modes[i]; i++) {
		const struct pred_ops *o = pred_modes[i];
		cr_expect(!(o->has_rates || o->trained || o->trace_sets) || o->has_model, "%s", o->name);
		cr_expect(o->has_rates + o->trained + o->trace_sets <= 1, "%s", o->name);
	}
	cr_expect(!pred_by_kind(PRED_NONE)->has_model);
}
