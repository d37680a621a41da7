/* Hostile inputs (issue 13): files whose sizes are claims, corrupt files,
 * version-1 files still read. The fixtures in tests/data/hostile/ are made by
 * tests/hostile/mkhostile.c. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <hdf5.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "sim/sweep/pertoken.h"
#include "traces/h5attr.h"
#include "traces/predictor/predictor.h"
#include "traces/trace.h"

struct hostile_case {
	char file[48];
	char want[96]; /* in the message */
};

ParameterizedTestParameters(hostile, each_hostile_trace_is_a_clear_error)
{
	static struct hostile_case cases[] = {
		{"tokens_2e62.h5", "tokens 4611686018427387904 outside [0, 4294967296]"},
		{"tokens_float.h5", "attribute 'tokens' is missing or not an integer"},
		{"tokens_past_extent.h5", "dataset 'tokens' is int32 [4], the attributes claim int32 [1000]"},
		{"sparse_10gb.h5", "stores 0 of its 157 chunks (the file claims more than it holds)"},
		{"layers256_dffn4m.h5", "stores 0 of its 1 chunks"},
		{"dffn_past_bound.h5", "d_ffn 4194305 outside [1, 4194304]"},
		{"layers_2e40.h5", "layers 1099511627776 outside [1, 256]"},
	};
	return cr_make_param_array(struct hostile_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct hostile_case *c, hostile, each_hostile_trace_is_a_clear_error)
{
	char path[1024], out[4096], rel[128];
	snprintf(rel, sizeof rel, "tests/data/hostile/%s", c->file);
	snprintf(path, sizeof path, "%s", tu_src(rel));
	tu_init();
	struct lif_err e = {0};
	struct trace *t = trace_load(path, TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, &e);
	cr_expect_null(t);
	cr_expect(strstr(e.msg, c->want) && strstr(e.msg, path), "%s: '%s'", c->file, e.msg);
	trace_free(t);
	/* every verb that reads a trace ends with exit 1, not a crash */
	cr_expect_eq(tu_lifsim(out, sizeof out, "stats %s", path), 1, "%s", out);
	cr_expect(strstr(out, c->want), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "predictor train %s --rank 2 -o %s", path,
			       tu_path("p.h5")), 1, "%s", out);
}

Test(hostile, memory_a_trace_needs_is_checked_against_what_is_available)
{
	char out[4096];
	const char *p = tu_src("tests/data/v1/trace_v1.h5");
	tu_init();
	setenv("LIFSIM_MEM_LIMIT", "1KiB", 1);
	struct lif_err e = {0};
	struct trace *t = trace_load(p, 0, &e);
	cr_expect_null(t);
	cr_expect(strstr(e.msg, "loading 64 tokens x 3 layers x 203 neurons needs") &&
		  strstr(e.msg, "of memory, 1.0 KiB available"), "%s", e.msg);
	cr_expect_eq(tu_lifsim(out, sizeof out, "stats %s", p), 1, "%s", out);
	cr_expect(strstr(out, "1.0 KiB available"), "%s", out);
	unsetenv("LIFSIM_MEM_LIMIT");
	trace_free(t);
}

Test(hostile, a_version_1_trace_is_still_read)
{
	tu_init();
	struct lif_err e = {0};
	struct trace *t = trace_load(tu_src("tests/data/v1/trace_v1.h5"), TRACE_LOAD_MAGNITUDES, &e);
	cr_assert_not_null(t, "%s", e.msg);
	cr_expect_eq(t->meta.tokens, 64);
	cr_expect_eq(t->meta.layers, 3);
	cr_expect_eq(t->meta.d_ffn, 203);
	cr_expect_not_null(t->band);
	trace_free(t);
}

Test(hostile, stats_of_an_all_inactive_trace_prints_no_nan)
{
	char out[8192];
	cr_expect_eq(tu_lifsim(out, sizeof out, "stats %s",
			       tu_src("tests/data/hostile/all_inactive.h5")), 0, "%s", out);
	cr_expect(!strstr(out, "nan"), "%s", out);
	cr_expect(strstr(out, "no neuron is ever active"), "%s", out);
}

/* The writer's raw chunks carry the checksum HDF5's own filter computes: HDF5
 * reads them back through its pipeline (which verifies it). */
Test(hostile, written_chunks_carry_checksums_hdf5_verifies)
{
	char out[4096];
	const char *p = tu_path("t.h5");
	tu_init();
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s -o %s --tokens 130",
			       tu_src("tests/data/tiny.ini"), p), 0, "%s", out);
	hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
	const char *names[] = {"tokens", "active", "band"};
	for (int i = 0; i < 3; i++) {
		hid_t d = H5Dopen2(f, names[i], H5P_DEFAULT);
		cr_assert(d >= 0);
		cr_expect(h5attr_has_checksum(d), "%s has no checksum", names[i]);
		hid_t sp = H5Dget_space(d);
		hssize_t n = H5Sget_simple_extent_npoints(sp);
		hid_t t = H5Dget_type(d);
		char *buf = malloc((size_t)n * H5Tget_size(t));
		cr_expect(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0,
			  "HDF5 rejects the checksum of %s", names[i]);
		free(buf);
		H5Tclose(t);
		H5Sclose(sp);
		H5Dclose(d);
	}
	H5Fclose(f);
}

/* 3 bytes flipped (tests/hostile/flip.c, seeds 63 and 118, span 2048) in the
 * metadata of a version-1 trace made libhdf5 itself crash (SIGSEGV) in stats
 * and predictor train; now the read runs in a child process first. */
ParameterizedTestParameters(hostile, a_flipped_v1_trace_that_crashes_libhdf5_is_an_error)
{
	static struct hostile_case cases[] = {
		{"flipped/v1_seed63_crash.h5", "crashed the HDF5 library"},
		{"flipped/v1_seed118_crash.h5", "crashed the HDF5 library"},
	};
	return cr_make_param_array(struct hostile_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct hostile_case *c, hostile, a_flipped_v1_trace_that_crashes_libhdf5_is_an_error)
{
	char path[1024], out[4096], rel[128];
	snprintf(rel, sizeof rel, "tests/data/hostile/%s", c->file);
	snprintf(path, sizeof path, "%s", tu_src(rel));
	cr_expect_eq(tu_lifsim(out, sizeof out, "stats %s", path), 1, "%s", out);
	cr_expect(strstr(out, c->want) && strstr(out, path), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "predictor train %s --rank 2 -o %s", path,
			       tu_path("p.h5")), 1, "%s", out);
	cr_expect(strstr(out, c->want), "%s", out);
}

/* A device profile's numbers are bounded by physics, with the unit in the
 * message: t0_us = 1e308 printed mb_per_s 0, share_us inf. */
Test(hostile, device_numbers_outside_physical_bounds_are_refused_with_their_unit)
{
	char out[8192], text[512];
	const struct {
		const char *key, *value, *want;
	} c[] = {{"[flash]\nmodel = parametric\nt0_us", "1e308", "[flash] t0_us: '1e308' is outside [0, 1e+06] us"},
		 {"[flash]\nmodel = parametric\nxfer_bytes_per_s", "-1", "is outside [0, 1e+30] B/s"},
		 {"[compute]\nflops_per_s", "1e31", "is outside [0, 1e+30] FLOP/s"},
		 {"[flash]\nchunk_bytes = 4KiB\nparallelism = 1\nmb_per_s", "1e300", "is outside [0, 1e+08] MB/s"}};
	for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
		snprintf(text, sizeof text, "include = %s\n%s = %s\n", tu_src("models/devices/m1max.ini"),
			 c[i].key, c[i].value);
		const char *p = tu_write("bounded-device.ini", text);
		cr_expect_eq(tu_lifsim(out, sizeof out, "device '%s'", p), 1, "%s", out);
		cr_expect(strstr(out, c[i].want), "want '%s': %s", c[i].want, out);
		cr_expect(!strstr(out, "inf"), "%s", out);
	}
}

/* `lifsim tokens TRACE.h5` said "'tokens' is not [tokens, 7]". */
Test(hostile, tokens_on_a_trace_is_a_usage_error_that_says_what_it_reads, .init = tu_init)
{
	char out[8192];
	const char *t = tu_src("tests/data/hostile/all_inactive.h5");
	cr_expect_eq(tu_lifsim(out, sizeof out, "tokens '%s'", t), 2, "%s", out);
	cr_expect(strstr(out, "is an activation trace, not a point's per-token detail"), "%s", out);
	cr_expect(strstr(out, "per_token = true"), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "tokens '%s'", tu_src("tests/data/tiny.ini")), 1, "%s", out);
	cr_expect(strstr(out, "not an HDF5 file"), "%s", out);
}

/* predictor train on a trace without FFN inputs names the option that
 * records them. */
Test(hostile, predictor_train_without_inputs_names_record_inputs, .init = tu_init)
{
	char out[8192];
	const char *t = tu_src("tests/data/hostile/all_inactive.h5");
	cr_expect_eq(tu_lifsim(out, sizeof out, "predictor train '%s' --rank 2 -o '%s'", t,
			       tu_path("never.h5")),
		     1, "%s", out);
	cr_expect(strstr(out, "lifsim record --inputs"), "%s", out);
}

/* Found by the per-token fuzz target (tests/fuzz/fuzz_pertoken.c): a 7 KB
 * per-token file whose string attribute points into a corrupt global heap
 * made libhdf5 loop forever (lifsim tokens never returned). Per-token files
 * have no metadata checksums: they are read in a child first, with a time
 * limit. */
Test(hostile, pertoken_hang_bd87e757_ends_in_an_error, .timeout = 120)
{
	char out[8192];
	const char *f = tu_src("tests/data/hostile/pertoken-hang-bd87e757.h5");
	cr_expect_eq(tu_lifsim(out, sizeof out, "tokens '%s'", f), 1, "%s", out);
	cr_expect(strstr(out, "pertoken-hang-bd87e757.h5: corrupt: reading it did not end within"),
		  "%s", out);
}

/* Found by the predictor fuzz target: a predictor file whose string
 * attribute points into a corrupt global heap (no checksum in any HDF5
 * format) made libhdf5 copy out of bounds (ASan: memcpy-param-overlap in
 * H5HG_read). Variable-length strings are read in a child process. */
Test(hostile, predictor_crash_297b6076_ends_in_an_error, .init = tu_init)
{
	char out[8192];
	const char *f = tu_src("tests/data/hostile/predictor-crash-297b6076.h5");
	struct predictor *p;
	struct lif_err e = {0};
	cr_expect_null(p = predictor_load(f, &e));
	predictor_free(p);
	cr_expect(strstr(e.msg, "predictor-crash-297b6076.h5"), "%s", e.msg);
	cr_expect_eq(tu_lifsim(out, sizeof out, "predictor eval '%s' '%s'", f,
			       tu_src("tests/data/hostile/all_inactive.h5")),
		     1, "%s", out);
}

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	void *b = malloc(*len + 1);
	cr_assert_eq(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

/* h5attr_image (how the fuzz targets read their inputs): a file served from
 * memory under a path that names no file reads as the file does, and a
 * corrupt one is still an error, through the same isolation. */
Test(hostile, a_file_image_reads_as_the_file_does, .init = tu_init)
{
	const char *v1 = tu_src("tests/data/v1/trace_v1.h5");
	const char *fake = "/nonexistent/image.h5";
	size_t len;
	void *buf = slurp(v1, &len);
	struct lif_err e = {0};
	struct trace *a = trace_load(v1, TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, &e);
	cr_assert_not_null(a, "%s", e.msg);
	h5attr_image(fake, buf, len);
	cr_expect_eq(h5attr_superblock_version(fake), h5attr_superblock_version(v1));
	struct trace *b = trace_load(fake, TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, &e);
	cr_assert_not_null(b, "%s", e.msg);
	cr_expect_eq(a->meta.tokens, b->meta.tokens);
	cr_expect_eq(a->meta.layers, b->meta.layers);
	cr_expect_eq(a->row_bytes, b->row_bytes);
	cr_expect_eq(memcmp(a->token_ids, b->token_ids, (size_t)a->meta.tokens * 4), 0);
	cr_expect_eq(memcmp(a->bits, b->bits, (size_t)a->meta.layers * a->meta.tokens * a->row_bytes), 0);
	trace_free(a);
	trace_free(b);
	free(buf);

	/* the predictor that crashed libhdf5, from memory: the same error */
	const char *bad = tu_src("tests/data/hostile/predictor-crash-297b6076.h5");
	buf = slurp(bad, &len);
	h5attr_image(fake, buf, len);
	struct lif_err e2 = {0};
	struct predictor *p = predictor_load(fake, &e2);
	cr_expect_null(p);
	predictor_free(p);
	cr_expect(strstr(e2.msg, fake), "%s", e2.msg);
	/* unregistered: the path is a missing file again */
	h5attr_image(NULL, NULL, 0);
	struct lif_err e3 = {0};
	cr_expect_null(trace_load(fake, 0, &e3));
	cr_expect(strstr(e3.msg, "cannot open"), "%s", e3.msg);
	free(buf);
	cr_expect_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

static int forks;
static void count_fork(void)
{
	forks++;
}

/* A file in HDF5's old format is read in a child first (h5attr_isolate); in
 * that child its string attributes are read directly, and so are they in
 * this process afterwards when the file is a memory image (its bytes cannot
 * change between the two reads). A file on disk can: there each string
 * attribute is still read in a child of its own. Counted by forks. */
Test(hostile, a_checked_image_reads_its_strings_without_another_fork, .init = tu_init)
{
	const char *pt = tu_src("tests/fuzz/corpus/pertoken/tiny-window1.h5");
	const char *fake = "/nonexistent/image.h5";
	char disk_csv[4096] = "", image_csv[4096] = "";
	size_t len;
	void *buf = slurp(pt, &len);
	struct lif_err e = {0};
	cr_assert_eq(pthread_atfork(count_fork, NULL, NULL), 0);
	cr_assert_lt(h5attr_superblock_version(pt), 2);
	FILE *out = fmemopen(disk_csv, sizeof disk_csv - 1, "w");
	forks = 0;
	cr_assert_eq(pertoken_print_csv(pt, out, &e), 0, "%s", e.msg);
	fclose(out);
	int disk = forks;
	h5attr_image(fake, buf, len);
	out = fmemopen(image_csv, sizeof image_csv - 1, "w");
	forks = 0;
	cr_assert_eq(pertoken_print_csv(fake, out, &e), 0, "%s", e.msg);
	fclose(out);
	cr_expect_eq(forks, 1, "a checked image forks once (the whole read), not %d", forks);
	cr_expect_eq(disk, 2, "a file on disk: one fork for the read, one for its schema (%d)", disk);
	cr_expect(strstr(disk_csv, "token,"), "%s", disk_csv);
	cr_expect_str_eq(disk_csv, image_csv);
	/* registered again: checked again (one fork), still the same text */
	h5attr_image(fake, buf, len);
	out = fmemopen(image_csv, sizeof image_csv - 1, "w");
	forks = 0;
	cr_expect_eq(pertoken_print_csv(fake, out, &e), 0, "%s", e.msg);
	fclose(out);
	cr_expect_eq(forks, 1);
	cr_expect_str_eq(disk_csv, image_csv);
	h5attr_image(NULL, NULL, 0);
	free(buf);
	cr_expect_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* Found by the results fuzz target (tests/fuzz/fuzz_results.c, the same
 * experiment): a results.csv whose header names a swept column otherwise
 * ('\xda' for 'r' in "recall") leaked the column names on resume
 * (LeakSanitizer). The resume is refused, names the column and keeps the
 * file as it was. */
Test(hostile, results_leak_03868f5f_is_refused_and_kept, .init = tu_init)
{
	char out[8192], dir[4096], res[4200];
	const char *exp = tu_write("leak.ini",
		"[experiment]\nkind = echo\n[sim]\nwindow = 0\nlayout = separate\n"
		"[predictor]\nrecall = 1.0\nfp_rate = 0.0\n"
		"[sweep]\nrows = naive, predictor\nzip = recall, fp_rate\n"
		"[row predictor]\nsim.mode = hybrid\nrecall = 0.9, 0.95\nfp_rate = 0.1, 0.05\n"
		"window = 0, 5\n");
	size_t len;
	void *found = slurp(tu_src("tests/fuzz/found/results-leak-03868f5f"), &len);
	snprintf(dir, sizeof dir, "%s", tu_path("leak.out"));
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(res, sizeof res, "%s/results.csv", dir);
	FILE *f = fopen(res, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(found, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	cr_expect_eq(tu_lifsim(out, sizeof out, "sweep '%s' -o '%s'", exp, dir), 1, "%s", out);
	cr_expect(strstr(out, "results.csv: column 5 is '\xda" "ecall' where this experiment has "
			      "'recall'"), "%s", out);
	size_t after_len;
	void *after = slurp(res, &after_len);
	cr_expect(after_len == len && !memcmp(after, found, len), "results.csv is kept as it was");
	free(after);
	free(found);
}

/* LIFSIM_HDF5_TIME_LIMIT: the seconds a reading child may take (default 30;
 * a value that is not a number in [0.01, 86400] is the default). */
Test(hostile, hdf5_time_limit_comes_from_the_environment)
{
	unsetenv("LIFSIM_HDF5_TIME_LIMIT");
	cr_expect_eq(h5attr_time_limit(), 30);
	static const struct {
		const char *v;
		double want;
	} cases[] = {{"1", 1}, {"86400", 86400}, {"0.25", 0.25}, {"0.01", 0.01}, {"0", 30},
		     {"0.001", 30}, {"86401", 30}, {"-3", 30}, {"2s", 30}, {"", 30}, {"abc", 30},
		     {"nan", 30}, {"inf", 30}, {"1e999", 30}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		setenv("LIFSIM_HDF5_TIME_LIMIT", cases[i].v, 1);
		cr_expect_eq(h5attr_time_limit(), cases[i].want, "'%s': %g", cases[i].v,
			     h5attr_time_limit());
	}
	unsetenv("LIFSIM_HDF5_TIME_LIMIT");
}

/* Every LIFSIM_* variable is checked before a verb runs: a bad value is a
 * usage error naming it (exit 2), not a silent default. */
Test(hostile, bad_environment_values_are_usage_errors, .init = tu_init)
{
	static const struct {
		const char *name, *value, *why;
	} bad[] = {
		{"LIFSIM_STREAM_BLOCK", "abc", "not a whole number of tokens >= 1"},
		{"LIFSIM_STREAM_BLOCK", "0", "not a whole number of tokens >= 1"},
		{"LIFSIM_STREAM_BLOCK", "64k", "not a whole number of tokens >= 1"},
		{"LIFSIM_STREAM_BLOCK", "99999999999999999999", "not a whole number of tokens >= 1"},
		{"LIFSIM_MEM_LIMIT", "lots", "not a size in bytes >= 1"},
		{"LIFSIM_MEM_LIMIT", "0", "not a size in bytes >= 1"},
		{"LIFSIM_MEM_LIMIT", "-1GiB", "not a size in bytes >= 1"},
		{"LIFSIM_HDF5_TIME_LIMIT", "0.001", "not a number of seconds from 0.01 to 86400"},
		{"LIFSIM_HDF5_TIME_LIMIT", "2s", "not a number of seconds from 0.01 to 86400"},
		{"LIFSIM_HDF5_TIME_LIMIT", "nan", "not a number of seconds from 0.01 to 86400"},
	};
	char out[8192], want[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		setenv(bad[i].name, bad[i].value, 1);
		cr_expect_eq(tu_lifsim(out, sizeof out, "device m1max"), 2, "%s=%s: %s",
			     bad[i].name, bad[i].value, out);
		snprintf(want, sizeof want, "lifsim device: %s='%s': %s", bad[i].name, bad[i].value,
			 bad[i].why);
		cr_expect(strstr(out, want), "want '%s' in: %s", want, out);
		unsetenv(bad[i].name);
	}
	/* valid and empty values run the verb */
	static const char *ok[][2] = {{"LIFSIM_STREAM_BLOCK", "7"}, {"LIFSIM_MEM_LIMIT", "20GiB"},
				      {"LIFSIM_HDF5_TIME_LIMIT", "5"}, {"LIFSIM_MEM_LIMIT", ""}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		setenv(ok[i][0], ok[i][1], 1);
		cr_expect_eq(tu_lifsim(out, sizeof out, "device m1max"), 0, "%s=%s: %s", ok[i][0],
			     ok[i][1], out);
		unsetenv(ok[i][0]);
	}
	/* --help and --version do not read them */
	setenv("LIFSIM_STREAM_BLOCK", "abc", 1);
	cr_expect_eq(tu_lifsim(out, sizeof out, "--version"), 0, "%s", out);
	unsetenv("LIFSIM_STREAM_BLOCK");
}

/* A simulate sweep streams its trace by blocks; what it reads whole (one
 * block, or a trace a point needs entire) is claimed first, like any load:
 * over the memory there is, a clear error naming the file; by blocks that
 * fit, the same sweep runs. */
Test(hostile, streamed_sweep_claims_memory_before_reading_a_block, .init = tu_init)
{
	char out[8192], text[2048];
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s --tokens 100 -o %s", tu_src("tests/data/tiny.ini"),
			       tu_path("claim.h5")), 0, "%s", out);
	snprintf(text, sizeof text,
		 "[experiment]\nkind = simulate\nmodel = %s\ndevice = %s\ntrace = %s\n[sim]\nwindow = 2\n",
		 tu_src("tests/data/tiny.ini"), tu_src("models/devices/m1max.ini"), tu_path("claim.h5"));
	const char *exp = tu_write("claim.ini", text);
	char want[4300];
	snprintf(want, sizeof want, "%s: reading 100 tokens of the trace needs 22.9 KiB of memory, "
		 "16.0 KiB available", tu_path("claim.h5"));
	setenv("LIFSIM_MEM_LIMIT", "16KiB", 1);
	cr_expect_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s/claim1", exp, tu_tmpdir()), 1, "%s", out);
	cr_expect(strstr(out, want), "want '%s' in: %s", want, out);
	setenv("LIFSIM_STREAM_BLOCK", "10", 1);
	cr_expect_eq(tu_lifsim(out, sizeof out, "sweep %s -o %s/claim2", exp, tu_tmpdir()), 0, "%s", out);
	unsetenv("LIFSIM_STREAM_BLOCK");
	unsetenv("LIFSIM_MEM_LIMIT");
}

/* The per-token file libhdf5 loops on, with LIFSIM_HDF5_TIME_LIMIT=1 and
 * 0.3: the same error, after that time instead of 30 s. */
Test(hostile, pertoken_hang_ends_after_the_time_limit_set, .init = tu_init, .timeout = 25)
{
	char out[8192];
	const char *f = tu_src("tests/data/hostile/pertoken-hang-bd87e757.h5");
	setenv("LIFSIM_HDF5_TIME_LIMIT", "1", 1);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_expect_eq(tu_lifsim(out, sizeof out, "tokens '%s'", f), 1, "%s", out);
	clock_gettime(CLOCK_MONOTONIC, &b);
	unsetenv("LIFSIM_HDF5_TIME_LIMIT");
	cr_expect(strstr(out, "pertoken-hang-bd87e757.h5: corrupt: reading it did not end within 1 s"),
		  "%s", out);
	/* 1 s, and well under the default 30 s (the machine may be loaded) */
	cr_expect_lt((double)(b.tv_sec - a.tv_sec), 20.0);
	setenv("LIFSIM_HDF5_TIME_LIMIT", "0.3", 1);
	cr_expect_eq(tu_lifsim(out, sizeof out, "tokens '%s'", f), 1, "%s", out);
	unsetenv("LIFSIM_HDF5_TIME_LIMIT");
	cr_expect(strstr(out, "pertoken-hang-bd87e757.h5: corrupt: reading it did not end within 0.3 s"),
		  "%s", out);
}

/* The reader h5attr_isolate keeps between reads (h5attr_isolate_keep, the
 * fuzz targets' setting): probes that answer with the reader's pid, crash,
 * loop, or check what crossed to it. */
static int probe_pid(const char *path, void *arg, struct lif_err *err)
{
	return err_set(err, ERR_FORMAT, "pid %ld", (long)getpid());
}

static int probe_ok(const char *path, void *arg, struct lif_err *err)
{
	return 0;
}

static int probe_segv(const char *path, void *arg, struct lif_err *err)
{
	signal(SIGSEGV, SIG_DFL); /* as libhdf5 dies (a sanitizer's handler aside) */
	raise(SIGSEGV);
	return 0;
}

static int probe_loop(const char *path, void *arg, struct lif_err *err)
{
	for (volatile unsigned long i = 0;; i++)
		;
	return 0;
}

struct image_check {
	uint32_t sum;
	size_t len;
	char path[64];
};

/* The image the reader registered is the one sent: length, path and
 * Fletcher32 (given by value in arg) */
static int probe_image(const char *path, void *arg, struct lif_err *err)
{
	const struct image_check *want = arg;
	size_t len = 0;
	const void *b = h5attr_image_of(path, &len);
	if (!b || len != want->len || strcmp(path, want->path))
		return err_set(err, ERR_FORMAT, "image of %s: %p, %zu bytes", path, b, len);
	uint32_t sum = h5attr_fletcher32(b, len);
	if (sum != want->sum)
		return err_set(err, ERR_FORMAT, "image checksum %08x, want %08x", sum, want->sum);
	return 0;
}

/* The reader's pid, from probe_pid's answer. */
static long reader_pid(void)
{
	struct lif_err e = {0};
	long pid = -1;
	cr_assert_neq(h5attr_isolate("any", probe_pid, NULL, 0, &e), 0);
	cr_assert_eq(sscanf(e.msg, "pid %ld", &pid), 1, "%s", e.msg);
	cr_assert_neq(pid, (long)getpid());
	return pid;
}

/* No child of this process is left, running or a zombie. */
static void expect_no_child(void)
{
	int st;
	errno = 0;
	cr_expect_eq(waitpid(-1, &st, WNOHANG), -1, "a child is left");
	cr_expect_eq(errno, ECHILD);
}

Test(isolate, a_kept_reader_serves_reads_in_a_row_with_one_fork, .init = tu_init)
{
	cr_assert_eq(pthread_atfork(count_fork, NULL, NULL), 0);
	forks = 0;
	h5attr_isolate_keep(100);
	long first = reader_pid();
	for (int i = 0; i < 50; i++)
		cr_expect_eq(reader_pid(), first);
	struct lif_err e = {0};
	cr_expect_eq(h5attr_isolate("any", probe_ok, NULL, 0, &e), 0, "%s", e.msg);
	cr_expect_eq(forks, 1, "%d forks for 52 reads", forks);
	/* real reads: a version-1 trace, a predictor's verdict, per-token detail */
	struct trace *t = trace_load(tu_src("tests/data/v1/trace_v1.h5"), TRACE_LOAD_MAGNITUDES, &e);
	cr_expect_not_null(t, "%s", e.msg);
	trace_free(t);
	char csv[4096] = "";
	FILE *out = fmemopen(csv, sizeof csv - 1, "w");
	cr_expect_eq(pertoken_print_csv(tu_src("tests/fuzz/corpus/pertoken/tiny-window1.h5"), out,
					&e), 0, "%s", e.msg);
	fclose(out);
	cr_expect(strstr(csv, "token,"), "%s", csv);
	/* (files on disk: the strings this process reads after are read in
	 * children of their own) */
	cr_expect_eq(reader_pid(), first);
	/* turned off: the reader is reaped, and each read has a child of its own */
	h5attr_isolate_keep(0);
	cr_expect_eq(kill((pid_t)first, 0), -1);
	expect_no_child();
	forks = 0;
	long a = reader_pid(), b = reader_pid();
	cr_expect_neq(a, b);
	cr_expect_eq(forks, 2);
	expect_no_child();
	/* a fresh reader every N reads (N = 3 here) */
	forks = 0;
	h5attr_isolate_keep(3);
	long p[7];
	for (int i = 0; i < 7; i++)
		p[i] = reader_pid();
	cr_expect(p[0] == p[1] && p[1] == p[2] && p[3] == p[4] && p[4] == p[5]);
	cr_expect(p[2] != p[3] && p[5] != p[6] && p[0] != p[6]);
	cr_expect_eq(forks, 3);
	h5attr_isolate_keep(0);
	expect_no_child();
}

Test(isolate, a_crash_in_a_kept_reader_is_the_crash_verdict_and_the_next_read_works,
     .init = tu_init)
{
	h5attr_isolate_keep(100);
	long before = reader_pid();
	struct lif_err e = {0};
	cr_expect_eq(h5attr_isolate("/x/crash.h5", probe_segv, NULL, 0, &e), ERR_FORMAT);
	cr_expect(strstr(e.msg, "/x/crash.h5: corrupt: reading it crashed the HDF5 library "
			 "(signal 11,"), "%s", e.msg);
	cr_expect_eq(kill((pid_t)before, 0), -1, "the crashed reader is reaped");
	long after = reader_pid();
	cr_expect_neq(after, before);
	cr_expect_eq(reader_pid(), after);
	/* a real file that crashes libhdf5, then one that reads */
	const char *crash = tu_src("tests/data/hostile/flipped/v1_seed63_crash.h5");
	struct trace *t = trace_load(crash, 0, &e);
	cr_expect_null(t);
	cr_expect(strstr(e.msg, "crashed the HDF5 library"), "%s", e.msg);
	t = trace_load(tu_src("tests/data/v1/trace_v1.h5"), TRACE_LOAD_MAGNITUDES, &e);
	cr_expect_not_null(t, "%s", e.msg);
	trace_free(t);
	/* a reader killed from outside while idle: the next read has a fresh
	 * one, and this process is not ended by SIGPIPE */
	long idle = reader_pid();
	cr_assert_eq(kill((pid_t)idle, SIGKILL), 0);
	for (int i = 0; i < 200; i++) { /* until it is a zombie */
		char st[64], line[256] = "";
		snprintf(st, sizeof st, "/proc/%ld/stat", idle);
		FILE *f = fopen(st, "r");
		if (f && fgets(line, sizeof line, f) && strstr(line, ") Z "))
			i = 200;
		if (f)
			fclose(f);
		usleep(10000);
	}
	cr_expect_neq(reader_pid(), idle);
	h5attr_isolate_keep(0);
	expect_no_child();
}

Test(isolate, a_loop_in_a_kept_reader_ends_at_the_time_limit_and_the_next_read_works,
     .init = tu_init, .timeout = 60)
{
	setenv("LIFSIM_HDF5_TIME_LIMIT", "0.3", 1);
	h5attr_isolate_keep(100);
	long before = reader_pid();
	struct lif_err e = {0};
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_expect_eq(h5attr_isolate("/x/loop.h5", probe_loop, NULL, 0, &e), ERR_FORMAT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
	cr_expect(strstr(e.msg, "/x/loop.h5: corrupt: reading it did not end within 0.3 s"), "%s",
		  e.msg);
	/* the limit, and not much more (the machine may be loaded) */
	cr_expect(s >= 0.3 && s < 10, "%g s", s);
	cr_expect_eq(kill((pid_t)before, 0), -1, "the looping reader is killed and reaped");
	cr_expect_neq(reader_pid(), before);
	/* the per-token file libhdf5 loops on, then one it reads */
	const char *hang = tu_src("tests/data/hostile/pertoken-hang-bd87e757.h5");
	FILE *out = fopen("/dev/null", "w");
	cr_expect_eq(pertoken_print_csv(hang, out, &e), ERR_FORMAT);
	cr_expect(strstr(e.msg, "did not end within 0.3 s"), "%s", e.msg);
	cr_expect_eq(pertoken_print_csv(tu_src("tests/fuzz/corpus/pertoken/tiny-window1.h5"), out,
					&e), 0, "%s", e.msg);
	fclose(out);
	unsetenv("LIFSIM_HDF5_TIME_LIMIT");
	h5attr_isolate_keep(0);
	expect_no_child();
}

/* What crosses to the reader arrives whole: the argument by value, the path,
 * and an image larger than a socket's buffer, in the kept reader and in a
 * reader of one read. */
Test(isolate, the_argument_path_and_image_arrive_intact, .init = tu_init)
{
	size_t len = (3u << 20) + 7;
	unsigned char *img = malloc(len);
	cr_assert_not_null(img);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		img[i] = (unsigned char)x;
	}
	struct image_check want = {.sum = h5attr_fletcher32(img, len), .len = len,
				   .path = "/nonexistent/intact.h5"};
	for (unsigned keep = 0; keep <= 10; keep += 10) {
		h5attr_isolate_keep(keep);
		for (int i = 0; i < 3; i++) {
			struct lif_err e = {0};
			h5attr_image(want.path, img, len);
			cr_expect_eq(h5attr_isolate(want.path, probe_image, &want, sizeof want, &e), 0,
				     "keep %u: %s", keep, e.msg);
			img[i * 1000] ^= 0x5a; /* a different image each time */
			want.sum = h5attr_fletcher32(img, len);
		}
		/* the wrong sum is seen as wrong */
		struct lif_err e = {0};
		want.sum ^= 1;
		h5attr_image(want.path, img, len);
		cr_expect_eq(h5attr_isolate(want.path, probe_image, &want, sizeof want, &e), ERR_FORMAT);
		cr_expect(strstr(e.msg, "image checksum"), "%s", e.msg);
		want.sum ^= 1;
	}
	h5attr_image(NULL, NULL, 0);
	h5attr_isolate_keep(0);
	expect_no_child();
	free(img);
}

/* With a kept reader, a string attribute of an image whose format needs no
 * whole read in a child (a predictor in the 1.10 format) is read by the
 * reader too, not in a child of its own: the same strings, no fork. */
Test(isolate, a_kept_reader_reads_an_images_strings, .init = tu_init)
{
	const char *src = tu_src("tests/fuzz/corpus/predictor/tinylm-rank2-layer0.h5");
	const char *bad = tu_src("tests/data/hostile/predictor-crash-297b6076.h5");
	const char *fake = "/nonexistent/strings.h5";
	size_t len, blen;
	void *buf = slurp(src, &len), *bbuf = slurp(bad, &blen);
	struct lif_err e = {0};
	struct predictor *p = predictor_load(src, &e);
	cr_assert_not_null(p, "%s", e.msg);
	struct predictor_info want, got;
	predictor_get_info(p, &want);
	predictor_free(p);
	cr_assert_geq(h5attr_superblock_version(src), 2);
	cr_assert(want.model[0] && want.trace[0]);
	/* a second image, its model named otherwise (the string's bytes in the
	 * global heap, which has no checksum) */
	unsigned char *other = malloc(len);
	memcpy(other, buf, len);
	unsigned char *m = memmem(other, len, want.model, strlen(want.model));
	cr_assert_not_null(m);
	m[0] ^= 0x20; /* 'tinylm' -> 'Tinylm' */
	cr_assert_eq(pthread_atfork(count_fork, NULL, NULL), 0);
	forks = 0;
	h5attr_isolate_keep(100);
	for (int i = 0; i < 20; i++) {
		h5attr_image(fake, i % 2 ? other : buf, len);
		cr_assert_not_null(p = predictor_load(fake, &e), "%s", e.msg);
		predictor_get_info(p, &got);
		predictor_free(p);
		/* each image's own strings, not those of an earlier one */
		cr_expect_eq(got.model[0], want.model[0] ^ (i % 2 ? 0x20 : 0), "%d: %s", i, got.model);
		cr_expect_str_eq(got.model + 1, want.model + 1);
		cr_expect_str_eq(got.trace, want.trace);
	}
	cr_expect_eq(forks, 1, "%d forks for 20 loads", forks);
	free(other);
	/* the predictor whose global heap crashed libhdf5: an error, and the
	 * next load reads */
	h5attr_image(fake, bbuf, blen);
	struct lif_err e2 = {0};
	cr_expect_null(p = predictor_load(fake, &e2));
	predictor_free(p);
	cr_expect(strstr(e2.msg, fake), "%s", e2.msg);
	h5attr_image(fake, buf, len);
	cr_expect_not_null(p = predictor_load(fake, &e), "%s", e.msg);
	predictor_free(p);
	h5attr_image(NULL, NULL, 0);
	h5attr_isolate_keep(0);
	expect_no_child();
	free(buf);
	free(bbuf);
	cr_expect_eq(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* A thread that opens a file and reads an attribute in a loop, taking and
 * releasing libhdf5's lock all the time, as another point of a sweep does. */
struct h5busy {
	const char *path;
	volatile int stop;
};

static void *h5_busy(void *arg)
{
	struct h5busy *b = arg;
	while (!b->stop) {
		hid_t f = H5Fopen(b->path, H5F_ACC_RDONLY, H5P_DEFAULT);
		int v = 0;
		if (f >= 0 && h5attr_get(f, "n", H5T_NATIVE_INT, 0, &v) == 0 && v != 7)
			abort();
		if (f >= 0)
			H5Fclose(f);
	}
	return NULL;
}

/* The probe of h5attr_isolate: the file's attribute "n" in the child. */
static int probe_n(const char *path, void *arg, struct lif_err *err)
{
	(void)arg;
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	int v = 0, ok = f >= 0 && h5attr_get(f, "n", H5T_NATIVE_INT, 0, &v) == 0 && v == 7;
	if (f >= 0)
		H5Fclose(f);
	return ok ? 0 : err_set(err, ERR_FORMAT, "%s: no n = 7", path);
}

/* A child forked while another thread held libhdf5's lock inherited it held
 * and waited for it until the time limit: 197 of 200 string reads failed
 * that way beside such a thread (a sweep's points load their inputs side by
 * side). The children are forked with the lock this thread's own. */
Test(isolate, reads_beside_a_thread_using_libhdf5_do_not_wait_for_its_lock, .init = tu_init)
{
	setenv("LIFSIM_HDF5_TIME_LIMIT", "2", 1);
	struct h5busy b = {.path = tu_path("busy.h5")};
	hid_t f = H5Fcreate(b.path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	int n = 7;
	cr_assert(f >= 0);
	cr_assert_eq(h5attr_put_str(f, "s", "lifsim-predictor"), 0);
	cr_assert_eq(h5attr_put(f, "n", H5T_NATIVE_INT, 0, &n), 0);
	H5Fclose(f);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, h5_busy, &b), 0);
	int bad_str = 0, bad_probe = 0;
	for (int i = 0; i < 100; i++) {
		char buf[64] = "";
		f = H5Fopen(b.path, H5F_ACC_RDONLY, H5P_DEFAULT);
		bad_str += h5attr_get_str(f, "s", buf, sizeof buf) != 0 ||
			   strcmp(buf, "lifsim-predictor") != 0;
		H5Fclose(f);
		struct lif_err e = {0};
		bad_probe += h5attr_isolate(b.path, probe_n, NULL, 0, &e) != 0;
	}
	b.stop = 1;
	pthread_join(t, NULL);
	cr_expect_eq(bad_str, 0, "%d of 100 string reads failed", bad_str);
	cr_expect_eq(bad_probe, 0, "%d of 100 isolated reads failed", bad_probe);
	expect_no_child();
}
