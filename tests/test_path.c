/* The search path (sim/base/path.h): order, short names by kind, LIFSIM_PATH
 * with several directories, errors that list the places tried, and the same
 * resolver behind experiment keys and command-line arguments. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim/base/path.h"
#include "tests/testutil.h"

TestSuite(path, .init = tu_init);

/* Create the file tmp/rel (and its directories) with text. */
static const char *put(const char *rel, const char *text)
{
	char dir[4096];
	const char *p = tu_path(rel);
	snprintf(dir, sizeof dir, "%s", p);
	for (char *s = dir + strlen(tu_tmpdir()) + 1; (s = strchr(s, '/')); s++) {
		*s = 0;
		mkdir(dir, 0755);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	cr_assert(f, "cannot write %s", p);
	fputs(text, f);
	fclose(f);
	return p;
}

static struct path_dirs dirs; /* 128 KiB: not on the stack */

Test(path, the_first_directory_wins_over_lifsim_path_and_data)
{
	char out[PATH_CAP], lp[8300];
	struct lif_err e = {0};
	put("first/x.ini", "");
	put("second/x.ini", "");
	snprintf(lp, sizeof lp, "%s", tu_path("second"));
	path_dirs_make(&dirs, tu_path("first"), lp);
	cr_assert_eq(path_find_in("x.ini", PATH_FILE, &dirs, out, sizeof out, &e), 0, "%s", e.msg);
	cr_expect_str_eq(out, tu_path("first/x.ini"));
}

Test(path, lifsim_path_directories_are_searched_in_order)
{
	char out[PATH_CAP], lp[8300];
	struct lif_err e = {0};
	put("b/models/llms/m.ini", "");
	put("c/llms/m.ini", "");
	put("c/llms/only-c.ini", "");
	/* a missing directory and empty entries are skipped */
	snprintf(lp, sizeof lp, "%s::%s:%s:", tu_path("missing"), tu_path("b"), tu_path("c"));
	path_dirs_make(&dirs, tu_path("empty-first"), lp);
	cr_assert_eq(path_find_in("m", PATH_MODEL, &dirs, out, sizeof out, &e), 0, "%s", e.msg);
	cr_expect_str_eq(out, tu_path("b/models/llms/m.ini"));
	cr_assert_eq(path_find_in("only-c", PATH_MODEL, &dirs, out, sizeof out, &e), 0, "%s", e.msg);
	cr_expect_str_eq(out, tu_path("c/llms/only-c.ini"));
	cr_assert_eq(path_find_in("only-c.ini", PATH_MODEL, &dirs, out, sizeof out, &e), 0, "%s",
		     e.msg);
	cr_expect_str_eq(out, tu_path("c/llms/only-c.ini"));
}

Test(path, short_names_resolve_by_kind)
{
	char out[PATH_CAP], lp[8300];
	struct lif_err e = {0};
	put("k/models/devices/dev.ini", "");
	put("k/experiments/exp.ini", "");
	snprintf(lp, sizeof lp, "%s", tu_path("k"));
	path_dirs_make(&dirs, tu_path("k"), lp);
	cr_assert_eq(path_find_in("dev", PATH_DEVICE, &dirs, out, sizeof out, &e), 0, "%s", e.msg);
	cr_expect_str_eq(out, tu_path("k/models/devices/dev.ini"));
	cr_assert_eq(path_find_in("exp", PATH_EXPERIMENT, &dirs, out, sizeof out, &e), 0, "%s",
		     e.msg);
	cr_expect_str_eq(out, tu_path("k/experiments/exp.ini"));
	/* a device is not a model, and a plain file has no short names */
	cr_expect_neq(path_find_in("dev", PATH_MODEL, &dirs, out, sizeof out, &e), 0);
	err_clear(&e);
	cr_expect_neq(path_find_in("dev", PATH_FILE, &dirs, out, sizeof out, &e), 0);
	err_clear(&e);
	/* a name with a slash is a path, never a short name */
	cr_expect_neq(path_find_in("x/dev", PATH_DEVICE, &dirs, out, sizeof out, &e), 0);
}

Test(path, a_missing_file_lists_every_place_tried)
{
	char out[PATH_CAP] = "untouched", lp[8300];
	struct lif_err e = {0};
	snprintf(lp, sizeof lp, "%s:%s", tu_path("p1"), tu_path("p2"));
	path_dirs_make(&dirs, tu_path("first"), lp);
	cr_assert_eq(path_find_in("nosuch", PATH_MODEL, &dirs, out, sizeof out, &e), ERR_IO);
	cr_expect_str_eq(out, "untouched");
	cr_expect(strstr(e.msg, "no model description 'nosuch'"), "%s", e.msg);
	cr_expect(strstr(e.msg, tu_path("first")), "%s", e.msg);
	cr_expect(strstr(e.msg, tu_path("p1")), "%s", e.msg);
	cr_expect(strstr(e.msg, tu_path("p2")), "%s", e.msg);
	cr_expect(strstr(e.msg, "DIR/models/llms/nosuch.ini"), "%s", e.msg);
	cr_expect(strstr(e.msg, "LIFSIM_PATH"), "%s", e.msg);
	/* the data directory is listed last */
	cr_expect_gt(dirs.n, 3);
	cr_expect(strstr(e.msg, dirs.dir[dirs.n - 1]), "%s", e.msg);
}

Test(path, a_directory_listed_twice_is_searched_once)
{
	char lp[8300];
	put("d/x", "");
	snprintf(lp, sizeof lp, "%s:%s/:%s", tu_path("d"), tu_path("d"), tu_path("d"));
	path_dirs_make(&dirs, NULL, lp);
	size_t n = 0;
	for (size_t i = 0; i < dirs.n; i++)
		n += !strcmp(dirs.dir[i], tu_path("d"));
	cr_expect_eq(n, 1);
	cr_expect_str_eq(dirs.dir[0], "", "the current directory comes first");
}

Test(path, the_build_tree_binary_finds_the_shipped_files_by_short_name)
{
	char out[PATH_CAP];
	struct lif_err e = {0};
	path_dirs_make(&dirs, tu_path("nothing-here"), NULL);
	cr_assert_eq(path_find_in("opt-6.7b", PATH_MODEL, &dirs, out, sizeof out, &e), 0, "%s",
		     e.msg);
	cr_expect(strstr(out, "models/llms/opt-6.7b.ini"), "%s", out);
	cr_assert_eq(path_find_in("m1max", PATH_DEVICE, &dirs, out, sizeof out, &e), 0, "%s", e.msg);
	cr_expect(strstr(out, "models/devices/m1max.ini"), "%s", out);
	cr_assert_eq(path_find_in("paper-table2", PATH_EXPERIMENT, &dirs, out, sizeof out, &e), 0,
		     "%s", e.msg);
	cr_expect(strstr(out, "experiments/paper-table2.ini"), "%s", out);
}

Test(path, an_absolute_name_goes_to_its_loader_as_is)
{
	char out[PATH_CAP];
	struct lif_err e = {0};
	path_dirs_make(&dirs, NULL, NULL);
	cr_assert_eq(path_find_in("/nonexistent.ini", PATH_MODEL, &dirs, out, sizeof out, &e), 0);
	cr_expect_str_eq(out, "/nonexistent.ini");
}

/* The command: a short name from another directory, LIFSIM_PATH, errors. */
Test(path, verbs_find_short_names_and_lifsim_path)
{
	char out[8192];
	put("mine/devices/mydev.ini", "");
	int st = tu_lifsim(out, sizeof out, "device m1max --chunks 16KiB --parallelism 32");
	cr_expect_eq(st, 0, "%s", out);
	cr_expect(strstr(out, "16384"), "%s", out);
	st = tu_lifsim(out, sizeof out, "synth opt-6.8b -o %s", tu_path("t.h5"));
	cr_expect_eq(st, 1, "%s", out);
	cr_expect(strstr(out, "lifsim synth: no model description 'opt-6.8b' in: ."), "%s", out);
	/* LIFSIM_PATH is searched: the empty profile is found, and then rejected by its loader */
	st = tu_lifsim(out, sizeof out, "device mydev 2>&1; LIFSIM_PATH=%s %s device mydev",
		       tu_path("mine"), tu_bin());
	cr_expect(strstr(out, "no device profile 'mydev'"), "%s", out);
	cr_expect(strstr(out, tu_path("mine/devices/mydev.ini")), "%s", out);
}

Test(path, experiment_keys_take_short_names_and_errors_name_the_key)
{
	char out[8192];
	const char *exp = put("exp/short.ini", "[experiment]\nmodel = opt-6.7b\ndevice = m1max\n"
					      "trace = synth\n[synth]\ntokens = 40\n[sim]\n"
					      "window = 0, 2\n");
	int st = tu_lifsim(out, sizeof out, "sweep %s --dry-run", exp);
	cr_expect_eq(st, 0, "%s", out);
	const char *bad = put("exp/bad.ini", "[experiment]\nmodel = opt-6.7b\ndevice = m2max\n"
					     "trace = synth\n");
	st = tu_lifsim(out, sizeof out, "sweep %s --dry-run", bad);
	cr_expect_neq(st, 0, "%s", out);
	cr_expect(strstr(out, "bad.ini:3: [experiment] device: no device profile 'm2max' in: "),
		  "%s", out);
	cr_expect(strstr(out, tu_path("exp")), "the experiment's directory is searched: %s", out);
}
