/* calibrate: the fit recovers known parameters; measurement and warnings. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "models/device.h"
#include "sim/real/calib.h"
#include "sim/real/wfile.h"
#include "tests/testutil.h"

/* Points on a 9 x 7 grid from known parameters, with multiplicative noise
 * of +-noise (deterministic). */
static int synth_points(const struct flash_params *truth, double noise, struct calib_point *p)
{
	struct flash_model m = {.kind = FLASH_PARAMETRIC, .par = *truth};
	int n = 0;
	uint64_t s = 11;
	for (int c = 0; c < 9; c++)
		for (int q = 0; q < 7; q++, n++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			double u = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
			int64_t b = 4096LL << c;
			double x = flash_throughput_bytes_per_s(&m, b, 1 << q) * (1 + noise * u);
			memset(&p[n], 0, sizeof p[n]);
			p[n].chunk_bytes = b, p[n].parallelism = 1 << q;
			p[n].mib_per_s = x / 1048576.0, p[n].iops = x / b;
			p[n].lat_us_mean = (1 << q) / p[n].iops * 1e6;
		}
	return n;
}

Test(calib, fit_recovers_known_parameters_from_exact_points)
{
	const struct flash_params truth = {40, 3e9, 8e4, 1.5e9, 4096, 2.5};
	struct calib_point p[63];
	struct flash_params got;
	struct lif_err e = {0};
	double rms;
	int n = synth_points(&truth, 0, p);
	cr_assert_eq(calib_fit(p, n, 4096, NULL, &got, &rms, &e), 0, "%s", e.msg);
	cr_expect_lt(rms, 1e-4);
	cr_expect_lt(fabs(got.t0_us / truth.t0_us - 1), 0.01, "t0 %g", got.t0_us);
	cr_expect_lt(fabs(got.xfer_bytes_per_s / truth.xfer_bytes_per_s - 1), 0.01, "xfer %g", got.xfer_bytes_per_s);
	cr_expect_lt(fabs(got.iops_max / truth.iops_max - 1), 0.01, "iops %g", got.iops_max);
	cr_expect_lt(fabs(got.max_bytes_per_s / truth.max_bytes_per_s - 1), 0.01, "bmax %g", got.max_bytes_per_s);
	cr_expect_lt(fabs(got.softmin_p / truth.softmin_p - 1), 0.02, "p %g", got.softmin_p);
	cr_expect_eq(got.alignment_bytes, 4096);
}

Test(calib, fit_with_noisy_points_stays_near_the_truth)
{
	const struct flash_params truth = {37, 2e9, 8.5e4, 1.3e9, 4096, 2};
	struct calib_point p[63];
	struct flash_params got;
	struct lif_err e = {0};
	double rms;
	int n = synth_points(&truth, 0.05, p);
	cr_assert_eq(calib_fit(p, n, 4096, NULL, &got, &rms, &e), 0, "%s", e.msg);
	cr_expect_lt(rms, 0.05);
	cr_expect_lt(fabs(got.iops_max / truth.iops_max - 1), 0.1, "iops %g", got.iops_max);
	cr_expect_lt(fabs(got.max_bytes_per_s / truth.max_bytes_per_s - 1), 0.1, "bmax %g", got.max_bytes_per_s);
	cr_expect_lt(fabs(got.t0_us / truth.t0_us - 1), 0.15, "t0 %g", got.t0_us);
	for (int i = 0; i < n; i++) /* residuals are ln(measured / fit) */
		cr_expect_lt(fabs(p[i].residual - log(p[i].mib_per_s / p[i].fit_mib_per_s)), 1e-9);
}

/* Points from a device whose bandwidth and request caps are far above any
 * measured rate: the fit cannot bound them, and what it writes must stay
 * within what a device profile accepts (the loader's bounds). */
Test(calib, fit_keeps_caps_the_points_never_reach_within_the_profile_bounds)
{
	const struct flash_params truth = {40, 3e9, 1e36, 1e36, 4096, 2.5};
	struct calib_point p[63];
	struct flash_params got;
	struct lif_err e = {0};
	double rms;
	int n = synth_points(&truth, 0, p);
	cr_assert_eq(calib_fit(p, n, 4096, NULL, &got, &rms, &e), 0, "%s", e.msg);
	cr_expect_lt(rms, 0.01);
	cr_expect(isfinite(got.iops_max) && got.iops_max <= CALIB_MAX_RATE, "iops %g", got.iops_max);
	cr_expect(isfinite(got.max_bytes_per_s) && got.max_bytes_per_s <= CALIB_MAX_RATE, "bmax %g",
		  got.max_bytes_per_s);
	cr_expect(got.t0_us > 0 && got.t0_us <= CALIB_MAX_T0_US, "t0 %g", got.t0_us);
	cr_expect_lt(fabs(got.t0_us / truth.t0_us - 1), 0.01, "t0 %g", got.t0_us);
	cr_expect_lt(fabs(got.xfer_bytes_per_s / truth.xfer_bytes_per_s - 1), 0.01, "xfer %g",
		     got.xfer_bytes_per_s);
}

Test(calib, fit_needs_five_points)
{
	struct calib_point p[4] = {0};
	struct flash_params got;
	struct lif_err e = {0};
	double rms;
	cr_expect_eq(calib_fit(p, 4, 4096, NULL, &got, &rms, &e), ERR_INVAL);
	cr_expect(strstr(e.msg, "at least 5 points"), "%s", e.msg);
}

Test(calib, a_point_counts_its_requests_and_refuses_chunks_larger_than_the_file, .init = tu_init)
{
	struct lif_err e = {0};
	const char *path = tu_path("cal.bin");
	cr_assert_eq(wfile_write_random(path, 4 << 20, 1, &e), 0, "%s", e.msg);
	struct io_engine *io = io_open("mem", path, 1, 0, &e);
	struct calib_point p;
	cr_assert(io, "%s", e.msg);
	cr_assert_eq(calib_measure(io, 65536, 0, 0.01, 1, NULL, &p, &e), 0, "%s", e.msg);
	cr_expect_gt(p.requests, 0);
	cr_expect_eq(p.chunk_bytes, 65536);
	cr_expect_gt(p.mib_per_s, 0);
	cr_expect_geq(p.lat_us_p99, 0);
	cr_expect_eq(p.parallelism, 1);
	cr_expect_lt(fabs(p.iops * 65536 / 1048576.0 - p.mib_per_s), 1e-6 * p.mib_per_s);
	cr_expect_neq(calib_measure(io, 8 << 20, 0, 0.01, 1, NULL, &p, &e), 0);
	cr_expect(strstr(e.msg, "fit in"), "%s", e.msg);
	io_close(io);
}

Test(calib, warnings_name_the_cache_and_littles_law)
{
	struct calib_point p = {.mib_per_s = 20000, .lat_us_mean = 2, .little_ratio = 0.5};
	char w[512];
	calib_point_warnings(&p, w, sizeof w);
	cr_expect(strstr(w, "above what a disk serves"), "%s", w);
	cr_expect(strstr(w, "below a device's"), "%s", w);
	cr_expect(strstr(w, "Little's law off"), "%s", w);
	p = (struct calib_point){.mib_per_s = 800, .lat_us_mean = 40, .little_ratio = 1.05};
	calib_point_warnings(&p, w, sizeof w);
	cr_expect_str_empty(w);
}

Test(calib, command_line_errors_are_clear, .init = tu_init)
{
	char out[4096];
	cr_expect_neq(tu_lifsim(out, sizeof out, "calibrate --make-file %s", tu_path("x.bin")), 0);
	cr_expect(strstr(out, "--make-file needs --size"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "calibrate --file %s -o %s --engines aio",
				tu_path("x.bin"), tu_path("p.ini")), 0);
	cr_expect(strstr(out, "unknown engine 'aio'"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "calibrate --file %s -o %s", tu_path("none.bin"),
				tu_path("p.ini")), 0);
	cr_expect(strstr(out, "none.bin: cannot open"), "%s", out);
}

Test(calib, a_measured_profile_loads_back, .init = tu_init)
{
	char out[8192];
	cr_assert_eq(tu_lifsim(out, sizeof out, "calibrate --make-file %s --size 8MiB", tu_path("c.bin")), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q calibrate --file %s -o %s --engines mem "
			       "--chunks 4KiB,16KiB,64KiB --parallelism 1,2 --seconds 0.005 --arena 0",
			       tu_path("c.bin"), tu_path("m.ini")), 0, "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "device %s --chunks 16KiB --parallelism 2",
			       tu_path("m.ini")), 0, "%s", out);
	FILE *f = fopen(tu_path("m.raw.csv"), "r");
	char line[512];
	cr_assert(f && fgets(line, sizeof line, f));
	cr_expect(!strncmp(line, "engine,chunk_bytes,parallelism,mib_per_s,iops,lat_us_mean,lat_us_p99", 68), "%s", line);
	int rows = 0;
	while (fgets(line, sizeof line, f))
		rows++;
	fclose(f);
	cr_expect_eq(rows, 7); /* 3 x 2 random + 1 sequential */
	/* three passes keep one row per point (each point's median pass) */
	cr_assert_eq(tu_lifsim(out, sizeof out, "-q calibrate --file %s -o %s --engines mem "
			       "--chunks 4KiB,16KiB,64KiB --parallelism 1,2 --seconds 0.005 --passes 3 --arena 8MiB",
			       tu_path("c.bin"), tu_path("m3.ini")), 0, "%s", out);
	f = fopen(tu_path("m3.raw.csv"), "r");
	rows = 0;
	while (f && fgets(line, sizeof line, f))
		rows++;
	if (f)
		fclose(f);
	cr_expect_eq(rows, 8);
	cr_expect_neq(tu_lifsim(out, sizeof out, "calibrate --file %s -o %s --passes 0", tu_path("c.bin"),
				tu_path("m4.ini")), 0);
	cr_expect(strstr(out, "--passes"), "%s", out);
}

Test(calib, compute_command_line_errors_are_clear, .init = tu_init)
{
	char out[4096];
	cr_expect_eq(tu_lifsim(out, sizeof out, "calibrate --compute -o %s", tu_path("c.ini")), 2);
	cr_expect(strstr(out, "--compute needs --profile DEVICE.ini and -o NEW.ini"), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "calibrate --compute --profile %s -o %s --file x",
			       tu_src("models/devices/m1max.ini"), tu_path("c.ini")), 2);
	cr_expect_neq(tu_lifsim(out, sizeof out, "calibrate --compute --profile %s -o %s",
				tu_path("none.ini"), tu_path("c.ini")), 0);
	cr_expect(strstr(out, "none.ini"), "%s", out);
	cr_expect_eq(access(tu_path("c.ini"), F_OK), -1);
}

/* The measurement itself (not timed: only that it measures something) and a
 * profile carrying a GEMV table reads back to the same table. */
Test(calib, a_gemv_table_is_measured_and_reads_back, .init = tu_init)
{
	cr_expect_gt(calib_gemv_bytes_per_s(64, 64, 3, 0), 0);
	cr_expect_gt(calib_gemv_bytes_per_s(64, 64, 3, 1 << 20), 0); /* cold: 65 copies cycled */
	cr_expect_gt(calib_sgemm_flops_per_s(32, 3), 0);
	struct device d;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/m1max.ini"), &d, &e), 0, "%s", e.msg);
	double b[3] = {262144, 4194304, 67108864}, r[3] = {3e10, 2e10, 6e9};
	memcpy(d.compute.gemv_bytes, b, sizeof b), memcpy(d.compute.gemv_bytes_per_s, r, sizeof r);
	d.compute.n_gemv_bytes = d.compute.n_gemv_rate = 3;
	d.compute.kernel_overhead_us = 4.5;
	cr_assert_eq(device_write_ini(tu_path("g.ini"), &d, &e), 0, "%s", e.msg);
	struct device g;
	cr_assert_eq(device_load(tu_path("g.ini"), &g, &e), 0, "%s", e.msg);
	cr_expect_eq(g.compute.n_gemv_bytes, 3);
	cr_expect_eq(memcmp(g.compute.gemv_bytes, b, sizeof b), 0);
	cr_expect_eq(memcmp(g.compute.gemv_bytes_per_s, r, sizeof r), 0);
	cr_expect_eq(g.compute.kernel_overhead_us, 4.5);
}

/* bench/predict.sh refuses a BLAS_THREADS that is not a thread count before
 * it does anything (LIFSIM=/bin/false: nothing else may run). */
Test(calib, predict_script_refuses_a_bad_blas_thread_count)
{
	const char *bad[] = {"x", "0", "01", "2x", "-1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char cmd[8192], out[1024];
		snprintf(cmd, sizeof cmd, "BLAS_THREADS='%s' LIFSIM=/bin/false bash '%s' 2>&1",
			 bad[i], tu_src("bench/predict.sh"));
		FILE *p = popen(cmd, "r");
		cr_assert(p);
		size_t n = fread(out, 1, sizeof out - 1, p);
		out[n] = '\0';
		int st = pclose(p);
		char want[128];
		snprintf(want, sizeof want, "BLAS_THREADS='%s' is not a thread count", bad[i]);
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: status %d: %s", bad[i], st, out);
		cr_expect(strstr(out, want) != NULL, "%s: %s", bad[i], out);
	}
}
