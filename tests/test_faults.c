/* Writes that fail (issue 13): every verb that writes, run with writes made
 * to fail below lifsim and libhdf5 by tests/faultinj.c (an LD_PRELOAD
 * library: ENOSPC or EIO after N bytes, a short write, a failing fsync).
 * Each run must end in "lifsim VERB: ..." naming the file, exit 1, no crash,
 * and leave nothing at the output path that a reader would take for valid:
 * no file, the old file, or (record) a valid shorter trace. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "traces/trace.h"

static const char *faultinj(void)
{
	const char *p = getenv("LIFSIM_FAULTINJ");
	return p ? p : LIFSIM_BUILDDIR "/tests/faultinj.so";
}

/* A fresh, empty directory for one run's outputs (the fault's scope). */
static const char *fresh_dir(const char *name)
{
	const char *d = tu_path(name);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", d, d);
	cr_assert_eq(system(cmd), 0);
	return d;
}

/* Run lifsim with fault (KIND:N) on files under dir; the exit status, or
 * 128 + the signal that ended it. */
static int faulty(char *out, size_t cap, const char *fault, const char *dir, const char *args)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
		 "env ASAN_OPTIONS=$ASAN_OPTIONS:verify_asan_link_order=0 LD_PRELOAD='%s' LIFSIM_FAULT=%s LIFSIM_FAULT_MATCH='%s/' '%s' --quiet %s 2>&1",
		 faultinj(), fault, dir, tu_bin(), args);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	while (fgetc(p) != EOF) {
	}
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* No temporary file ("*.tmp") left anywhere under dir. */
static void expect_no_tmp(const char *dir)
{
	char cmd[4200], buf[4096] = "";
	snprintf(cmd, sizeof cmd, "find '%s' -name '*.tmp*'", dir);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	size_t n = fread(buf, 1, sizeof buf - 1, p);
	buf[n] = '\0';
	pclose(p);
	cr_expect_str_empty(buf, "temporary files left: %s", buf);
}

/* The failure is reported as lifsim's own error, exit 1, without a crash
 * or libhdf5's diagnostics. */
static void expect_clean_failure(int rc, const char *out, const char *verb, const char *fault)
{
	char want[64];
	snprintf(want, sizeof want, "lifsim %s: ", verb);
	cr_expect_eq(rc, 1, "%s under %s: exit %d: %s", verb, fault, rc, out);
	cr_expect(strstr(out, want), "%s under %s: %s", verb, fault, out);
	cr_expect(!strstr(out, "HDF5-DIAG") && !strstr(out, "Segmentation") &&
			  !strstr(out, "double free") && !strstr(out, "Aborted"),
		  "%s under %s: %s", verb, fault, out);
}

static const char *faults[] = {"enospc:0", "enospc:2000", "short:5000", "eio:12000", "fsync:0"};
#define NFAULTS (sizeof faults / sizeof *faults)

Test(faults, synth_fails_cleanly_and_keeps_the_old_output, .init = tu_init)
{
	char out[8192], args[16384], old[4096];
	for (size_t i = 0; i < NFAULTS; i++) {
		const char *d = fresh_dir("synth");
		snprintf(old, sizeof old, "%s/t.h5", d);
		FILE *f = fopen(old, "w"); /* an earlier output, to keep */
		cr_assert(f);
		fputs("old output\n", f);
		fclose(f);
		snprintf(args, sizeof args, "synth '%s' --tokens 300 -o '%s/t.h5'",
			 tu_src("tests/data/tiny.ini"), d);
		int rc = faulty(out, sizeof out, faults[i], d, args);
		expect_clean_failure(rc, out, "synth", faults[i]);
		cr_expect(strstr(out, "t.h5"), "the file is named: %s", out);
		f = fopen(old, "r");
		char line[64] = "";
		cr_assert(f, "the old output is gone under %s", faults[i]);
		cr_expect(fgets(line, sizeof line, f) && !strcmp(line, "old output\n"),
			  "the old output changed under %s", faults[i]);
		fclose(f);
		expect_no_tmp(d);
	}
}

/* record: a failure after a flush keeps the tokens flushed so far as a
 * valid, shorter trace (as an interrupt does); a failure before the first
 * flush leaves no file. */
Test(faults, record_keeps_what_it_flushed_as_a_valid_shorter_trace, .init = tu_init)
{
	char out[8192], args[16384], path[4096];
	char ids[4096];
	snprintf(ids, sizeof ids, "%s", tu_write("rec.ids", "1 2 3 4 5 6 7 8"));
	const char *fl[] = {"enospc:0", "enospc:3000", "enospc:30000", "short:45000",
			    "eio:80000", "fsync:0"};
	int kept = 0;
	for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
		const char *d = fresh_dir("record");
		snprintf(path, sizeof path, "%s/r.h5", d);
		snprintf(args, sizeof args,
			 "record --threads 1 --model '%s' --tokens-file '%s' --generate 100 -o '%s'",
			 tu_src("traces/tinylm"), ids, path);
		int rc = faulty(out, sizeof out, fl[i], d, args);
		expect_clean_failure(rc, out, "record", fl[i]);
		if (!exists(path)) {
			cr_expect(strstr(out, "removed") || strstr(out, "cannot create"),
				  "says what became of the file: %s", out);
			continue;
		}
		struct lif_err e = {0};
		struct trace *t = trace_load(path, 0, &e);
		cr_assert(t, "a kept file must load (%s): %s; %s", fl[i], e.msg, out);
		/* whole flushes only; all 108 when only the closing fsync failed */
		cr_expect(t->meta.tokens % 16 == 0 || (!strncmp(fl[i], "fsync", 5) && t->meta.tokens == 108),
			  "%s kept %lld tokens", fl[i], (long long)t->meta.tokens);
		cr_expect(strstr(out, "keeps the"), "%s", out);
		trace_free(t);
		kept++;
	}
	cr_expect_geq(kept, 3, "a failure after a flush keeps the flushed tokens");
}

Test(faults, sweep_fails_cleanly_and_resumes_to_the_clean_result, .init = tu_init)
{
	char out[8192], args[16384], text[2048];
	snprintf(text, sizeof text,
		 "[experiment]\nkind = simulate\nmodel = %s\ndevice = %s\ntrace = synth\n"
		 "[synth]\ntokens = 20\n[sim]\nwindow = 1, 2, 3\n[output]\nper_token = true\n",
		 tu_src("tests/data/tiny.ini"), tu_src("models/devices/m1max.ini"));
	const char *x = tu_write("fault-sweep.ini", text);
	char exp[4096], clean[4096];
	snprintf(exp, sizeof exp, "%s", x);
	snprintf(clean, sizeof clean, "%s", tu_path("sweep-clean"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep '%s' -o '%s' --quiet", exp, clean), 0, "%s", out);
	const char *fl[] = {"enospc:0", "enospc:1500", "enospc:6000", "short:9000", "eio:15000",
			    "eio:25000", "fsync:0"};
	for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
		const char *d = fresh_dir("sweep");
		snprintf(args, sizeof args, "sweep '%s' -o '%s/o'", exp, d);
		int rc = faulty(out, sizeof out, fl[i], d, args);
		expect_clean_failure(rc, out, "sweep", fl[i]);
		expect_no_tmp(d);
		/* the disk has room again: the run resumes to the clean results */
		cr_assert_eq(tu_lifsim(out, sizeof out, "sweep '%s' -o '%s/o' --quiet", exp, d), 0,
			     "resume after %s: %s", fl[i], out);
		cr_expect_eq(tu_lifsim(out, sizeof out, "--quiet tokens '%s/o/per_token/'*.h5 >/dev/null", d), 2,
			     "three per-token files (tokens takes one): %s", out);
		char cmd[8400];
		snprintf(cmd, sizeof cmd, "cmp -s '%s/results.csv' '%s/o/results.csv'", clean, d);
		cr_expect_eq(system(cmd), 0, "results.csv after %s and a resume differs", fl[i]);
	}
}

Test(faults, merge_fails_cleanly, .init = tu_init)
{
	char out[8192], args[16384], text[2048];
	snprintf(text, sizeof text,
		 "[experiment]\nmodel = %s\ndevice = %s\ntrace = synth\n[synth]\ntokens = 20\n"
		 "[sim]\nwindow = 0, 1, 2, 3\n[output]\nper_token = true\n",
		 tu_src("tests/data/tiny.ini"), tu_src("models/devices/m1max.ini"));
	const char *x = tu_write("fault-merge.ini", text);
	char exp[4096], s[4096];
	snprintf(exp, sizeof exp, "%s", x);
	snprintf(s, sizeof s, "%s", fresh_dir("shards"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep '%s' -o '%s/s0' --shard 0/2 --quiet", exp, s), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "sweep '%s' -o '%s/s1' --shard 1/2 --quiet", exp, s), 0, "%s", out);
	const char *fl[] = {"enospc:0", "enospc:1000", "short:3000", "eio:5000", "fsync:0"};
	for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
		const char *d = fresh_dir("merge");
		snprintf(args, sizeof args, "merge '%s/s0' '%s/s1' -o '%s/m'", s, s, d);
		int rc = faulty(out, sizeof out, fl[i], d, args);
		expect_clean_failure(rc, out, "merge", fl[i]);
		expect_no_tmp(d);
		char res[8400];
		snprintf(res, sizeof res, "%s/m/results.csv", d);
		/* the per-token copies come first: they failed, so no results */
		cr_expect(!exists(res), "results.csv written under %s", fl[i]);
	}
	/* without faults: every shard's per-token files, as they are */
	const char *d = fresh_dir("merge");
	cr_assert_eq(tu_lifsim(out, sizeof out, "merge '%s/s0' '%s/s1' -o '%s/m'", s, s, d), 0, "%s", out);
	char cmd[16384];
	snprintf(cmd, sizeof cmd,
		 "test $(ls '%s/m/per_token' | wc -l) = 4 && for f in '%s'/s0/per_token/*.h5 '%s'/s1/per_token/*.h5; "
		 "do cmp -s \"$f\" '%s/m/per_token/'$(basename \"$f\") || exit 1; done",
		 d, s, s, d);
	cr_expect_eq(system(cmd), 0, "merged per_token/ is not the shards' files");
}

Test(faults, layout_leaves_no_weight_file, .init = tu_init)
{
	char out[8192], args[16384], path[4096];
	const char *fl[] = {"enospc:0", "enospc:100000", "short:1000000", "eio:3000000", "fsync:0"};
	for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
		const char *d = fresh_dir("layout");
		snprintf(path, sizeof path, "%s/h.lsw", d);
		snprintf(args, sizeof args, "layout '%s' --layout rowcol -o '%s'",
			 tu_src("models/llms/tinylm.ini"), path);
		int rc = faulty(out, sizeof out, fl[i], d, args);
		expect_clean_failure(rc, out, "layout", fl[i]);
		cr_expect(!exists(path), "%s left under %s", path, fl[i]);
		expect_no_tmp(d);
	}
}

Test(faults, calibrate_make_file_leaves_no_file, .init = tu_init)
{
	char out[8192], args[16384], path[4096];
	const char *fl[] = {"enospc:0", "short:3000000", "eio:6000000", "fsync:0"};
	for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
		const char *d = fresh_dir("calib");
		snprintf(path, sizeof path, "%s/cal.bin", d);
		snprintf(args, sizeof args, "calibrate --make-file '%s' --size 8MiB", path);
		int rc = faulty(out, sizeof out, fl[i], d, args);
		expect_clean_failure(rc, out, "calibrate", fl[i]);
		cr_expect(!exists(path), "%s left under %s", path, fl[i]);
		expect_no_tmp(d);
	}
}

Test(faults, predictor_train_and_eval_leave_no_file, .init = tu_init)
{
	char out[8192], args[16384], path[4096], trace[4096];
	char ids[4096];
	snprintf(ids, sizeof ids, "%s", tu_write("pred.ids", "1 2 3 4 5 6 7 8"));
	snprintf(trace, sizeof trace, "%s", tu_path("pred-trace.h5"));
	cr_assert_eq(tu_lifsim(out, sizeof out,
			       "record --quiet --threads 1 --model '%s' --tokens-file '%s' "
			       "--generate 40 --inputs -o '%s'",
			       tu_src("traces/tinylm"), ids, trace),
		     0, "%s", out);
	const char *fl[] = {"enospc:0", "enospc:4000", "short:20000", "eio:40000", "fsync:0"};
	for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
		const char *d = fresh_dir("pred");
		snprintf(path, sizeof path, "%s/p.h5", d);
		snprintf(args, sizeof args, "predictor train '%s' --rank 2 --epochs 1 -o '%s'", trace,
			 path);
		int rc = faulty(out, sizeof out, fl[i], d, args);
		expect_clean_failure(rc, out, "predictor", fl[i]);
		cr_expect(!exists(path), "%s left under %s", path, fl[i]);
		expect_no_tmp(d);
	}
	char pred[4096];
	snprintf(pred, sizeof pred, "%s", tu_path("pred.h5"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "predictor train '%s' --rank 2 --epochs 1 -o '%s' --quiet",
			       trace, pred),
		     0, "%s", out);
	const char *ef[] = {"enospc:0", "enospc:100", "fsync:0"};
	for (size_t i = 0; i < sizeof ef / sizeof *ef; i++) {
		const char *d = fresh_dir("eval");
		snprintf(path, sizeof path, "%s/e.csv", d);
		snprintf(args, sizeof args, "predictor eval '%s' '%s' -o '%s'", pred, trace, path);
		int rc = faulty(out, sizeof out, ef[i], d, args);
		expect_clean_failure(rc, out, "predictor", ef[i]);
		cr_expect(!exists(path), "%s left under %s", path, ef[i]);
		expect_no_tmp(d);
	}
}

/* The plots' inputs: files (stats -o) and what verbs print (device, stats,
 * tokens > FILE). */
Test(faults, plot_inputs_fail_cleanly, .init = tu_init)
{
	char out[8192], args[16384], path[4096], trace[4096];
	snprintf(trace, sizeof trace, "%s", tu_path("plots-trace.h5"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth '%s' --tokens 100 -o '%s' --quiet",
			       tu_src("tests/data/tiny.ini"), trace),
		     0, "%s", out);
	const char *fl[] = {"enospc:0", "enospc:500", "fsync:0"};
	for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
		const char *d = fresh_dir("stats");
		snprintf(path, sizeof path, "%s/s.csv", d);
		snprintf(args, sizeof args, "stats '%s' -o '%s'", trace, path);
		int rc = faulty(out, sizeof out, fl[i], d, args);
		expect_clean_failure(rc, out, "stats", fl[i]);
		cr_expect(!exists(path), "%s left under %s", path, fl[i]);
		expect_no_tmp(d);
	}
	/* tu_lifsim sends stderr where stdout goes: the shell here keeps them apart */
	char cmd[16384];
	snprintf(cmd, sizeof cmd, "'%s' stats '%s' 2>&1 >/dev/full", tu_bin(), trace);
	FILE *p = popen(cmd, "r");
	cr_assert(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	expect_clean_failure(WIFEXITED(st) ? WEXITSTATUS(st) : -1, out, "stats", "stdout on /dev/full");
	cr_expect(strstr(out, "cannot write to stdout"), "%s", out);
}
