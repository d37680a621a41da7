/* test_plots: every plots/NAME.gp renders (PNG and PDF, through plots/render.sh)
 * from the small fixture results in tests/data/plots/, both without the
 * optional inputs of other verbs (placeholders) and with them; and
 * paper/tables.py turns the fixtures into the report's tables. Skipped with
 * a message when gnuplot is not installed. */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

TestSuite(plots, .init = tu_init);

static int have_tool(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Run a shell command, capturing stdout+stderr; returns the exit status. */
static int run(char *out, size_t cap, const char *cmd)
{
	char full[8192];
	snprintf(full, sizeof full, "(%s) 2>&1", cmd);
	FILE *p = popen(full, "r");
	cr_assert(p, "popen failed");
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

static int starts_with_bytes(const char *path, const char *magic, size_t n)
{
	char buf[16] = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t got = fread(buf, 1, n, f);
	fclose(f);
	return got == n && !memcmp(buf, magic, n);
}

/* Render every plots/NAME.gp against results dir R into out; check each
 * figure; count the scripts that drew a placeholder. */
static int render_all(const char *results_arg, const char *out_arg)
{
	char results[4096], out[4096]; /* tu_src's buffers rotate: keep copies */
	snprintf(results, sizeof results, "%s", results_arg);
	snprintf(out, sizeof out, "%s", out_arg);
	glob_t g;
	char pattern[4096];
	snprintf(pattern, sizeof pattern, "%s/*.gp", tu_src("plots"));
	cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no plots/*.gp under %s", tu_src("plots"));
	int placeholders = 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char cmd[16384], log[16384], name[256], png[8192], pdf[8192];
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		snprintf(name, sizeof name, "%.*s", (int)(strlen(base) - 3), base);
		snprintf(cmd, sizeof cmd, "bash '%s' '%s' '%s' '%s'", tu_src("plots/render.sh"),
			 g.gl_pathv[i], results, out);
		int rc = run(log, sizeof log, cmd);
		cr_expect_eq(rc, 0, "%s failed:\n%s", base, log);
		/* gnuplot warnings (an empty data file, a bad range) are failures too */
		cr_expect(!strstr(log, "warning"), "%s warned:\n%s", base, log);
		snprintf(png, sizeof png, "%s/%s.png", out, name);
		snprintf(pdf, sizeof pdf, "%s/%s.pdf", out, name);
		cr_expect(starts_with_bytes(png, "\x89PNG", 4), "%s is not a PNG", png);
		cr_expect(starts_with_bytes(pdf, "%PDF", 4), "%s is not a PDF", pdf);
		cr_expect_gt(file_size(png), 10000, "%s is suspiciously small", png);
		placeholders += strstr(log, "placeholder:") != NULL;
	}
	globfree(&g);
	return placeholders;
}

Test(plots, every_script_renders_from_the_fixtures_with_placeholders_for_missing_inputs)
{
	if (!have_tool("gnuplot")) {
		cr_log_warn("gnuplot is not installed (Debian: gnuplot-nox): plots tests skipped");
		cr_skip_test("gnuplot is not installed");
	}
	char out[4096];
	snprintf(out, sizeof out, "%s/figs", tu_tmpdir());
	/* a, g and h need inputs from verbs not in this tree's fixtures */
	cr_expect_eq(render_all(tu_src("tests/data/plots/results"), out), 3);
}

Test(plots, every_script_draws_data_when_the_optional_inputs_exist)
{
	if (!have_tool("gnuplot"))
		cr_skip_test("gnuplot is not installed");
	char cmd[16384], log[4096], res[4096], out[4096];
	snprintf(res, sizeof res, "%s/all", tu_tmpdir());
	snprintf(out, sizeof out, "%s/figs", tu_tmpdir());
	snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -r '%s'/. '%s'/. '%s'", res,
		 tu_src("tests/data/plots/results"), tu_src("tests/data/plots/optional"), res);
	cr_assert_eq(run(log, sizeof log, cmd), 0, "%s", log);
	cr_expect_eq(render_all(res, out), 0);
}

Test(plots, render_refuses_a_missing_results_directory_and_writes_nothing)
{
	if (!have_tool("gnuplot"))
		cr_skip_test("gnuplot is not installed");
	char cmd[8192], log[4096];
	snprintf(cmd, sizeof cmd, "bash '%s' '%s' '%s/nope' '%s/figs'", tu_src("plots/render.sh"),
		 tu_src("plots/fig_c_breakdown.gp"), tu_tmpdir(), tu_tmpdir());
	cr_expect_neq(run(log, sizeof log, cmd), 0);
	cr_expect(strstr(log, "nope: no such results directory"), "%s", log);
	cr_expect_eq(file_size(tu_path("figs/fig_c_breakdown.png")), -1);
}

Test(plots, a_broken_script_fails_and_leaves_no_figure)
{
	if (!have_tool("gnuplot"))
		cr_skip_test("gnuplot is not installed");
	char cmd[8192], log[4096];
	tu_write("common.gpi", "set terminal pngcairo\nset output OUT\n");
	char gp[4096];
	snprintf(gp, sizeof gp, "%s", tu_write("broken.gp", "plot R.'/missing.csv' using 1:2 with lines\n"));
	snprintf(cmd, sizeof cmd, "bash '%s' '%s' '%s' '%s/figs'", tu_src("plots/render.sh"), gp,
		 tu_tmpdir(), tu_tmpdir());
	cr_expect_neq(run(log, sizeof log, cmd), 0);
	cr_expect(strstr(log, "broken.gp: gnuplot failed"), "%s", log);
	cr_expect_eq(file_size(tu_path("figs/broken.png")), -1);
	cr_expect_eq(file_size(tu_path("figs/broken.png.tmp")), -1);
}

Test(plots, tables_are_generated_from_the_results)
{
	if (!have_tool("python3"))
		cr_skip_test("python3 is not installed");
	char cmd[8192], log[4096];
	snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s/gen' && cat '%s/gen/table2.tex' '%s/gen/status.tex'",
		 tu_src("paper/tables.py"), tu_src("tests/data/plots/results"), tu_tmpdir(), tu_tmpdir(),
		 tu_tmpdir());
	cr_assert_eq(run(log, sizeof log, cmd), 0, "%s", log);
	/* the paper's 2196 ms beside lifsim's naive I/O from the fixture */
	cr_expect(strstr(log, "naive & 2196 & 2186.9 & -0.4\\% &"), "%s", log);
	cr_expect(strstr(log, "\\newcommand{\\HaveValidation}{0}"), "%s", log);
}

Test(plots, tables_name_the_file_when_a_column_is_missing)
{
	if (!have_tool("python3"))
		cr_skip_test("python3 is not installed");
	char cmd[8192], log[4096];
	snprintf(cmd, sizeof cmd, "mkdir -p '%s/r/paper-table2'", tu_tmpdir());
	cr_assert_eq(run(log, sizeof log, cmd), 0, "%s", log);
	tu_write("r/paper-table2/results.csv", "point,row\n0,naive\n");
	snprintf(cmd, sizeof cmd, "python3 '%s' '%s/r' '%s/gen'", tu_src("paper/tables.py"), tu_tmpdir(),
		 tu_tmpdir());
	cr_expect_neq(run(log, sizeof log, cmd), 0);
	cr_expect(strstr(log, "paper-table2/results.csv: column io_ms missing or not a number"), "%s", log);
}
