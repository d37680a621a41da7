/* The base layer's small helpers: util (comparator, clock, file reader) and
 * csv (the one CSV reader and field writer). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base/csv.h"
#include "sim/base/util.h"
#include "tests/testutil.h"

TestSuite(util, .init = tu_init);
TestSuite(csv, .init = tu_init);

Test(util, cmp_double_sorts_ascending_with_ties_and_negatives)
{
	double v[] = {3, -1, 2.5, 3, -7, 0};
	qsort(v, 6, sizeof *v, util_cmp_double);
	double want[] = {-7, -1, 0, 2.5, 3, 3};
	for (int i = 0; i < 6; i++)
		cr_expect_eq(v[i], want[i], "v[%d] = %g", i, v[i]);
	double a = 1, b = 1;
	cr_expect_eq(util_cmp_double(&a, &b), 0);
}

Test(util, clock_never_runs_backwards)
{
	double t0 = util_now_ns(), t1 = util_now_ns();
	cr_expect_gt(t0, 0);
	cr_expect_geq(t1, t0);
}

Test(util, read_file_returns_whole_text_and_length)
{
	size_t n = 200000, len = 0;
	char *big = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\0';
	const char *p = tu_write("big.txt", big);
	struct lif_err e = {0};
	char *got = util_read_file(p, 0, &len, &e);
	cr_assert_not_null(got, "%s", e.msg);
	cr_expect_eq(len, n);
	cr_expect_str_eq(got, big);
	free(got), free(big);
}

Test(util, read_file_of_an_empty_file_is_an_empty_string)
{
	struct lif_err e = {0};
	size_t len = 7;
	char *got = util_read_file(tu_write("empty.txt", ""), 0, &len, &e);
	cr_assert_not_null(got, "%s", e.msg);
	cr_expect_eq(len, 0);
	cr_expect_str_eq(got, "");
	free(got);
}

Test(util, read_file_names_a_missing_file)
{
	struct lif_err e = {0};
	cr_expect_null(util_read_file(tu_path("nope.txt"), 0, NULL, &e));
	cr_expect_eq(e.code, ERR_IO);
	cr_expect(strstr(e.msg, "nope.txt: cannot open"), "%s", e.msg);
}

Test(util, read_file_refuses_a_file_over_the_cap)
{
	struct lif_err e = {0};
	cr_expect_null(util_read_file(tu_write("cap.txt", "0123456789"), 9, NULL, &e));
	cr_expect_eq(e.code, ERR_RANGE);
	cr_expect(strstr(e.msg, "cap.txt: larger than 9 bytes"), "%s", e.msg);
	char *ok = util_read_file(tu_path("cap.txt"), 10, NULL, &e);
	cr_expect_str_eq(ok, "0123456789");
	free(ok);
}

/* ---- csv ---- */

static int read_text(const char *text, struct csv *c, struct lif_err *e)
{
	return csv_read(tu_write("t.csv", text), c, e);
}

Test(csv, reads_header_and_rows_with_line_numbers)
{
	struct csv c;
	struct lif_err e = {0};
	cr_assert_eq(read_text("a,b,c\n1,2,3\r\n4,,6", &c, &e), 0, "%s", e.msg);
	cr_assert_eq(c.n, 3);
	cr_expect_str_eq(c.recs[0].f[2], "c");
	cr_expect_str_eq(c.recs[1].f[0], "1");
	cr_expect_str_eq(c.recs[2].f[1], "");
	cr_expect_str_eq(c.recs[2].f[2], "6");
	cr_expect_eq(c.recs[2].line, 3);
	cr_expect_eq(csv_col(&c, "b"), 1);
	cr_expect_eq(csv_col(&c, "z"), -1);
	csv_free(&c);
	csv_free(&c); /* twice is harmless */
}

Test(csv, unquotes_commas_quotes_and_line_breaks)
{
	struct csv c;
	struct lif_err e = {0};
	cr_assert_eq(read_text("k,v\n\"a,b\",\"say \"\"hi\"\"\"\n\"two\nlines\",x\nlast,1\n", &c, &e),
		     0, "%s", e.msg);
	cr_assert_eq(c.n, 4);
	cr_expect_str_eq(c.recs[1].f[0], "a,b");
	cr_expect_str_eq(c.recs[1].f[1], "say \"hi\"");
	cr_expect_str_eq(c.recs[2].f[0], "two\nlines");
	cr_expect_eq(c.recs[3].line, 5, "a record after a two-line field starts on line 5");
	csv_free(&c);
}

Test(csv, reads_lines_far_longer_than_64_KiB)
{
	size_t n = 300000;
	char *text = malloc(2 * n + 16);
	strcpy(text, "x,y\n");
	char *p = text + 4;
	memset(p, 'q', n), p += n;
	*p++ = ',';
	memset(p, 'r', n), p += n;
	strcpy(p, "\n");
	struct csv c;
	struct lif_err e = {0};
	cr_assert_eq(read_text(text, &c, &e), 0, "%s", e.msg);
	cr_assert_eq(c.n, 2);
	cr_expect_eq(strlen(c.recs[1].f[0]), n);
	cr_expect_eq(strlen(c.recs[1].f[1]), n);
	csv_free(&c);
	free(text);
}

Test(csv, written_fields_read_back_unchanged)
{
	const char *vals[] = {"plain", "a,b", "q\"uote", "two\nlines", " edge ", ""};
	FILE *f = fopen(tu_path("w.csv"), "w");
	for (int i = 0; i < 6; i++)
		csv_write_field(f, vals[i], i == 0);
	fputc('\n', f);
	fclose(f);
	struct csv c;
	struct lif_err e = {0};
	cr_assert_eq(csv_read(tu_path("w.csv"), &c, &e), 0, "%s", e.msg);
	cr_assert_eq(c.recs[0].n, 6);
	for (int i = 0; i < 6; i++)
		cr_expect_str_eq(c.recs[0].f[i], vals[i]);
	csv_free(&c);
}

struct bad_csv {
	const char *text; /* NULL: a missing file */
	int code;
	const char *msg;
};

static const struct bad_csv bad_cases[] = {
	{NULL, ERR_IO, "missing.csv: cannot open"},
	{"", ERR_FORMAT, "bad.csv: empty (no header line)"},
	{"a,b\n1,2\n3\n", ERR_FORMAT, "bad.csv:3: 1 fields where the header has 2"},
	{"a,b\n1,2,3\n", ERR_FORMAT, "bad.csv:2: 3 fields where the header has 2"},
	{"a,b\n\"open,2\n", ERR_FORMAT, "bad.csv:2: malformed CSV record"},
	{"a,b\n\"x\"y,2\n", ERR_FORMAT, "bad.csv:2: malformed CSV record"},
};

Test(csv, rejects_bad_files_naming_file_and_line)
{
	for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
		const struct bad_csv *b = &bad_cases[i];
		struct csv c = {0};
		struct lif_err e = {0};
		const char *p = b->text ? tu_write("bad.csv", b->text) : tu_path("missing.csv");
		cr_expect_eq(csv_read(p, &c, &e), b->code, "case %zu: %s", i, e.msg);
		cr_expect(strstr(e.msg, b->msg), "case %zu: got '%s', want '%s'", i, e.msg, b->msg);
		cr_expect_eq(c.n, 0);
		cr_expect_null(c.recs);
	}
}

Test(csv, rejects_a_nul_byte)
{
	FILE *f = fopen(tu_path("nul.csv"), "wb");
	fwrite("a,b\n1,\0\n", 1, 8, f);
	fclose(f);
	struct csv c;
	struct lif_err e = {0};
	cr_expect_eq(csv_read(tu_path("nul.csv"), &c, &e), ERR_FORMAT);
	cr_expect(strstr(e.msg, "nul.csv:2: holds a NUL byte"), "%s", e.msg);
}
