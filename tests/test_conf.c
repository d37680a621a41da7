#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <string.h>

#include "sim/base/conf.h"
#include "tests/testutil.h"

struct demo {
	int n;
	double x;
	int64_t bytes;
	int kind;
	char name[16];
	double list[4];
	int nlist;
};

#define O(f) CONF_OFF(struct demo, f)
static const struct conf_opt demo_opts[] = {
	{.section = "a", .name = "n", .type = CONF_INT, .offset = O(n), .def = "3", .min = 1,
	 .max = 10, .help = "a count"},
	{.section = "a", .name = "x", .type = CONF_DOUBLE, .offset = O(x), CONF_NO_BOUNDS,
	 .help = "a number"},
	{.section = "a", .name = "bytes", .type = CONF_BYTES, .offset = O(bytes), .def = "4KiB",
	 CONF_NO_BOUNDS, .help = "a size"},
	{.section = "a", .name = "kind", .type = CONF_ENUM, .offset = O(kind), .def = "up",
	 CONF_NO_BOUNDS, .choices = "up|down", .help = "a choice"},
	{.section = "a", .name = "name", .type = CONF_STR, .offset = O(name), .size = 16,
	 .def = "x", CONF_NO_BOUNDS, .help = "a name"},
	{.section = "a", .name = "list", .type = CONF_DLIST, .offset = O(list), .size = 4,
	 .count_offset = O(nlist), .def = "1,2", CONF_NO_BOUNDS, .help = "a list"},
	{0},
};

TestSuite(conf, .init = tu_init);

Test(conf, loads_values_defaults_and_units)
{
	const char *p = tu_write("ok.ini", "[a]\nx = 2.5\nbytes = 16KiB\nkind = down\nlist = 3, 4.5,5\n");
	struct demo d = {0};
	struct lif_err e = {0};
	cr_assert_eq(conf_load(p, demo_opts, &d, &e), 0, "%s", e.msg);
	cr_expect_eq(d.n, 3);
	cr_expect_float_eq(d.x, 2.5, 1e-12);
	cr_expect_eq(d.bytes, 16384);
	cr_expect_eq(d.kind, 1);
	cr_expect_str_eq(d.name, "x");
	cr_expect_eq(d.nlist, 3);
	cr_expect_float_eq(d.list[1], 4.5, 1e-12);
}

/* Criterion runs each parameter in a fresh process: no pointers in params. */
struct bad_case {
	char text[128];
	char want[128]; /* substring of the message */
};

static struct bad_case bad_cases[] = {
	{"[a]\nx = 1\nn = 11\n", "bad.ini:3: [a] n: '11' is outside [1, 10]"},
	{"[a]\nx = 1\nbogus = 1\n", "bad.ini:3: [a] bogus: unknown key"},
	{"[a]\nx = abc\n", "bad.ini:2: [a] x: 'abc' is not a number"},
	{"[a]\nx = 1\nkind = sideways\n", "bad.ini:3: [a] kind: 'sideways' is not one of up|down"},
	{"[a]\nn = 2\n", "[a] x: required key is missing"},
	{"[a]\nx = 1\nbytes = 12 parsecs\n", "bad.ini:3: [a] bytes: '12 parsecs' is not a byte size"},
	{"[a]\nx = ${NOPE_NOT_SET}\n", "bad.ini:2: ${NOPE_NOT_SET} is not defined"},
	{"[a]\nthis line is not ini\n", "bad.ini:2: not a valid INI line"},
	{"[a]\nx = 1\ninclude = missing.ini\n", "missing.ini: cannot open"},
};

ParameterizedTestParameters(conf, bad_values_name_file_line_and_key)
{
	return cr_make_param_array(struct bad_case, bad_cases, sizeof bad_cases / sizeof bad_cases[0]);
}

ParameterizedTest(struct bad_case *c, conf, bad_values_name_file_line_and_key, .init = tu_init)
{
	const char *p = tu_write("bad.ini", c->text);
	struct demo d = {0};
	struct lif_err e = {0};
	cr_assert_neq(conf_load(p, demo_opts, &d, &e), 0);
	cr_expect(strstr(e.msg, c->want) != NULL, "message '%s' lacks '%s'", e.msg, c->want);
}

Test(conf, include_and_vars_expand)
{
	tu_write("inc.ini", "[vars]\nBASE = 7\n");
	const char *p = tu_write("main.ini", "include = inc.ini\n[a]\nx = ${BASE}.5\nname = ${BASE}\n");
	struct demo d = {0};
	struct lif_err e = {0};
	cr_assert_eq(conf_load(p, demo_opts, &d, &e), 0, "%s", e.msg);
	cr_expect_float_eq(d.x, 7.5, 1e-12);
	cr_expect_str_eq(d.name, "7");
}

Test(conf, include_cycle_is_an_error)
{
	const char *p = tu_write("cyc.ini", "include = cyc.ini\n");
	struct conf_doc *doc = NULL;
	struct lif_err e = {0};
	cr_assert_neq(conf_doc_read(p, &doc, &e), 0);
	cr_expect(strstr(e.msg, "nested deeper") != NULL, "%s", e.msg);
}

Test(conf, long_lines_are_read_whole)
{
	char text[4096] = "[a]\nx = 1\nlist = ";
	strcat(text, "1");
	for (int i = 0; i < 3; i++)
		strcat(text, ",                                                                                    2");
	strcat(text, "\n");
	const char *p = tu_write("long.ini", text);
	struct demo d = {0};
	struct lif_err e = {0};
	cr_assert_eq(conf_load(p, demo_opts, &d, &e), 0, "%s", e.msg);
	cr_expect_eq(d.nlist, 4);
}

Test(conf, integer_bounds_print_as_integers)
{
	static const struct conf_opt o[] = {
		{.section = "llm", .name = "d_ffn", .type = CONF_INT, .offset = 0, .def = "1",
		 .min = 1, .max = 4194304, .help = "neurons"},
		{0},
	};
	int v = 0;
	struct lif_err e = {0};
	cr_assert_neq(conf_set(&o[0], &v, "4194305", NULL, &e), 0);
	cr_expect(strstr(e.msg, "'4194305' is outside [1, 4194304]"), "%s", e.msg);
}

Test(conf, a_line_over_16_kib_is_reported_as_too_long_on_its_line, .init = tu_init)
{
	static char text[20000];
	int o = snprintf(text, sizeof text, "[a]\nx = 1\nname = ");
	memset(text + o, 'y', 17000);
	strcpy(text + o + 17000, "\nn = 2\n");
	const char *p = tu_write("long.ini", text);
	struct demo d = {0};
	struct lif_err e = {0};
	cr_assert_neq(conf_load(p, demo_opts, &d, &e), 0);
	cr_expect(strstr(e.msg, "long.ini:3: line longer than 16382 bytes"), "%s", e.msg);
}

/* A byte-size row whose minimum is negative ([moe] max_gap = -1: never
 * merge) takes a plain negative integer; other rows do not. */
Test(conf, a_byte_size_row_with_a_negative_minimum_takes_minus_one)
{
	struct gap {
		int64_t gap, size;
	} g = {0};
	const struct conf_opt opts[] = {
		{.section = "a", .name = "gap", .type = CONF_BYTES, .offset = CONF_OFF(struct gap, gap),
		 .def = "0", .min = -1, .max = 1e12, .help = "merge gap (-1: never)"},
		{.section = "a", .name = "size", .type = CONF_BYTES, .offset = CONF_OFF(struct gap, size),
		 .def = "0", .min = 0, .max = 1e12, .help = "a size"},
		{0},
	};
	struct lif_err e = {0};
	cr_assert_eq(conf_load(tu_write("g.ini", "[a]\ngap = -1\n"), opts, &g, &e), 0, "%s", e.msg);
	cr_expect_eq(g.gap, -1);
	e = (struct lif_err){0};
	cr_expect_neq(conf_load(tu_write("g2.ini", "[a]\ngap = -2\n"), opts, &g, &e), 0);
	cr_expect(strstr(e.msg, "'-2' is outside [-1, 1000000000000]"), "%s", e.msg);
	e = (struct lif_err){0};
	cr_expect_neq(conf_load(tu_write("g3.ini", "[a]\nsize = -1\n"), opts, &g, &e), 0);
	cr_expect(strstr(e.msg, "'-1' is not a byte size"), "%s", e.msg);
	cr_expect_neq(conf_load(tu_write("g4.ini", "[a]\ngap = -1KiB\n"), opts, &g, &e), 0);
}
