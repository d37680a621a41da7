/* The ops tables and the choice lists the option tables and error messages
 * show: same names, same order, same count, and each entry's kind is its
 * enum value. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "models/flash.h"
#include "sim/core/layout.h"
#include "sim/core/pred.h"
#include "sim/real/io.h"

/* Join n names with '|' into buf. */
static const char *join(const char *const *names, int n, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < n; i++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "|" : "", names[i]);
	return buf;
}

Test(tables, layout_strategies_match_enum_and_choices)
{
	const char *names[16];
	char buf[256];
	int n = 0;
	for (; layout_strategies[n]; n++) {
		cr_expect_eq(layout_strategies[n]->kind, n, "%s", layout_strategies[n]->name);
		cr_expect_eq(layout_by_kind(n), layout_strategies[n]);
		names[n] = layout_strategies[n]->name;
	}
	cr_expect_eq(n, LAYOUT_FRIENDS + 1);
	cr_expect_str_eq(join(names, n, buf, sizeof buf), LAYOUT_CHOICES);
}

Test(tables, predictor_modes_match_enum_and_choices)
{
	const char *names[16];
	char buf[256];
	int n = 0;
	for (; pred_modes[n]; n++) {
		cr_expect_eq(pred_modes[n]->kind, n, "%s", pred_modes[n]->name);
		cr_expect_eq(pred_by_kind(n), pred_modes[n]);
		names[n] = pred_modes[n]->name;
	}
	cr_expect_eq(n, PRED_LOWRANK + 1);
	cr_expect_str_eq(join(names, n, buf, sizeof buf), PRED_CHOICES);
}

Test(tables, flash_models_match_enum_and_choices)
{
	const char *names[FLASH_NKINDS];
	char buf[256];
	for (int i = 0; i < FLASH_NKINDS; i++) {
		names[i] = flash_ops_table[i].name;
		cr_expect_eq(flash_ops_find(names[i]), &flash_ops_table[i]);
		cr_expect_not_null(flash_ops_table[i].extent_ns);
		cr_expect_not_null(flash_ops_table[i].check);
	}
	cr_expect_str_eq(join(names, FLASH_NKINDS, buf, sizeof buf), FLASH_KIND_CHOICES);
}

Test(tables, io_engines_match_choices)
{
	const char *names[16];
	char buf[256];
	int n = 0;
	for (; io_engines[n]; n++) {
		names[n] = io_engines[n]->name;
		cr_expect_eq(io_find(names[n]), io_engines[n]);
		cr_expect(io_engines[n]->open && io_engines[n]->close && io_engines[n]->read, "%s",
			  names[n]);
	}
	cr_expect_str_eq(join(names, n, buf, sizeof buf), IO_ENGINE_CHOICES);
}
