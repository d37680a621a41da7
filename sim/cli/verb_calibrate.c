/* lifsim calibrate: measure the host SSD and DRAM, fit a device profile
 * (sim/real/calib.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/device.h"
#include "sim/base/atomic.h"
#include "sim/base/hostinfo.h"
#include "sim/base/util.h"
#include "sim/real/calib.h"
#include "sim/cli/verbs.h"
#include "sim/sweep/kinds.h"
#include "sim/real/wfile.h"

#define VERB "calibrate"
#define MAX_LIST 32

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lifsim calibrate --file F -o PROFILE.ini [--chunks LIST] [--parallelism LIST]\n"
		"                        [--engines LIST] [--seconds S] [--passes N] [--arena BYTES]\n"
		"                        [--seed N]\n"
		"       lifsim calibrate --make-file F --size BYTES\n"
		"       lifsim calibrate --compute --profile DEVICE.ini -o NEW.ini\n\n"
		"Measure random O_DIRECT reads of file F (filled with real data: make one with\n"
		"--make-file; a fresh fallocate reads zeros at memory speed) over every (chunk,\n"
		"parallelism, engine), interleaving the engines, plus one sequential point (4 MiB\n"
		"reads, 8 deep) for the sequential rate. Fit the parametric flash model (log\n"
		"throughput, GSL nonlinear least squares) to every point and write:\n"
		"  PROFILE.ini          [flash] model = parametric (the fit) and the tabulated form\n"
		"                       (the first engine's measurements); [dram] copy_bytes_per_s\n"
		"                       measured (median memcpy of 256 MiB), per_op_ns = 0\n"
		"                       [assumption]; [compute] flops_per_s and mem_bytes_per_s\n"
		"                       measured by single-thread sgemv (256x256 in cache, 4096x4096)\n"
		"  PROFILE.raw.csv      engine,chunk_bytes,parallelism,mib_per_s,iops,lat_us_mean,\n"
		"                       lat_us_p99,little_ratio,pattern,requests,seconds,\n"
		"                       fit_mib_per_s,residual   (residual = ln(measured / fit))\n"
		"Warnings go to stderr for points that look like a cache (> 10 GB/s or < 5 us) or\n"
		"break Little's law (iops * latency / parallelism off 1 by > 25%%).\n\n"
		"options:\n"
		"  --chunks LIST       default 4KiB,8KiB,...,1MiB\n"
		"  --parallelism LIST  default 1,2,4,8,16,32,64\n"
		"  --engines LIST      default io_uring,psync (mem is for tests)\n"
		"  --seconds S         per point (default 0.3)\n"
		"  --passes N          measure the whole grid N times and keep each point's\n"
		"                      median pass (default 1; the disk here drifts 2-4x)\n"
		"  --arena BYTES       reads land in a ring of this much DRAM (default 1GiB, as\n"
		"                      replay and validate; 0: in 2 x parallelism reused buffers,\n"
		"                      as fio's, which this host serves up to 2x slower)\n"
		"  --no-fit            only the grid (writes PROFILE.raw.csv; no sequential point,\n"
		"                      no profile)\n"
		"  --sequential        only the sequential point (writes PROFILE.raw.csv)\n"
		"  --make-file F --size BYTES  write F with random data (atomic; refuses when the\n"
		"                      disk lacks room)\n"
		"  --compute           measure this host's compute instead of its SSD: the median\n"
		"                      achieved GEMV rate (OpenBLAS sgemv, fp32) of matrices\n"
		"                      from 256 KiB to 256 MiB, each call on a matrix out of\n"
		"                      the caches (copies cycled over 512 MiB, as a token reads\n"
		"                      each weight once; --passes N: each size's median of N\n"
		"                      passes over the sizes), and the sgemm rate of 512 x 512\n"
		"                      matrices; write a copy of --profile DEVICE.ini with\n"
		"                      [compute] gemv_bytes, gemv_bytes_per_s, flops_per_s (sgemm) and\n"
		"                      mem_bytes_per_s (the largest matrix's sgemv rate) replaced\n"
		"                      (models/compute.h: the per-operation model uses them), and\n"
		"                      [dram] convert_bytes_per_s (the replay's fp16 -> fp32\n"
		"                      conversion of 64 MiB, one thread, out of the caches) and\n"
		"                      [compute] cores and threads (sysconf, OpenBLAS) set\n"
		"  --profile DEVICE.ini  with --compute: the profile to copy\n");
}

static int parse_list(const char *opt, const char *s, int bytes, long long *v, int *n)
{
	size_t k;
	char **items = conf_list_split(s, &k);
	int rc = 0;
	if (!items || k > MAX_LIST || k == 0) {
		conf_list_free(items, items ? k : 0);
		return cli_failf(VERB, "%s: expected 1 to %d values", opt, MAX_LIST);
	}
	for (size_t i = 0; i < k && !rc; i++) {
		int bad = bytes ? conf_parse_bytes(items[i], &v[i]) : conf_parse_int(items[i], &v[i]);
		if (bad || v[i] < 1 || (!bytes && v[i] > IO_MAX_PARALLELISM))
			rc = cli_failf(VERB, "%s: '%s' is not %s", opt, items[i],
				       bytes ? "a byte size (e.g. 16KiB)" : "a parallelism in [1, 1024]");
		if (!rc && i && v[i] <= v[i - 1])
			rc = cli_failf(VERB, "%s: values must increase", opt);
	}
	*n = (int)k;
	conf_list_free(items, k);
	return rc;
}

static int write_raw(const char *path, const struct calib_point *p, int n, struct lif_err *err)
{
	struct atomic_file af;
	if (atomic_open(&af, path, err))
		return err->code;
	fprintf(af.fp, "engine,chunk_bytes,parallelism,mib_per_s,iops,lat_us_mean,lat_us_p99,"
		       "little_ratio,pattern,requests,seconds,fit_mib_per_s,residual\n");
	for (int i = 0; i < n; i++)
		fprintf(af.fp, "%s,%lld,%d,%.6g,%.6g,%.6g,%.6g,%.4f,%s,%lld,%.4f,%.6g,%.4f\n", p[i].engine,
			(long long)p[i].chunk_bytes, p[i].parallelism, p[i].mib_per_s, p[i].iops,
			p[i].lat_us_mean, p[i].lat_us_p99, p[i].little_ratio,
			p[i].sequential ? "sequential" : "random", (long long)p[i].requests, p[i].seconds,
			p[i].fit_mib_per_s, p[i].residual);
	return atomic_commit(&af, err);
}

/* The tabulated form from engine's random points, when the grid is whole. */
static void fill_table(struct flash_table *t, const struct calib_point *p, int n,
		       const char *engine, const long long *ch, int nc, const long long *par, int np)
{
	memset(t, 0, sizeof *t);
	if (nc > FLASH_MAX_CHUNKS || np > FLASH_MAX_PARALLELISM || nc < 1)
		return;
	int found = 0;
	for (int i = 0; i < n; i++)
		for (int a = 0; a < nc && !p[i].sequential && !strcmp(p[i].engine, engine); a++)
			for (int b = 0; b < np; b++)
				if (p[i].chunk_bytes == ch[a] && p[i].parallelism == par[b]) {
					t->bytes_per_s[a * np + b] = p[i].mib_per_s * 1048576.0;
					found++;
				}
	if (found != nc * np)
		return (void)memset(t, 0, sizeof *t);
	t->n_chunks = nc, t->n_parallelism = np;
	for (int a = 0; a < nc; a++)
		t->chunk_bytes[a] = (double)ch[a];
	for (int b = 0; b < np; b++)
		t->parallelism[b] = (double)par[b];
}

struct opts {
	const char *file, *out, *make;
	long long size, seed;
	long long chunks[MAX_LIST], par[MAX_LIST];
	char engines[4][16];
	int nc, np, ne, nofit, seq_only, passes, compute;
	const char *profile;
	int64_t arena_bytes; /* 0: no arena */
	struct io_arena *arena;
	double seconds;
};

/* One pass over the grid (depth-major, engines interleaved) and the
 * sequential point, into pts; returns the number of points. */
static int measure_pass(const struct opts *o, const struct cli_global *g, int pass,
			struct calib_point *pts, int *npts, long long *done, long long total,
			struct lif_err *err)
{
	int n = 0, rc = 0;
	for (int b = 0; !rc && !o->seq_only && b < o->np; b++) {
		struct io_engine *e[4] = {0};
		for (int k = 0; !rc && k < o->ne; k++)
			if (!(e[k] = io_open(o->engines[k], o->file, (int)o->par[b], 0, err)))
				rc = err->code;
		for (int a = 0; !rc && a < o->nc; a++)
			for (int k = 0; !rc && k < o->ne; k++) { /* engines interleaved */
				rc = calib_measure(e[k], o->chunks[a], 0, o->seconds,
						   (uint64_t)o->seed + (uint64_t)n + 7919ULL * (uint64_t)pass,
						   o->arena, &pts[n], err);
				n += !rc;
				cli_progress(g, "calibrate", ++*done, total);
			}
		for (int k = 0; k < o->ne; k++)
			io_close(e[k]);
	}
	const int want_seq = !o->nofit || o->seq_only;
	struct io_engine *s = rc || !want_seq ? NULL : io_open(o->engines[0], o->file, 8, 0, err);
	if (!rc && want_seq && !s)
		rc = err->code;
	if (!rc && s && io_file_bytes(s) >= 4 << 20)
		rc = calib_measure(s, 4 << 20, 1, o->seconds * 2, (uint64_t)pass, o->arena, &pts[n], err),
		n += !rc;
	io_close(s);
	*npts = n;
	return rc;
}

static int cmp_mib(const void *a, const void *b)
{
	double x = ((const struct calib_point *)a)->mib_per_s, y = ((const struct calib_point *)b)->mib_per_s;
	return (x > y) - (x < y);
}

/* Every point in every pass; each point's median pass (by throughput) is
 * kept, so a burst or a slump of the shared disk during one pass does not
 * become the profile. */
static int measure_all(const struct opts *o, const struct cli_global *g, struct calib_point *pts,
		       int *npts, struct lif_err *err)
{
	const int per = o->nc * o->np * o->ne + 1, P = o->passes;
	const long long total = (long long)(per - 1 + !o->nofit) * P;
	struct calib_point *all = calloc((size_t)per * P, sizeof *all), *one = calloc((size_t)P, sizeof *one);
	long long done = 0;
	int n = 0, rc = all && one ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	for (int q = 0; !rc && q < P; q++)
		rc = measure_pass(o, g, q, all + (size_t)q * per, &n, &done, total, err);
	for (int i = 0; !rc && i < n; i++) {
		for (int q = 0; q < P; q++)
			one[q] = all[(size_t)q * per + i];
		qsort(one, (size_t)P, sizeof *one, cmp_mib);
		pts[i] = one[P / 2];
	}
	cli_progress(g, "calibrate", total, total);
	free(all), free(one);
	*npts = rc ? 0 : n;
	return rc;
}

static int calibrate(const struct opts *o, const struct cli_global *g)
{
	struct lif_err err = {0};
	struct calib_point *pts = calloc((size_t)o->nc * o->np * o->ne + 1, sizeof *pts);
	int n = 0;
	if (!pts)
		return cli_errorf(VERB, "out of memory");
	struct opts m = *o;
	if (o->arena_bytes > 0 && !(m.arena = io_arena_new(o->arena_bytes, &err))) {
		free(pts);
		return cli_fail(VERB, &err);
	}
	int rc = measure_all(&m, g, pts, &n, &err);
	io_arena_free(m.arena);
	struct device d;
	memset(&d, 0, sizeof d);
	double rms = 0;
	if (!rc && !o->nofit)
		rc = calib_fit(pts, n, 4096, NULL, &d.flash.par, &rms, &err);
	char raw[4200];
	snprintf(raw, sizeof raw, "%.*s.raw.csv",
		 (int)(strlen(o->out) > 4 && !strcmp(o->out + strlen(o->out) - 4, ".ini")
			       ? strlen(o->out) - 4 : strlen(o->out)), o->out);
	if (!rc)
		rc = write_raw(raw, pts, n, &err);
	for (int i = 0; !rc && i < n; i++) {
		char w[512];
		calib_point_warnings(&pts[i], w, sizeof w);
		if (w[0])
			fprintf(stderr, "lifsim calibrate: WARNING %s %lld B x %d: %s\n", pts[i].engine,
				(long long)pts[i].chunk_bytes, pts[i].parallelism, w);
	}
	if (!rc && !o->nofit) {
		const char *base = strrchr(o->out, '/') ? strrchr(o->out, '/') + 1 : o->out;
		snprintf(d.name, sizeof d.name, "%.*s", (int)strcspn(base, "."), base);
		d.flash.kind = FLASH_PARAMETRIC;
		fill_table(&d.flash.tab, pts, n, o->engines[0], o->chunks, o->nc, o->par, o->np);
		d.dram.copy_bytes_per_s = calib_copy_bytes_per_s(256 << 20, 9);
		d.dram.per_op_ns = 0;
		d.compute.flops_per_s = calib_sgemv_flops_per_s(256, 256, 201);
		d.compute.mem_bytes_per_s = calib_sgemv_flops_per_s(4096, 4096, 9) * 2; /* 4 B per 2 flop */
		rc = device_check(&d, &err) || device_write_ini(o->out, &d, &err);
	}
	if (!rc && !g->quiet) {
		const struct flash_params *p = &d.flash.par;
		if (!o->nofit)
			printf("fit: t0_us=%.4g xfer_bytes_per_s=%.4g iops_max=%.4g max_bytes_per_s=%.4g "
			       "softmin_p=%.3g; rms residual %.1f%% (log)\n"
			       "dram copy %.3g B/s; sgemv %.3g flop/s, %.3g B/s\nwrote %s and %s\n",
			       p->t0_us, p->xfer_bytes_per_s, p->iops_max, p->max_bytes_per_s,
			       p->softmin_p, 100 * rms, d.dram.copy_bytes_per_s, d.compute.flops_per_s,
			       d.compute.mem_bytes_per_s, o->out, raw);
		if (n && pts[n - 1].sequential)
			printf("sequential (4 MiB x 8): %.1f MiB/s\n", pts[n - 1].mib_per_s);
	}
	free(pts);
	return rc ? cli_fail(VERB, &err) : 0;
}

/* --compute: the GEMV table and GEMM rate of this host into a copy of a profile. */
static int calibrate_compute(const struct opts *o, const struct cli_global *g)
{
	/* (rows, cols) of the fp32 matrices: 256 KiB .. 256 MiB */
	static const int shape[][2] = {{256, 256},   {512, 512},   {1024, 1024},
				       {2048, 2048}, {4096, 4096}, {4096, 16384}};
	const int n = (int)(sizeof shape / sizeof shape[0]);
	struct lif_err err = {0};
	struct device d;
	if (device_load(o->profile, &d, &err))
		return cli_fail(VERB, &err);
	d.compute.n_gemv_bytes = d.compute.n_gemv_rate = n;
	/* --passes: the sizes measured in turn, pass after pass, each size's
	 * median pass kept (a shared machine's load moves from second to second) */
	double r[99][COMPUTE_MAX_GEMV];
	for (int k = 0; k < o->passes; k++)
		for (int i = 0; i < n; i++) {
			double bytes = 4.0 * shape[i][0] * shape[i][1];
			int rep = bytes <= 1 << 20 ? 201 : bytes <= 16 << 20 ? 51 : 11;
			d.compute.gemv_bytes[i] = bytes;
			r[k][i] = calib_gemv_bytes_per_s(shape[i][0], shape[i][1], rep, CALIB_GEMV_COLD_BYTES);
			if (!(r[k][i] > 0))
				return cli_errorf(VERB, "out of memory measuring a %.0f-byte GEMV", bytes);
		}
	for (int i = 0; i < n; i++) {
		double v[99];
		for (int k = 0; k < o->passes; k++)
			v[k] = r[k][i];
		qsort(v, (size_t)o->passes, sizeof *v, util_cmp_double);
		d.compute.gemv_bytes_per_s[i] = v[o->passes / 2];
	}
	d.compute.flops_per_s = calib_sgemm_flops_per_s(512, 21);
	d.compute.mem_bytes_per_s = d.compute.gemv_bytes_per_s[n - 1];
	/* the stored-to-held conversion (fp16 -> fp32, 64 MiB of fp16 rows) and
	 * the CPU the reader shares with the kernels (models/dram.h, compute.h) */
	{
		double v[99];
		for (int k = 0; k < o->passes; k++)
			if (!((v[k] = calib_convert_bytes_per_s(64LL << 20, 7)) > 0))
				return cli_errorf(VERB, "out of memory measuring the fp16 -> fp32 conversion");
		qsort(v, (size_t)o->passes, sizeof *v, util_cmp_double);
		d.dram.convert_bytes_per_s = v[o->passes / 2];
	}
	d.compute.cores = calib_cores();
	d.compute.threads = calib_blas_threads() > 0 && calib_blas_threads() <= 4096 ? calib_blas_threads() : 0;
	if (device_write_ini(o->out, &d, &err))
		return cli_fail(VERB, &err);
	if (!g->quiet) {
		printf("cores %d, OpenBLAS threads %d; fp16 -> fp32 conversion %.3g B/s (fp16 bytes); "
		       "sgemm 512: %.3g flop/s\n%12s %14s\n", d.compute.cores, calib_blas_threads(),
		       d.dram.convert_bytes_per_s, d.compute.flops_per_s, "bytes", "sgemv B/s");
		for (int i = 0; i < n; i++)
			printf("%12.0f %14.4g\n", d.compute.gemv_bytes[i], d.compute.gemv_bytes_per_s[i]);
		printf("wrote %s\n", o->out);
	}
	return 0;
}

/* --engines LIST: 1 to 4 engine names into o. Returns 0 or the usage status. */
static int parse_engines(const char *arg, struct opts *o)
{
	size_t k;
	char **items = conf_list_split(arg, &k);
	if (!items || k < 1 || k > 4)
		return conf_list_free(items, items ? k : 0),
		       cli_failf(VERB, "--engines: expected 1 to 4 names");
	o->ne = (int)k;
	for (size_t i = 0; i < k; i++) {
		if (!io_find(items[i])) {
			char choices[128];
			cli_failf(VERB, "--engines: unknown engine '%s' (choices: %s)", items[i],
				  conf_names_join(io_engine_choice, choices, sizeof choices));
			return conf_list_free(items, k), 2;
		}
		snprintf(o->engines[i], 16, "%s", items[i]);
	}
	conf_list_free(items, k);
	return 0;
}

/* --arena is [validate] arena's (bound and default) */
#define ARENA_FLAG(s) \
	cli_conf(VERB, "--arena", validate_opts, "validate", "arena", s, &o->arena_bytes)

/* Parse the command line into o: -1 to go on, else the exit status. */
static int calibrate_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"file", required_argument, 0, 'f'},	{"chunks", required_argument, 0, 'c'},
		{"parallelism", required_argument, 0, 'p'}, {"engines", required_argument, 0, 'e'},
		{"seconds", required_argument, 0, 's'}, {"make-file", required_argument, 0, 'm'},
		{"size", required_argument, 0, 'S'},	{"seed", required_argument, 0, 'r'},
		{"no-fit", no_argument, 0, 'n'},	{"help", no_argument, 0, 'h'},
		{"sequential", no_argument, 0, 'q'},	{"passes", required_argument, 0, 'P'},
		{"arena", required_argument, 0, 'A'},	{"compute", no_argument, 0, 'C'},
		{"profile", required_argument, 0, 'R'},
		{0, 0, 0, 0},
	};
	*o = (struct opts){.nc = 9, .np = 7, .ne = 2, .seconds = 0.3, .seed = 1, .passes = 1};
	long long passes;
	if (ARENA_FLAG(NULL))
		return 1;
	strcpy(o->engines[0], "io_uring"), strcpy(o->engines[1], "psync");
	for (int i = 0; i < o->nc; i++)
		o->chunks[i] = 4096LL << i;
	for (int j = 0; j < o->np; j++)
		o->par[j] = 1LL << j;
	int c;
	while ((c = cli_getopt(VERB, argc, argv, "ho:", longopts)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 0;
		case '?': return 2;
		case 'f': o->file = optarg; break;
		case 'o': o->out = optarg; break;
		case 'm': o->make = optarg; break;
		case 'n': o->nofit = 1; break;
		case 'C': o->compute = 1; break;
		case 'R': o->profile = optarg; break;
		case 'q': o->seq_only = o->nofit = 1; break;
		case 'c': if (parse_list("--chunks", optarg, 1, o->chunks, &o->nc)) return 2; break;
		case 'p': if (parse_list("--parallelism", optarg, 0, o->par, &o->np)) return 2; break;
		case 's': if (cli_double(VERB, "--seconds", optarg, 0.001, 3600, &o->seconds)) return 2; break;
		case 'r': if (cli_int(VERB, "--seed", optarg, 0, 1LL << 62, &o->seed)) return 2; break;
		case 'A': if (ARENA_FLAG(optarg)) return 2; break;
		case 'P':
			if (cli_int(VERB, "--passes", optarg, 1, 99, &passes))
				return 2;
			o->passes = (int)passes;
			break;
		case 'S':
			if (conf_parse_bytes(optarg, &o->size) || o->size < 4096)
				return cli_failf(VERB, "--size: '%s' is not a byte size >= 4KiB", optarg);
			break;
		case 'e': if (parse_engines(optarg, o)) return 2; break;
		}
	}
	if (optind != argc)
		return cli_failf(VERB, "unexpected argument '%s' (see --help)", argv[optind]);
	return -1;
}

int verb_calibrate(int argc, char **argv, const struct cli_global *g)
{
	struct opts o;
	int rc = calibrate_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.compute || o.profile) {
		if (!o.compute || !o.profile || !o.out || o.file || o.make)
			return cli_failf(VERB, "--compute needs --profile DEVICE.ini and -o NEW.ini, "
				"and no --file or --make-file (see --help)");
		rc = calibrate_compute(&o, g);
		if (!rc)
			hostinfo_warn_damon(VERB); /* about the rates just measured */
		return rc;
	}
	if (o.make) {
		struct lif_err err = {0};
		if (o.size <= 0)
			return cli_failf(VERB, "--make-file needs --size BYTES");
		o.size = o.size / 4096 * 4096;
		return wfile_write_random(o.make, o.size, (uint64_t)o.seed, &err) ? cli_fail(VERB, &err) : 0;
	}
	if (!o.file || !o.out)
		return cli_failf(VERB, "needs --file F and -o PROFILE.ini (see --help)");
	rc = calibrate(&o, g);
	if (!rc)
		hostinfo_warn_damon(VERB);
	return rc;
}
