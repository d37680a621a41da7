#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base/progress.h"
#include "tests/testutil.h"

struct pcase {
	long long done, total;
	double elapsed_s;
	char want[96];
};

static struct pcase pcases[] = {
	{0, 100, 0, "sweep: 0/100 (0%)"},
	{0, 100, 5, "sweep: 0/100 (0%)"},
	{25, 100, 10, "sweep: 25/100 (25%)  2.5/s  ETA 30s"},
	{1, 400, 2, "sweep: 1/400 (0%)  0.50/s  ETA 13:18"},
	{500, 1000, 1, "sweep: 500/1000 (50%)  500/s  ETA 1s"},
	{10, 40000, 10, "sweep: 10/40000 (0%)  1.0/s  ETA 11:06:30"},
	{100, 100, 61, "sweep: 100/100 (100%)  1.6/s  in 1:01"},
};

ParameterizedTestParameters(progress, lines_show_count_percent_rate_and_eta)
{
	return cr_make_param_array(struct pcase, pcases, sizeof pcases / sizeof pcases[0]);
}

ParameterizedTest(struct pcase *c, progress, lines_show_count_percent_rate_and_eta)
{
	char buf[256];
	progress_format(buf, sizeof buf, "sweep", c->done, c->total, c->elapsed_s);
	cr_expect_str_eq(buf, c->want);
}

Test(progress, durations_read_as_seconds_minutes_or_hours)
{
	char b[32];
	progress_format_duration(b, sizeof b, 0.4);
	cr_expect_str_eq(b, "0s");
	progress_format_duration(b, sizeof b, 59.4);
	cr_expect_str_eq(b, "59s");
	progress_format_duration(b, sizeof b, 60);
	cr_expect_str_eq(b, "1:00");
	progress_format_duration(b, sizeof b, 3600);
	cr_expect_str_eq(b, "1:00:00");
	progress_format_duration(b, sizeof b, -1);
	cr_expect_str_eq(b, "?");
	progress_format_duration(b, sizeof b, INFINITY);
	cr_expect_str_eq(b, "?");
}

/* ---- every long verb draws it on a terminal, and only there ---- */

/* The files a verb's run needs, made in this test's directory (without a
 * terminal: their own progress is not under test). Returns the arguments. */
static const char *progress_setup(const char *verb)
{
	static char args[8192];
	char out[8192], ini[4096];
	const char *tiny = tu_src("tests/data/tiny.ini"), *m1 = tu_src("models/devices/m1max.ini");
	char trace[1024], lsw[1024];
	snprintf(trace, sizeof trace, "%s", tu_path("t.h5"));
	snprintf(lsw, sizeof lsw, "%s", tu_path("t.lsw"));
	if (strcmp(verb, "synth") && strcmp(verb, "calibrate") && strcmp(verb, "record") &&
	    strcmp(verb, "predictor train"))
		cr_assert_eq(tu_lifsim(out, sizeof out, "-q synth %s --tokens 40 --seed 2 -o %s", tiny, trace), 0,
			     "%s", out);
	if (!strcmp(verb, "synth")) {
		snprintf(args, sizeof args, "synth %s --tokens 40 --seed 2 -o %s", tiny, trace);
	} else if (!strcmp(verb, "stats")) {
		snprintf(args, sizeof args, "stats %s -o %s", trace, tu_path("s.csv"));
	} else if (!strcmp(verb, "sweep")) {
		snprintf(ini, sizeof ini, "[experiment]\nmodel = %s\ndevice = %s\ntrace = %s\n"
			 "[sim]\nwindow = 0, 1, 2, 3\n", tiny, m1, trace);
		snprintf(args, sizeof args, "sweep %s -o %s", tu_write("x.ini", ini), tu_path("res"));
	} else if (!strcmp(verb, "layout")) {
		snprintf(args, sizeof args, "layout %s --layout hot --trace %s --train-tokens 20 -o %s", tiny,
			 trace, lsw);
	} else if (!strcmp(verb, "validate")) {
		cr_assert_eq(tu_lifsim(out, sizeof out, "-q layout %s --layout hot --trace %s --train-tokens 20 -o %s",
				       tiny, trace, lsw), 0, "%s", out);
		snprintf(ini, sizeof ini,
			 "[experiment]\nkind = validate\nmodel = %s\ndevice = %s\ntrace = %s\n"
			 "[sim]\nlayout = hot\nlayout_train_tokens = 20\nwindow = 0, 3\nparallelism = 2\n"
			 "warmup_tokens = 5\n[validate]\nweights = %s\nengine = mem\nrepeats = 1\ntokens = 5\n"
			 "probe_seconds = 0.002\narena = 4MiB\n", tiny, m1, trace, lsw);
		snprintf(args, sizeof args, "validate %s -o %s", tu_write("v.ini", ini), tu_path("vd"));
	} else if (!strcmp(verb, "calibrate")) {
		cr_assert_eq(tu_lifsim(out, sizeof out, "-q calibrate --make-file %s --size 8MiB", tu_path("c.bin")),
			     0, "%s", out);
		snprintf(args, sizeof args, "calibrate --file %s -o %s --engines mem --chunks 4KiB,16KiB "
			 "--parallelism 1,2 --seconds 0.005 --arena 0 --no-fit", tu_path("c.bin"), tu_path("c.ini"));
	} else if (!strcmp(verb, "record") || !strcmp(verb, "predictor train")) {
		const char *prompt = tu_write("prompt.txt", "The flash holds the weights; the DRAM holds a window.");
		snprintf(args, sizeof args, "record --model %s --prompt-file %s --generate 8 --inputs -o %s",
			 tu_src("traces/tinylm"), prompt, tu_path("r.h5"));
		if (!strcmp(verb, "predictor train")) {
			char rec[8300];
			snprintf(rec, sizeof rec, "-q %s", args);
			cr_assert_eq(tu_lifsim(out, sizeof out, "%s", rec), 0, "%s", out);
			snprintf(args, sizeof args, "predictor train %s --rank 4 --holdout 0.25 -o %s", tu_path("r.h5"),
				 tu_path("p.h5"));
		}
	}
	return args;
}

struct vcase {
	char verb[32];
};

static struct vcase vcases[] = {
	{"synth"},    {"stats"},     {"sweep"},  {"layout"},
	{"validate"}, {"calibrate"}, {"record"}, {"predictor train"},
};

ParameterizedTestParameters(progress, long_verbs_show_it_on_a_terminal_only)
{
	return cr_make_param_array(struct vcase, vcases, sizeof vcases / sizeof vcases[0]);
}

/* On a terminal the line "VERB: N/N (100%)" (then rate and time, when
 * measurable; progress_format is tested above) ends the run; with -q on
 * a terminal, and without a terminal, there is no progress line at all. */
ParameterizedTest(struct vcase *c, progress, long_verbs_show_it_on_a_terminal_only, .init = tu_init)
{
	static char out[65536];
	char want[64];
	const char *args = progress_setup(c->verb);
	snprintf(want, sizeof want, "\r%s: ", c->verb);
	int st = tu_lifsim_tty(out, sizeof out, "%s", args);
	cr_assert_eq(st, 0, "lifsim %s on a terminal: status %d\n%s", args, st, out);
	const char *line = strstr(out, want);
	cr_assert(line, "lifsim %s on a terminal: no progress line '%s':\n%s", args, want + 1, out);
	const char *last = line, *p;
	while ((p = strstr(last + 1, want)))
		last = p;
	long long done = -1, total = -2;
	char pct[8] = "";
	cr_expect(sscanf(last + strlen(want), "%lld/%lld %7s", &done, &total, pct) == 3 && done == total &&
			  done > 0 && !strcmp(pct, "(100%)"),
		  "lifsim %s: the last progress line does not read N/N (100%%):\n%s", args, last + 1);
	/* -q on a terminal, and no terminal: silent (rerun into fresh outputs) */
	char q[8300];
	snprintf(q, sizeof q, "-q %s", args);
	char cmd[16384];
	snprintf(cmd, sizeof cmd, "cd %s && rm -rf s.csv res vd c.ini c.raw.csv p.h5", tu_tmpdir());
	cr_assert_eq(system(cmd), 0);
	st = tu_lifsim_tty(out, sizeof out, "%s", q);
	cr_assert_eq(st, 0, "lifsim %s on a terminal: status %d\n%s", q, st, out);
	cr_expect(!strstr(out, want) && !strstr(out, "(100%)"), "lifsim %s printed progress:\n%s", q, out);
	cr_assert_eq(system(cmd), 0);
	st = tu_lifsim(out, sizeof out, "%s", args);
	cr_assert_eq(st, 0, "lifsim %s: status %d\n%s", args, st, out);
	cr_expect(!strstr(out, "\r") && !strstr(out, "(100%)"), "lifsim %s without a terminal printed progress:\n%s",
		  args, out);
}
