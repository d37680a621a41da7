#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/sweep/sweep.h"
#include "tests/testutil.h"

static char *slurp_text(const char *path);
static int count_lines(const char *s);

/* ---- test kinds: a deterministic function of [p] a, b, n and the point's RNG ---- */

struct tparams {
	double a;
	char b[32];
	int n;
};

#define O(f) CONF_OFF(struct tparams, f)
static const struct conf_opt tp_opts[] = {
	{.section = "p", .name = "a", .type = CONF_DOUBLE, .offset = O(a), .def = "0", .min = 0,
	 .max = 100, .help = "a number"},
	{.section = "p", .name = "b", .type = CONF_STR, .offset = O(b), .size = 32, .def = "x",
	 CONF_NO_BOUNDS, .help = "a word"},
	{.section = "p", .name = "n", .type = CONF_INT, .offset = O(n), .def = "1", .min = 1,
	 .max = 1000, .help = "draws"},
	{0},
};

struct tctx {
	int calls;       /* points computed (atomic) */
	long fail_at;    /* point that fails, or -1 */
	int uneven;      /* odd points set one column less */
	const char *col; /* name of the first result column */
	const char *peek; /* results.csv to count the lines of ... */
	long peek_at;     /* ... when this point starts */
	int peek_lines;
};

static int tp_read(const struct conf_doc *point, struct tparams *t, struct lif_err *err)
{
	*t = (struct tparams){0};
	if (conf_defaults(tp_opts, t, err))
		return err->code;
	return conf_apply(tp_opts, t, point, "p", err);
}

static int tp_check(void *ctx, const struct conf_doc *point, struct conf_doc *resolved,
		    struct lif_err *err)
{
	struct tparams t;
	int rc = tp_read(point, &t, err);
	return rc ? rc : sweep_resolved_add_opts(resolved, tp_opts, &t);
}

static int tp_run(void *vctx, const struct conf_doc *point, struct sweep_row *row,
		  struct lif_err *err)
{
	struct tctx *c = vctx;
	struct tparams t;
	__atomic_add_fetch(&c->calls, 1, __ATOMIC_SEQ_CST);
	if (c->peek && (long)sweep_row_point(row) == c->peek_at) {
		char *text = slurp_text(c->peek);
		c->peek_lines = count_lines(text);
		free(text);
	}
	if ((long)sweep_row_point(row) == c->fail_at)
		return err_set(err, ERR_RANGE, "deliberate failure");
	int rc = tp_read(point, &t, err);
	if (rc)
		return rc;
	double sum = 0;
	gsl_rng *rng = sweep_row_rng(row);
	for (int i = 0; i < t.n; i++)
		sum += gsl_rng_uniform(rng);
	sweep_row_set_num(row, c->col ? c->col : "value_x2", 2 * t.a + (double)strlen(t.b));
	sweep_row_set_num(row, "draws_sum", sum);
	if (!(c->uneven && sweep_row_point(row) % 2))
		sweep_row_set_str(row, "note", "b=\"q\", ok");
	return 0;
}

static const struct sweep_kind tp_kind = {
	.name = "tp", .summary = "test kind", .check = tp_check, .run = tp_run};

/* ---- helpers ---- */

static char *slurp_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

static struct sweep *load(const char *name, const char *text)
{
	struct sweep *sw = NULL;
	struct lif_err e = {0};
	int rc = sweep_new(tu_write(name, text), &sw, &e);
	cr_assert_eq(rc, 0, "%s", e.msg);
	return sw;
}

/* Run sw into tmp/dir with tp_kind; returns the code, fills calls and err. */
static int run_into(const struct sweep *sw, const char *dir, int threads, int si, int sn,
		    struct tctx *c, struct sweep_report *rep, struct lif_err *e)
{
	char path[4096];
	snprintf(path, sizeof path, "%s", tu_path(dir));
	struct sweep_opts o = {.dir = path, .threads = threads, .shard_index = si, .shard_count = sn};
	return sweep_run(sw, &tp_kind, c, &o, rep, e);
}

static const char *results_of(const char *dir)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/%s", tu_path(dir), SWEEP_RESULTS);
	return path;
}

static const char *config_of(const char *dir)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/%s", tu_path(dir), SWEEP_CONFIG);
	return path;
}

static const char *value_of(const struct sweep *sw, size_t point, const char *key)
{
	for (size_t j = 0; j < sweep_params(sw); j++)
		if (!strcmp(sweep_param_key(sw, j), key))
			return sweep_param_value(sw, point, j);
	return "(not swept)";
}

TestSuite(sweep, .init = tu_init);

/* ---- expansion ---- */

Test(sweep, lists_cross_in_file_order_with_the_last_key_fastest)
{
	struct sweep *sw = load("x.ini", "[experiment]\nkind = tp\n[p]\na = 1, 2\nb = x,y,z\nn = 3\n");
	cr_assert_eq(sweep_points(sw), 6);
	cr_assert_eq(sweep_params(sw), 2);
	const char *want[6][2] = {{"1", "x"}, {"1", "y"}, {"1", "z"}, {"2", "x"}, {"2", "y"}, {"2", "z"}};
	for (size_t i = 0; i < 6; i++) {
		cr_expect_str_eq(value_of(sw, i, "a"), want[i][0], "point %zu", i);
		cr_expect_str_eq(value_of(sw, i, "b"), want[i][1], "point %zu", i);
		cr_expect_null(sweep_point_label(sw, i));
	}
	struct conf_doc *d = NULL;
	struct lif_err e = {0};
	cr_assert_eq(sweep_point_doc(sw, 4, &d, &e), 0, "%s", e.msg);
	cr_assert_eq(d->n, 4);
	cr_expect_str_eq(d->entries[0].key, "kind");
	cr_expect_str_eq(d->entries[2].key, "b");
	cr_expect_str_eq(d->entries[2].value, "y");
	cr_expect_eq(d->entries[2].line, 5);
	cr_expect(strstr(d->entries[2].file, "x.ini") != NULL);
	cr_expect_str_eq(d->entries[3].value, "3");
	cr_expect_str_eq(sweep_kind_name(sw), "tp");
	conf_doc_free(d);
	sweep_free(sw);
}

Test(sweep, zip_advances_lists_together)
{
	struct sweep *sw = load("z.ini", "[sweep]\nzip = a, p.b\n[p]\na = 1,2,3\nn = 1,2\nb = x,y,z\n");
	cr_assert_eq(sweep_points(sw), 6);
	const char *want[6][3] = {{"1", "1", "x"}, {"1", "2", "x"}, {"2", "1", "y"},
				  {"2", "2", "y"}, {"3", "1", "z"}, {"3", "2", "z"}};
	for (size_t i = 0; i < 6; i++) {
		cr_expect_str_eq(value_of(sw, i, "a"), want[i][0], "point %zu", i);
		cr_expect_str_eq(value_of(sw, i, "n"), want[i][1], "point %zu", i);
		cr_expect_str_eq(value_of(sw, i, "b"), want[i][2], "point %zu", i);
	}
	cr_expect_str_eq(sweep_kind_name(sw), SWEEP_DEFAULT_KIND);
	sweep_free(sw);
}

Test(sweep, rows_override_the_base_and_cross_with_their_own_lists)
{
	struct sweep *sw = load("r.ini", "[p]\na = 1\nb = x\n"
					 "[row first]\nb = y\n"
					 "[row second]\np.a = 5, 6\nq.extra = on\n");
	cr_assert_eq(sweep_points(sw), 3);
	cr_expect_str_eq(sweep_point_label(sw, 0), "first");
	cr_expect_str_eq(sweep_point_label(sw, 2), "second");
	cr_expect_str_eq(value_of(sw, 0, "a"), "1");
	cr_expect_str_eq(value_of(sw, 0, "b"), "y");
	cr_expect_str_eq(value_of(sw, 1, "a"), "5");
	cr_expect_str_eq(value_of(sw, 2, "a"), "6");
	cr_expect_str_eq(value_of(sw, 2, "b"), "x");
	cr_expect_str_eq(value_of(sw, 0, "extra"), "");
	cr_expect_str_eq(value_of(sw, 1, "extra"), "on");
	sweep_free(sw);
}

Test(sweep, a_rows_list_orders_rows_and_names_the_plain_base)
{
	struct sweep *sw = load("rl.ini", "[sweep]\nrows = naive, tuned\n[p]\na = 1\n"
					  "[row tuned]\na = 2\n");
	cr_assert_eq(sweep_points(sw), 2);
	cr_expect_str_eq(sweep_point_label(sw, 0), "naive");
	cr_expect_str_eq(value_of(sw, 0, "a"), "1");
	cr_expect_str_eq(sweep_point_label(sw, 1), "tuned");
	cr_expect_str_eq(value_of(sw, 1, "a"), "2");
	sweep_free(sw);
}

Test(sweep, quoted_elements_keep_their_commas)
{
	struct sweep *sw = load("q.ini", "[p]\nb = \"1,2\", 3, \" \"\n");
	cr_assert_eq(sweep_points(sw), 3);
	cr_expect_str_eq(value_of(sw, 0, "b"), "1,2");
	cr_expect_str_eq(value_of(sw, 1, "b"), "3");
	cr_expect_str_eq(value_of(sw, 2, "b"), " ");
	sweep_free(sw);
}

Test(sweep, point_ids_depend_on_parameters_not_on_order_or_index)
{
	struct sweep *a = load("ida.ini", "[p]\na = 1, 2\nb = x, y\n");
	struct sweep *b = load("idb.ini", "[p]\nb = y\na = 2\n");
	cr_expect_eq(sweep_point_id(a, 3), sweep_point_id(b, 0));
	for (size_t i = 0; i < 4; i++)
		for (size_t j = i + 1; j < 4; j++)
			cr_expect_neq(sweep_point_id(a, i), sweep_point_id(a, j));
	sweep_free(a);
	sweep_free(b);
}

/* Criterion runs each parameter in a fresh process: no pointers in params. */
struct bad_case {
	char text[160];
	char want[160]; /* substring of the message */
};

static struct bad_case bad_cases[] = {
	{"[p]\na = 1,,2\n", "bad.ini:2: [p] a: empty element 2 in the list '1,,2'"},
	{"[p]\na = 1,2,\n", "bad.ini:2: [p] a: empty element 3 in the list"},
	{"[p]\na = 1, 1\n", "bad.ini:2: [p] a: '1' appears twice in the list"},
	{"[p]\nb = \"1,2\n", "bad.ini:2: [p] b: unterminated quote"},
	{"[p]\nb = \"1,2\"x, 3\n", "bad.ini:2: [p] b: text after a quoted element"},
	{"[sweep]\nzip = a, b\n[p]\na = 1,2,3\nb = x,y\n",
	 "bad.ini:2: [sweep] zip: [p] a has 3 values ("},
	{"[sweep]\nzip = a, b\n[p]\na = 1,2,3\nb = x,y\n", "bad.ini:4) but [p] b has 2 ("},
	{"[sweep]\nzip = a, c\n[p]\na = 1,2\n", "bad.ini:2: [sweep] zip: no key 'c'"},
	{"[sweep]\nzip = a\n[p]\na = 1,2\n[q]\na = 3,4\n", "bad.ini:2: [sweep] zip: ambiguous key"},
	{"[sweep]\nzip = a, b\nzip = b, c\n[p]\na = 1\nb = 2\nc = 3\n",
	 "bad.ini:3: [sweep] zip: 'b' is zipped twice"},
	{"[sweep]\norder = fast\n", "bad.ini:2: [sweep] order: unknown key"},
	{"[p]\na = 1\n[row r]\nzz = 2\n", "bad.ini:4: [row r] zz: no such key in the experiment"},
	{"[p]\na = 1\n[q]\na = 2\n[row r]\na = 3\n", "bad.ini:6: [row r] a: key is in several sections"},
	{"[row]\nx = 1\n", "bad.ini:2: [row]: a row needs a name"},
	{"[sweep]\nrows = a\n[p]\nx = 1\n[row b]\nx = 2\n", "bad.ini:2: [sweep] rows: section [row b] is not listed"},
	{"[experiment]\nkind = echo, tp\n", "bad.ini:2: [experiment] kind: cannot be swept"},
	{"[experiment]\nkind = echo\n[row r]\nkind = tp\n", "bad.ini:4: [experiment] kind: a row cannot change it"},
	{"[p]\na = ${UNSET_SWEEP_VAR}\n", "bad.ini:2: ${UNSET_SWEEP_VAR} is not defined"},
};

ParameterizedTestParameters(sweep, list_errors_name_file_line_and_key)
{
	return cr_make_param_array(struct bad_case, bad_cases, sizeof bad_cases / sizeof bad_cases[0]);
}

ParameterizedTest(struct bad_case *c, sweep, list_errors_name_file_line_and_key, .init = tu_init)
{
	struct sweep *sw = NULL;
	struct lif_err e = {0};
	cr_assert_neq(sweep_new(tu_write("bad.ini", c->text), &sw, &e), 0);
	cr_expect_null(sw);
	cr_expect(strstr(e.msg, c->want) != NULL, "message '%s' lacks '%s'", e.msg, c->want);
}

/* ---- running ---- */

Test(sweep, a_bad_value_in_a_late_point_fails_before_any_point_runs)
{
	struct sweep *sw = load("v.ini", "[p]\nb = x\na = 1, 2, 300\nn = 1, 2\n");
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_neq(run_into(sw, "v", 2, 0, 0, &c, NULL, &e), 0);
	cr_expect_eq(c.calls, 0);
	cr_expect(strstr(e.msg, "point 4 (a=300 n=1): ") != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, "v.ini:3: [p] a: '300' is outside [0, 100]") != NULL, "%s", e.msg);
	cr_expect_eq(access(tu_path("v"), F_OK), -1, "the output directory is left alone");
	sweep_free(sw);
}

Test(sweep, writes_tidy_results_and_the_resolved_config)
{
	struct sweep *sw = load("o.ini", "[p]\na = 1.5, 2\nb = xy\n");
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "o", 2, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char *res = slurp_text(results_of("o")), *cfg = slurp_text(config_of("o"));
	cr_assert_not_null(res);
	cr_expect(!strncmp(res, "point,point_id,a,value_x2,draws_sum,note,p.a,p.b,p.n\n0,", 55), "%s",
		  res);
	cr_expect(strstr(res, ",1.5,5,") != NULL, "%s", res);
	cr_expect(strstr(res, ",\"b=\"\"q\"\", ok\",2,xy,1\n") != NULL, "every setting: %s", res);
	cr_expect_eq(count_lines(res), 3);
	cr_assert_not_null(cfg);
	cr_expect(strstr(cfg, "schema = lifsim-config-resolved\n") != NULL, "%s", cfg);
	cr_expect(strstr(cfg, "\n[point 1]\npoint_id = ") != NULL, "%s", cfg);
	cr_expect(strstr(cfg, "p.a = 2\np.b = xy\np.n = 1\n") != NULL, "resolved default: %s", cfg);
	free(res), free(cfg);
	sweep_free(sw);
}

Test(sweep, resume_computes_only_the_missing_point)
{
	struct sweep *sw = load("res.ini", "[p]\na = 1, 2, 3\nb = x, yy\n");
	struct tctx c = {.fail_at = -1};
	struct sweep_report rep;
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "res", 2, 0, 0, &c, &rep, &e), 0, "%s", e.msg);
	cr_expect_eq(c.calls, 6);
	cr_expect_eq(rep.resumed, 0);
	char *full = slurp_text(results_of("res"));
	/* delete the row of point 3 (line 5 of the file) */
	char *l = full;
	for (int i = 0; i < 4; i++)
		l = strchr(l, '\n') + 1;
	char *cut = strdup(full);
	memmove(cut + (l - full), strchr(l, '\n') + 1 - full + cut, strlen(strchr(l, '\n') + 1) + 1);
	FILE *f = fopen(results_of("res"), "w");
	fputs(cut, f);
	fclose(f);
	struct tctx c2 = {.fail_at = -1};
	cr_assert_eq(run_into(sw, "res", 2, 0, 0, &c2, &rep, &e), 0, "%s", e.msg);
	cr_expect_eq(c2.calls, 1);
	cr_expect_eq(rep.kept, 5);
	cr_expect_eq(rep.computed, 1);
	cr_expect_str_eq(rep.new_list, "3");
	char *again = slurp_text(results_of("res"));
	cr_expect_str_eq(again, full);
	free(full), free(cut), free(again);
	sweep_free(sw);
}

Test(sweep, a_grown_experiment_resumes_and_names_the_new_points)
{
	struct sweep *sw = load("g.ini", "[p]\na = 1, 2\nb = x, y\n");
	struct tctx c = {.fail_at = -1};
	struct sweep_report rep;
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "g", 1, 0, 0, &c, &rep, &e), 0, "%s", e.msg);
	sweep_free(sw);
	sw = load("g.ini", "[p]\na = 1, 2, 3\nb = x, y\n");
	struct tctx c2 = {.fail_at = -1};
	cr_assert_eq(run_into(sw, "g", 2, 0, 0, &c2, &rep, &e), 0, "%s", e.msg);
	cr_expect_eq(c2.calls, 2);
	cr_expect_eq(rep.resumed, 1);
	cr_expect_eq(rep.new_points, 2);
	cr_expect_str_eq(rep.new_list, "4, 5");
	sweep_free(sw);
	/* a changed value leaves rows of no point: an error, the file untouched */
	char *before = slurp_text(results_of("g"));
	sw = load("g.ini", "[p]\na = 1, 7, 3\nb = x, y\n");
	struct tctx c3 = {.fail_at = -1};
	cr_assert_neq(run_into(sw, "g", 2, 0, 0, &c3, &rep, &e), 0);
	cr_expect(strstr(e.msg, "2 rows (lines 4, 5) are no point of") != NULL, "%s", e.msg);
	cr_expect(strstr(e.msg, "the experiment changed") != NULL, "%s", e.msg);
	cr_expect_eq(c3.calls, 0);
	char *after = slurp_text(results_of("g"));
	cr_expect_str_eq(after, before);
	free(before), free(after);
	sweep_free(sw);
}

Test(sweep, a_resume_with_changed_result_columns_keeps_the_old_file)
{
	struct sweep *sw = load("cc.ini", "[p]\na = 1, 2, 3\n");
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "cc", 1, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char *full = slurp_text(results_of("cc"));
	char *cut = strdup(full);
	*strrchr(cut, ',') = '\0';        /* drop the end of the last row ... */
	*(strrchr(cut, '\n') + 1) = '\0'; /* ... and then the whole row */
	FILE *f = fopen(results_of("cc"), "w");
	fputs(cut, f);
	fclose(f);
	struct tctx c2 = {.fail_at = -1, .col = "renamed_ms"};
	cr_assert_neq(run_into(sw, "cc", 2, 0, 0, &c2, NULL, &e), 0);
	cr_expect(strstr(e.msg, "has no column 'renamed_ms' that kind 'tp' now writes") != NULL, "%s",
		  e.msg);
	char *after = slurp_text(results_of("cc"));
	cr_expect_str_eq(after, cut);
	free(full), free(cut), free(after);
	sweep_free(sw);
}

Test(sweep, results_are_identical_for_one_and_two_threads)
{
	struct sweep *sw = load("t.ini", "[p]\na = 0, 1, 2, 3, 4, 5, 6\nb = x, y, z\nn = 1, 50\n");
	struct tctx c1 = {.fail_at = -1}, c2 = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "t1", 1, 0, 0, &c1, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(run_into(sw, "t2", 2, 0, 0, &c2, NULL, &e), 0, "%s", e.msg);
	char *a = slurp_text(results_of("t1")), *b = slurp_text(results_of("t2"));
	cr_expect_eq(count_lines(a), 43);
	cr_expect_str_eq(a, b);
	free(a), free(b);
	sweep_free(sw);
}

Test(sweep, shards_merged_equal_the_unsharded_run_byte_for_byte)
{
	struct sweep *sw = load("s.ini", "[sweep]\nrows = base, more\n[p]\na = 1, 2, 3\nb = x, y\n"
					 "[row more]\np.n = 4, 9\n");
	struct lif_err e = {0};
	struct tctx c = {.fail_at = -1};
	cr_assert_eq(run_into(sw, "all", 2, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char dirs[3][4096];
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof name, "shard%d", i);
		cr_assert_eq(run_into(sw, name, 1 + i % 2, i, 3, &c, NULL, &e), 0, "%s", e.msg);
		snprintf(dirs[i], sizeof dirs[i], "%s", tu_path(name));
	}
	const char *list[3] = {dirs[2], dirs[0], dirs[1]};
	char out[4096];
	snprintf(out, sizeof out, "%s", tu_path("merged"));
	cr_assert_eq(sweep_merge(list, 3, out, &e), 0, "%s", e.msg);
	char *a = slurp_text(results_of("all")), *m = slurp_text(results_of("merged"));
	char *ca = slurp_text(config_of("all")), *cm = slurp_text(config_of("merged"));
	cr_expect_eq(count_lines(a), 19);
	cr_expect_str_eq(m, a);
	cr_expect_str_eq(cm, ca);
	free(a), free(m), free(ca), free(cm);
	char pa[4200], pm[4200];
	snprintf(pa, sizeof pa, "%s/results.jsonl", tu_path("all"));
	snprintf(pm, sizeof pm, "%s/results.jsonl", tu_path("merged"));
	a = slurp_text(pa), m = slurp_text(pm);
	cr_expect_str_eq(m, a, "results.jsonl merged too");
	snprintf(pm, sizeof pm, "%s/provenance.json", tu_path("merged"));
	m = (free(a), free(m), slurp_text(pm));
	cr_expect(m && strstr(m, "\"merged_from\":") && strstr(m, "\"shard\":\t\"2/3\""), "%s", m);
	free(m);
	sweep_free(sw);
}

Test(sweep, merge_refuses_missing_duplicate_and_foreign_shards)
{
	struct sweep *sw = load("m.ini", "[p]\na = 1, 2, 3, 4\n");
	struct sweep *other = load("m2.ini", "[p]\na = 1, 2, 3, 5\n");
	struct lif_err e = {0};
	struct tctx c = {.fail_at = -1};
	cr_assert_eq(run_into(sw, "m0", 1, 0, 2, &c, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(run_into(sw, "m1", 1, 1, 2, &c, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(run_into(other, "x1", 1, 1, 2, &c, NULL, &e), 0, "%s", e.msg);
	char d0[4096], d1[4096], x1[4096], out[4096];
	snprintf(d0, sizeof d0, "%s", tu_path("m0"));
	snprintf(d1, sizeof d1, "%s", tu_path("m1"));
	snprintf(x1, sizeof x1, "%s", tu_path("x1"));
	snprintf(out, sizeof out, "%s", tu_path("mout"));
	const char *only[1] = {d0}, *twice[3] = {d0, d1, d0}, *foreign[2] = {d0, x1};
	cr_expect_neq(sweep_merge(only, 1, out, &e), 0);
	cr_expect(strstr(e.msg, "2 of 4 points are in no shard: 1, 3") != NULL, "%s", e.msg);
	err_clear(&e);
	cr_expect_neq(sweep_merge(twice, 3, out, &e), 0);
	cr_expect(strstr(e.msg, "point 0 is also in") != NULL, "%s", e.msg);
	err_clear(&e);
	cr_expect_neq(sweep_merge(foreign, 2, out, &e), 0);
	cr_expect(strstr(e.msg, "not shards of one experiment") != NULL, "%s", e.msg);
	cr_expect_eq(access(results_of("mout"), F_OK), -1);
	sweep_free(sw);
	sweep_free(other);
}

Test(sweep, a_failed_point_leaves_a_valid_file_of_the_points_done)
{
	struct sweep *sw = load("f.ini", "[p]\na = 1, 2, 3, 4, 5, 6\n");
	struct tctx c = {.fail_at = 3};
	struct lif_err e = {0};
	cr_assert_neq(run_into(sw, "f", 1, 0, 0, &c, NULL, &e), 0);
	cr_expect(strstr(e.msg, "point 3 (a=4): deliberate failure") != NULL, "%s", e.msg);
	char *res = slurp_text(results_of("f"));
	cr_assert_not_null(res);
	cr_expect_eq(count_lines(res), 4, "%s", res); /* header and points 0, 1, 2 */
	cr_expect(strstr(res, "\n2,") != NULL && !strstr(res, "\n3,"), "%s", res);
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", results_of("f"));
	cr_expect_eq(access(tmp, F_OK), -1);
	/* the re-run resumes after the failure */
	struct tctx c2 = {.fail_at = -1};
	cr_assert_eq(run_into(sw, "f", 1, 0, 0, &c2, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(c2.calls, 3);
	free(res);
	sweep_free(sw);
}

Test(sweep, results_are_flushed_while_running)
{
	struct sweep *sw = load("fl.ini", "[p]\na = 1, 2, 3, 4, 5\n");
	struct tctx c = {.fail_at = -1, .peek = results_of("fl"), .peek_at = 3};
	struct lif_err e = {0};
	struct sweep_opts o = {.dir = tu_path("fl"), .threads = 1, .flush_s = 1e-9};
	cr_assert_eq(sweep_run(sw, &tp_kind, &c, &o, NULL, &e), 0, "%s", e.msg);
	cr_expect_eq(c.peek_lines, 4, "when point 3 started results.csv had %d lines", c.peek_lines);
	sweep_free(sw);
}

Test(sweep, reserved_result_names_are_refused)
{
	struct sweep *sw = load("rs.ini", "[p]\na = 1, 2\n");
	struct tctx c = {.fail_at = -1, .col = "row"};
	struct lif_err e = {0};
	cr_assert_neq(run_into(sw, "rs", 1, 0, 0, &c, NULL, &e), 0);
	cr_expect(strstr(e.msg, "point 0 (a=1): result column name 'row' is reserved") != NULL, "%s",
		  e.msg);
	sweep_free(sw);
}

Test(sweep, an_unwritable_results_file_is_an_error_without_a_partial_file)
{
	struct sweep *sw = load("u.ini", "[p]\na = 1, 2\n");
	char dir[4200];
	snprintf(dir, sizeof dir, "%s", results_of("u"));
	mkdir(tu_path("u"), 0777);
	mkdir(dir, 0777); /* results.csv is a directory: the rename fails */
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_neq(run_into(sw, "u", 1, 0, 0, &c, NULL, &e), 0);
	cr_expect(strstr(e.msg, "results.csv: cannot") != NULL, "%s", e.msg);
	char tmp[4300];
	snprintf(tmp, sizeof tmp, "%s.tmp", dir);
	cr_expect_eq(access(tmp, F_OK), -1);
	sweep_free(sw);
}

Test(sweep, every_point_must_set_the_same_columns)
{
	struct sweep *sw = load("c.ini", "[p]\na = 1, 2, 3\n");
	struct tctx c = {.fail_at = -1, .uneven = 1};
	struct lif_err e = {0};
	cr_assert_neq(run_into(sw, "c", 1, 0, 0, &c, NULL, &e), 0);
	cr_expect(strstr(e.msg, "point 1 (a=2): kind 'tp' set 2 result columns where point 0 set 3") !=
			  NULL, "%s", e.msg);
	sweep_free(sw);
}

Test(sweep, a_result_named_like_a_parameter_prefixes_the_parameter)
{
	struct sweep *sw = load("n.ini", "[p]\na = 1, 2\n");
	struct tctx c = {.fail_at = -1, .col = "a"};
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "n", 1, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char *res = slurp_text(results_of("n"));
	cr_expect(!strncmp(res, "point,point_id,p.a,a,draws_sum,note,p.b,p.n\n", 44),
		  "p.a is a column once: %s", res);
	free(res);
	sweep_free(sw);
}

Test(sweep, results_carry_every_setting_so_two_sweeps_concatenate)
{
	/* one sweep varies a, the other b: each row still says both */
	struct sweep *s1 = load("c1.ini", "[p]\na = 1, 2\nb = x\n");
	struct sweep *s2 = load("c2.ini", "[p]\na = 3\nb = y, zz\n");
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_eq(run_into(s1, "c1", 1, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(run_into(s2, "c2", 1, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char *r1 = slurp_text(results_of("c1")), *r2 = slurp_text(results_of("c2"));
	cr_expect(strstr(r1, "\n1,") && strstr(strstr(r1, "\n1,"), ",2,x,1\n"), "%s", r1);
	cr_expect(strstr(r2, ",3,zz,1\n") != NULL, "%s", r2);
	cr_expect(strstr(r1, ",p.a,p.b,p.n\n") && strstr(r2, ",p.a,p.b,p.n\n"), "%s%s", r1, r2);
	free(r1), free(r2);
	sweep_free(s1), sweep_free(s2);
}

Test(sweep, results_jsonl_and_provenance_beside_the_csv)
{
	struct sweep *sw = load("j.ini", "[p]\na = 1.5, 2\nb = xy\n");
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "j", 1, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char path[4200];
	snprintf(path, sizeof path, "%s/results.jsonl", tu_path("j"));
	char *jl = slurp_text(path);
	cr_assert_not_null(jl);
	cr_expect_eq(count_lines(jl), 2);
	cr_expect(!strncmp(jl, "{\"point\":0,\"point_id\":\"", 23), "%s", jl);
	cr_expect(strstr(jl, "\"a\":1.5,\"value_x2\":5,") != NULL, "numbers are numbers: %s", jl);
	cr_expect(strstr(jl, "\"note\":\"b=\\\"q\\\", ok\",\"p.a\":1.5,\"p.b\":\"xy\",\"p.n\":1}\n") != NULL,
		  "%s", jl);
	snprintf(path, sizeof path, "%s/provenance.json", tu_path("j"));
	char *pv = slurp_text(path);
	cr_assert_not_null(pv);
	cr_expect(strstr(pv, "\"schema\":\t\"lifsim-provenance\"") != NULL, "%s", pv);
	const char *keys[] = {"lifsim_version", "lifsim_commit", "date", "host", "cpu",
			      "kdamonds_on", "experiment_sha256", "threads", "inputs"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char k[64];
		snprintf(k, sizeof k, "\"%s\":", keys[i]);
		cr_expect(strstr(pv, k) != NULL, "no %s in %s", keys[i], pv);
	}
	free(jl), free(pv);
	sweep_free(sw);
}

Test(sweep, provenance_lists_the_files_settings_name_with_their_checksums)
{
	tu_write("dev.ini", "abc");
	struct sweep *sw = load("pf.ini", "[p]\na = 1\nb = dev.ini\n");
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "pf", 1, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char path[4200];
	snprintf(path, sizeof path, "%s/provenance.json", tu_path("pf"));
	char *pv = slurp_text(path);
	cr_assert_not_null(pv);
	cr_expect(strstr(pv, "\"setting\":\t\"p.b\"") != NULL, "%s", pv);
	/* sha256("abc") */
	cr_expect(strstr(pv, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") != NULL,
		  "%s", pv);
	free(pv);
	sweep_free(sw);
}

Test(sweep, a_results_file_from_before_the_settings_columns_resumes)
{
	struct sweep *sw = load("old.ini", "[p]\na = 1, 2\n");
	struct tctx c = {.fail_at = -1};
	struct sweep_report rep;
	struct lif_err e = {0};
	cr_assert_eq(run_into(sw, "old", 1, 0, 0, &c, NULL, &e), 0, "%s", e.msg);
	char *now = slurp_text(results_of("old"));
	/* the same file as lifsim wrote it before: no settings columns, point 1 missing */
	char *l1 = strchr(now, '\n') + 1, *l2 = strchr(l1, '\n') + 1;
	char old[1024], row0[512];
	snprintf(row0, sizeof row0, "%.*s", (int)(l2 - l1), l1);
	*strrchr(row0, ',') = '\0', *strrchr(row0, ',') = '\0', *strrchr(row0, ',') = '\0';
	snprintf(old, sizeof old, "point,point_id,a,value_x2,draws_sum,note\n%s\n", row0);
	FILE *f = fopen(results_of("old"), "w");
	fputs(old, f);
	fclose(f);
	struct tctx c2 = {.fail_at = -1};
	cr_assert_eq(run_into(sw, "old", 1, 0, 0, &c2, &rep, &e), 0, "%s", e.msg);
	cr_expect_eq(c2.calls, 1);
	cr_expect_eq(rep.kept, 1);
	char *again = slurp_text(results_of("old"));
	cr_expect_str_eq(again, now, "rewritten in the new format");
	/* every point kept: the old header's results are found before the settings */
	char *l3 = strchr(l2, '\n') + 1, row1[512];
	snprintf(row1, sizeof row1, "%.*s", (int)(l3 - l2), l2);
	*strrchr(row1, ',') = '\0', *strrchr(row1, ',') = '\0', *strrchr(row1, ',') = '\0';
	f = fopen(results_of("old"), "w");
	fprintf(f, "point,point_id,a,value_x2,draws_sum,note\n%s\n%s\n", row0, row1);
	fclose(f);
	struct tctx c3 = {.fail_at = -1};
	cr_assert_eq(run_into(sw, "old", 1, 0, 0, &c3, &rep, &e), 0, "%s", e.msg);
	cr_expect_eq(c3.calls, 0);
	char *all = slurp_text(results_of("old"));
	cr_expect_str_eq(all, now);
	free(now), free(again), free(all);
	sweep_free(sw);
}

Test(sweep, result_names_with_a_dot_are_refused)
{
	struct sweep *sw = load("dot.ini", "[p]\na = 1\n");
	struct tctx c = {.fail_at = -1, .col = "x.y"};
	struct lif_err e = {0};
	cr_assert_neq(run_into(sw, "dot", 1, 0, 0, &c, NULL, &e), 0);
	cr_expect(strstr(e.msg, "'x.y' is empty or holds") != NULL, "%s", e.msg);
	sweep_free(sw);
}

Test(sweep, a_stop_request_keeps_what_is_done)
{
	struct sweep *sw = load("st.ini", "[p]\na = 1, 2\n");
	volatile sig_atomic_t stop = 1;
	struct tctx c = {.fail_at = -1};
	struct lif_err e = {0};
	struct sweep_opts o = {.dir = tu_path("st"), .threads = 2, .stop = &stop};
	cr_assert_neq(sweep_run(sw, &tp_kind, &c, &o, NULL, &e), 0);
	cr_expect(strstr(e.msg, "interrupted after 0 of 2 points") != NULL, "%s", e.msg);
	char *res = slurp_text(results_of("st"));
	cr_expect_str_eq(res, "point,point_id,a,p.a,p.b,p.n\n");
	free(res);
	sweep_free(sw);
}

Test(sweep, echo_kind_echoes_the_parameters)
{
	struct sweep *sw = load("e.ini", "[experiment]\nkind = echo\n[p]\na = 1, 2\n");
	const struct sweep_kind *k = sweep_kind_find(sweep_kinds, sweep_kind_name(sw));
	cr_assert_not_null(k);
	struct sweep_row *row = sweep_row_new(sw, 1);
	struct conf_doc *d = NULL;
	struct lif_err e = {0};
	cr_assert_eq(sweep_point_doc(sw, 1, &d, &e), 0, "%s", e.msg);
	cr_assert_eq(k->run(NULL, d, row, &e), 0, "%s", e.msg);
	cr_assert_eq(sweep_row_columns(row), 2);
	cr_expect_str_eq(sweep_row_value(row, 0), "2");
	cr_expect_str_eq(sweep_row_value(row, 1), "experiment.kind=echo p.a=2");
	cr_expect_null(sweep_row_error(row));
	cr_expect_eq(sweep_row_set_num(row, "entries", 1), ERR_INVAL);
	cr_expect_str_eq(sweep_row_error(row), "result column 'entries' is set twice");
	sweep_row_free(row);
	conf_doc_free(d);
	sweep_free(sw);
}

/* ---- the verbs ---- */

Test(sweep, verb_dry_run_lists_the_points)
{
	char out[8192];
	const char *p = tu_write("d.ini", "[experiment]\nkind = echo\n[p]\na = 1, 2\nb = u, v\n");
	int st = tu_lifsim(out, sizeof out, "sweep %s --dry-run", p);
	cr_expect_eq(st, 0, "%s", out);
	cr_expect(strstr(out, "point,point_id,a,b\n0,") != NULL, "%s", out);
	cr_expect(strstr(out, ",2,v\n") != NULL, "%s", out);
	cr_expect(strstr(out, "4 points of kind 'echo', all valid") != NULL, "%s", out);
}

Test(sweep, verb_runs_resumes_shards_and_merges)
{
	char out[8192];
	const char *p = tu_write("vm.ini", "[experiment]\nkind = echo\n[p]\na = 1, 2, 3\n");
	char exp[4096], d[4096];
	snprintf(exp, sizeof exp, "%s", p);
	snprintf(d, sizeof d, "%s", tu_tmpdir());
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s/all", exp, d), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s/all", exp, d), 0, "%s", out);
	cr_expect(strstr(out, "resuming: 3 points kept") != NULL, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "--threads 2 sweep %s -o %s/s0 --shard 0/2", exp, d), 0,
		     "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s/s1 --shard 1/2", exp, d), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "merge %s/s0 %s/s1 -o %s/m", d, d, d), 0, "%s", out);
	char *a = slurp_text(results_of("all")), *m = slurp_text(results_of("m"));
	cr_expect_str_eq(m, a);
	free(a), free(m);
}

/* Issue 14's bug: [reference] keys in only some rows stopped the run at the
 * first row without them ("set 27 result columns where point 0 set 25")
 * though --dry-run passed. Now every row has the union's columns, empty
 * where a row has no reference. */
Test(sweep, reference_keys_in_some_rows_leave_empty_cells_elsewhere)
{
	char out[8192], text[2048];
	snprintf(text, sizeof text,
		 "[experiment]\nkind = simulate\nmodel = %s\ndevice = %s\ntrace = synth\n"
		 "[synth]\ntokens = 20\n[sim]\nwindow = 2\n[sweep]\nrows = a, b, c\n"
		 "[row a]\nreference.io_ms = 100\n[row b]\nwindow = 1\n"
		 "[row c]\nreference.total_ms = 50\nreference.io_ms = 200\n",
		 tu_src("models/llms/tinylm.ini"), tu_src("models/devices/m1max.ini"));
	const char *p = tu_write("mixref.ini", text);
	char exp[4096], d[4096];
	snprintf(exp, sizeof exp, "%s", p);
	snprintf(d, sizeof d, "%s/mixref", tu_tmpdir());
	int st = tu_lifsim(out, sizeof out, "sweep %s --dry-run", exp);
	cr_expect_eq(st, 0, "%s", out);
	st = tu_lifsim(out, sizeof out, "sweep %s -o %s", exp, d);
	cr_assert_eq(st, 0, "the run must agree with the dry run: %s", out);
	char path[4200];
	snprintf(path, sizeof path, "%s/results.csv", d);
	char *csv = slurp_text(path);
	cr_assert(csv);
	char *head = strtok(csv, "\n");
	cr_assert(head);
	const char *want[] = {"ref_io_ms", "io_ms_vs_ref", "ref_total_ms", "total_ms_vs_ref"};
	int col[4];
	for (int k = 0; k < 4; k++) {
		char *h = strstr(head, want[k]);
		cr_assert(h, "no column %s in %s", want[k], head);
		col[k] = 0;
		for (char *q = head; q < h; q++)
			col[k] += *q == ',';
	}
	cr_expect(col[0] < col[2], "columns in order of first appearance: %s", head);
	const char *expect[3][4] = {{"100", "*", "", ""}, {"", "", "", ""}, {"200", "*", "50", "*"}};
	for (int r = 0; r < 3; r++) {
		char *line = strtok(NULL, "\n");
		cr_assert(line, "row %d missing", r);
		char *cells[128];
		int n = 0;
		for (char *q = line; n < 128;) {
			cells[n++] = q;
			char *c = strchr(q, ',');
			if (!c)
				break;
			*c = 0;
			q = c + 1;
		}
		for (int k = 0; k < 4; k++) {
			cr_assert(col[k] < n);
			if (!strcmp(expect[r][k], "*"))
				cr_expect(cells[col[k]][0], "row %d %s is empty", r, want[k]);
			else
				cr_expect_str_eq(cells[col[k]], expect[r][k], "row %d %s", r, want[k]);
		}
	}
	free(csv);
}

struct verb_case {
	char args[96];
	char want[128];
};

static struct verb_case verb_cases[] = {
	{"sweep @EXP", "lifsim sweep: missing -o DIR (or --dry-run)"},
	{"sweep @EXP -o @D --shard 2/2", "lifsim sweep: --shard: '2/2' is not I/N with 0 <= I < N"},
	{"sweep @EXP --bogus", "lifsim sweep: unknown option '--bogus'"},
	{"sweep @KIND -o @D", "[experiment] kind 'nosuch' is unknown (kinds: simulate echo"},
	{"sweep @NOFILE -o @D", "lifsim sweep: /nonexistent/x.ini: cannot open"},
	{"merge @D", "lifsim merge: missing -o DIR"},
	{"merge @D -o @D2", "config.resolved.ini: cannot open"},
};

ParameterizedTestParameters(sweep, verb_errors_are_clear)
{
	return cr_make_param_array(struct verb_case, verb_cases, sizeof verb_cases / sizeof verb_cases[0]);
}

ParameterizedTest(struct verb_case *c, sweep, verb_errors_are_clear, .init = tu_init)
{
	char exp[4096], kind[4096], d[4096], args[8192], out[8192];
	snprintf(exp, sizeof exp, "%s", tu_write("ok.ini", "[experiment]\nkind = echo\n"));
	snprintf(kind, sizeof kind, "%s", tu_write("k.ini", "[experiment]\nkind = nosuch\n"));
	snprintf(d, sizeof d, "%s", tu_path("dir"));
	const char *from[] = {"@EXP", "@KIND", "@NOFILE", "@D2", "@D"};
	const char *to[] = {exp, kind, "/nonexistent/x.ini", "/nonexistent/out", d};
	snprintf(args, sizeof args, "%s", c->args);
	for (size_t i = 0; i < 5; i++) {
		char *at;
		while ((at = strstr(args, from[i])) != NULL) {
			char rest[4096];
			snprintf(rest, sizeof rest, "%s", at + strlen(from[i]));
			snprintf(at, sizeof args - (size_t)(at - args), "%s%s", to[i], rest);
		}
	}
	cr_expect_neq(tu_lifsim(out, sizeof out, "%s", args), 0);
	cr_expect(strstr(out, c->want) != NULL, "'%s' printed '%s', lacks '%s'", args, out, c->want);
}

Test(sweep, the_shipped_example_expands_as_documented)
{
	struct sweep *sw = NULL;
	struct lif_err e = {0};
	cr_assert_eq(sweep_new(tu_src("experiments/example-echo.ini"), &sw, &e), 0, "%s", e.msg);
	cr_assert_eq(sweep_points(sw), 12);
	cr_expect_str_eq(sweep_kind_name(sw), "echo");
	cr_expect_str_eq(sweep_point_label(sw, 0), "naive");
	cr_expect_str_eq(sweep_point_label(sw, 5), "predictor");
	cr_expect_str_eq(value_of(sw, 5, "recall"), "0.95");
	cr_expect_str_eq(value_of(sw, 5, "fp_rate"), "0.07");
	cr_expect_str_eq(value_of(sw, 11, "seed"), "2");
	cr_expect_str_eq(value_of(sw, 11, "window"), "5");
	cr_expect_str_eq(value_of(sw, 1, "mode"), "");
	struct sweep_opts o = {.dir = tu_path("ex"), .threads = 2};
	cr_assert_eq(sweep_run(sw, &sweep_kind_echo, NULL, &o, NULL, &e), 0, "%s", e.msg);
	char *res = slurp_text(results_of("ex"));
	cr_expect_eq(count_lines(res), 13);
	cr_expect(strstr(res, "trace.model=opt-6.7b") != NULL, "${MODEL} expanded: %s", res);
	free(res);
	sweep_free(sw);
}
