/* lifsim bench-gemv: measure the GEMV kernels of models/gemv/gemv.h (dequantize
 * baseline, T-MAC LUT, OpenBLAS dense) over bit widths, thread counts and
 * FFN shapes, beside the DRAM read bandwidth measured in the same run. */
#include <errno.h>
#include <math.h>
#include <gsl/gsl_rng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/device.h"
#include "models/llm.h"
#include "sim/base/conf.h"
#include "sim/base/util.h"
#include "models/gemv/gemv.h"
#include "sim/base/rng.h"
#include "sim/cli/verbs.h"

#define VERB "bench-gemv"
#define MAXL 16
#define FLUSH_BYTES ((size_t)64 << 20) /* streamed before every timed call */

struct opts {
	const char *csv;
	const char *profile_in, *profile_out; /* --profile IN -o OUT */
	int bits[MAXL], nbits;
	int threads[MAXL], nthreads;
	int shape[MAXL][2], nshapes; /* d_out, d_in */
	int repeats, group, scalar, warm;
	unsigned kernels; /* bit 1 << enum gemv_kernel */
	size_t probe_bytes; /* bandwidth probe, >> any L3 */
	long long seed;
};

/* Weights multiplied and median ms summed over the shapes, per kernel
 * (dequant, lut) and bits, at the first thread count: the profile's rates. */
struct rates {
	double weights[2][COMPUTE_MAX_BITS], ms[2][COMPUTE_MAX_BITS];
};

/* One measured configuration: a kernel on a matrix with a thread count. */
struct cfg {
	enum gemv_kernel k;
	int qi, threads;  /* matrix index in the shape's list */
	double *ms;       /* (repeats) */
	double err_hat;   /* RMS |y - ŵ·x| / RMS ŵ·x: the kernel's own error */
	double err_fp32;  /* RMS |y - W·x| / RMS W·x: with the weights' rounding */
};

static const char usage_text[] =
	"usage: lifsim bench-gemv [--csv FILE] [--bits LIST] [--threads-list LIST]\n"
	"                         [--shapes LIST] [--repeats N] [--group N] [--seed N]\n"
	"                         [--model FILE] [--kernels LIST] [--probe-mib N] [--warm]\n"
	"                         [--scalar] [--profile DEVICE.ini -o NEW.ini]\n\n"
	"Time y = W·x for the dequantize baseline (llama.cpp style), the T-MAC\n"
	"table-lookup kernel and the OpenBLAS dense reference (fp32, fp16), with W of\n"
	"Gaussian weights, and measure the DRAM read bandwidth in the same run.\n"
	"Kernels are interleaved in every repeat; a 64 MiB buffer is streamed before\n"
	"each timed call so weights come from DRAM; medians of the repeats.\n\n"
	"  --csv FILE          write kernel,bits,threads,d_out,d_in,group,ms_median,gflops,\n"
	"                      weight_gb_per_s,bw_gb_per_s,bw_frac,speedup_vs_dequant,ms_min,\n"
	"                      bw_frac_best,rel_err_rms,rel_err_vs_fp32_rms,repeats\n"
	"                      (bw_frac: weight bytes per second over the DRAM read\n"
	"                      bandwidth measured with the same threads; speedup: median\n"
	"                      of dequant/lut time over repeats, lut rows only; ms_min:\n"
	"                      the fastest repeat, what a quiet machine approaches;\n"
	"                      bw_frac_best: the same ratio from the fastest repeat and\n"
	"                      the fastest 1/16 of a probe with at most as many threads;\n"
	"                      rel_err_rms: RMS error over RMS output against ŵ·x, ŵ the\n"
	"                      stored weights, i.e. the kernel's own rounding;\n"
	"                      rel_err_vs_fp32_rms: against the fp32 W·x, i.e. including\n"
	"                      the weights' quantization)\n"
	"  --bits LIST         low-bit widths, from 1,2,3,4 (default 1,2,3,4)\n"
	"  --threads-list LIST thread counts (default 1,2)\n"
	"  --shapes LIST       d_outxd_in shapes (default 4096x16384,16384x4096: the\n"
	"                      up and down projections of models/llms' d_model 4096)\n"
	"  --model FILE        shapes of a model description instead: its up projection\n"
	"                      (d_ffn x d_model) and down projection (d_model x d_ffn)\n"
	"  --repeats N         timed repeats per kernel (default 5)\n"
	"  --group N           quantization group, 32 or 64 (default 32)\n"
	"  --seed N            weight and activation seed (default 1)\n"
	"  --probe-mib N       bandwidth probe buffer in MiB (default 512; at least 64)\n"
	"  --kernels LIST      from dequant,lut,dense (default all)\n"
	"  --warm              no cache flush before timed calls: weights that fit in\n"
	"                      cache stay there, so small shapes measure compute alone\n"
	"  --scalar            force the portable path (default: AVX2 when present)\n"
	"  --profile DEVICE.ini -o NEW.ini\n"
	"                      write a copy of the device profile with the measured\n"
	"                      [compute] lut_weights_per_s and dequant_weights_per_s (bits\n"
	"                      1..4: weights multiplied per second over all the shapes, at\n"
	"                      the first --threads-list count), the simulator's compute\n"
	"                      model for [sim] bits > 0; needs --bits 1,2,3,4 and both\n"
	"                      low-bit kernels\n";

static int parse_ints(const char *opt, const char *s, int min, int max, int *out, int *n)
{
	size_t cnt;
	char **v = conf_list_split(s, &cnt);
	int rc = 0;
	if (!v || cnt == 0 || cnt > MAXL)
		rc = cli_failf(VERB, "%s: '%s' is not a list of 1 to %d values", opt, s, MAXL);
	for (size_t i = 0; !rc && i < cnt; i++) {
		long long t;
		if (cli_int(VERB, opt, v[i], min, max, &t))
			rc = 1;
		out[i] = (int)t;
	}
	*n = (int)cnt;
	conf_list_free(v, v ? cnt : 0);
	return rc;
}

static int parse_kernels(const char *s, unsigned *mask)
{
	size_t cnt;
	char **v = conf_list_split(s, &cnt);
	int rc = !v || cnt == 0 ? cli_failf(VERB, "--kernels: '%s' is not a list of kernels", s) : 0;
	*mask = 0;
	for (size_t i = 0; !rc && i < cnt; i++) {
		int k = gemv_kernel_by_name(v[i]);
		if (k < 0)
			rc = cli_failf(VERB, "--kernels: '%s' is not one of dequant, lut, dense", v[i]);
		else
			*mask |= 1u << k;
	}
	conf_list_free(v, v ? cnt : 0);
	return rc;
}

static int parse_shapes(const char *s, struct opts *o)
{
	size_t cnt;
	char **v = conf_list_split(s, &cnt);
	int rc = 0;
	if (!v || cnt == 0 || cnt > MAXL)
		rc = cli_failf(VERB, "--shapes: '%s' is not a list of 1 to %d shapes", s, MAXL);
	for (size_t i = 0; !rc && i < cnt; i++) {
		int a, b, used = 0;
		if (sscanf(v[i], "%dx%d%n", &a, &b, &used) != 2 || v[i][used] || a < 1 || b < 1 ||
		    a > (1 << 20) || b > (1 << 20))
			rc = cli_failf(VERB, "--shapes: '%s' is not D_OUTxD_IN (e.g. 4096x16384)", v[i]);
		else
			o->shape[i][0] = a, o->shape[i][1] = b;
	}
	o->nshapes = (int)cnt;
	conf_list_free(v, v ? cnt : 0);
	return rc;
}

static int parse_model(const char *path, struct opts *o)
{
	struct llm_desc d;
	struct lif_err e = {0};
	char found[PATH_CAP];
	if (!cli_path(VERB, PATH_MODEL, path, found, sizeof found))
		return 1;
	if (llm_load(found, &d, &e))
		return cli_fail(VERB, &e);
	o->shape[0][0] = d.d_ffn, o->shape[0][1] = d.d_model; /* up (and gate) */
	o->shape[1][0] = d.d_model, o->shape[1][1] = d.d_ffn; /* down */
	o->nshapes = 2;
	return 0;
}

/* One option; returns 0, or non-zero after printing the error. */
static int set_opt(int c, const char *arg, struct opts *o)
{
	long long t = 0;
	switch (c) {
	case 'c': o->csv = arg; return 0;
	case 'P': o->profile_in = arg; return 0;
	case 'o': o->profile_out = arg; return 0;
	case 'b': return parse_ints("--bits", arg, 1, 4, o->bits, &o->nbits);
	case 't': return parse_ints("--threads-list", arg, 1, 1024, o->threads, &o->nthreads);
	case 's': return parse_shapes(arg, o);
	case 'm': return parse_model(arg, o);
	case 'k': return parse_kernels(arg, &o->kernels);
	case 'x': o->scalar = 1; return 0;
	case 'w': o->warm = 1; return 0;
	case 'r':
		if (cli_int(VERB, "--repeats", arg, 1, 1000, &t))
			return CLI_EXIT_USAGE;
		o->repeats = (int)t;
		return 0;
	case 'g':
		if (strcmp(arg, "32") && strcmp(arg, "64"))
			return cli_failf(VERB, "--group: '%s' is not 32 or 64", arg);
		o->group = atoi(arg);
		return 0;
	case 'S':
		if (cli_int(VERB, "--seed", arg, 0, 1LL << 62, &t))
			return CLI_EXIT_USAGE;
		o->seed = t;
		return 0;
	case 'p':
		if (cli_int(VERB, "--probe-mib", arg, 64, 1 << 20, &t))
			return CLI_EXIT_USAGE;
		o->probe_bytes = (size_t)t << 20;
		return 0;
	default: return CLI_EXIT_USAGE; /* cli_getopt printed the error */
	}
}

/* Returns 0 to run, -1 after --help, 2 on a bad option (message printed). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"csv", required_argument, 0, 'c'},       {"bits", required_argument, 0, 'b'},
		{"threads-list", required_argument, 0, 't'}, {"shapes", required_argument, 0, 's'},
		{"repeats", required_argument, 0, 'r'},   {"group", required_argument, 0, 'g'},
		{"seed", required_argument, 0, 'S'},      {"scalar", no_argument, 0, 'x'},
		{"probe-mib", required_argument, 0, 'p'}, {"model", required_argument, 0, 'm'},
		{"warm", no_argument, 0, 'w'},            {"kernels", required_argument, 0, 'k'},
		{"profile", required_argument, 0, 'P'},   {"output", required_argument, 0, 'o'},
		{"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
	int c;
	*o = (struct opts){.bits = {1, 2, 3, 4}, .nbits = 4, .threads = {1, 2}, .nthreads = 2,
			   .shape = {{4096, 16384}, {16384, 4096}}, .nshapes = 2, .repeats = 5,
			   .group = 32, .seed = 1, .probe_bytes = (size_t)512 << 20, .kernels = 7};
	optind = 1;
	while ((c = cli_getopt(VERB, argc, argv, "ho:", lo)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			return -1;
		}
		if (set_opt(c, optarg, o))
			return 2;
	}
	if (optind < argc) {
		cli_failf(VERB, "unexpected argument '%s' (see lifsim %s --help)", argv[optind], VERB);
		return 2;
	}
	if (!o->profile_in != !o->profile_out) {
		cli_failf(VERB, "--profile and -o go together (the profile read and the one written)");
		return 2;
	}
	if (o->profile_in && (o->nbits != 4 || (o->kernels & 3u) != 3u)) {
		cli_failf(VERB, "--profile needs every bit width 1,2,3,4 and both the dequant and "
			       "lut kernels");
		return 2;
	}
	return 0;
}

static double median(const double *v, int n)
{
	double *s = malloc(n * sizeof *s);
	if (!s)
		return v[0];
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, util_cmp_double);
	double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
	free(s);
	return m;
}

static double min_of(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

/* -max(v) */
static double min_of_neg(const double *v, int n)
{
	double m = -v[0];
	for (int i = 1; i < n; i++)
		m = -v[i] < m ? -v[i] : m;
	return m;
}

/* Gaussian W (d_out, d_in) and x (d_in) from the seed. */
static int make_inputs(const struct opts *o, int d_out, int d_in, float **w, float **x)
{
	gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
	struct rng_normal_table *nt = malloc(sizeof *nt);
	*w = malloc((size_t)d_out * d_in * sizeof(float));
	*x = malloc((size_t)d_in * sizeof(float));
	if (!r || !nt || !*w || !*x) {
		gsl_rng_free(r), free(nt);
		return -1;
	}
	gsl_rng_set(r, (unsigned long)o->seed);
	rng_normal_table_fill(nt);
	struct rng_stream st;
	rng_stream_seed(&st, r);
	for (size_t i = 0; i < (size_t)d_out * d_in; i++)
		(*w)[i] = 0.02f * nt->z[rng_next(&st) >> (64 - RNG_NORMAL_BITS)];
	for (int i = 0; i < d_in; i++)
		(*x)[i] = nt->z[rng_next(&st) >> (64 - RNG_NORMAL_BITS)];
	gsl_rng_free(r), free(nt);
	return 0;
}

#define PROBE_CHUNKS 16

/* Stream the probe buffer with `threads` workers in PROBE_CHUNKS pieces;
 * *gbs: GB/s over the whole buffer, *best_gbs: the fastest piece (a piece
 * lasts about as long as one kernel call, so a kernel's fastest repeat and
 * the fastest piece saw similar luck on a shared machine). */
static void probe_gb_per_s(const float *buf, size_t n, int threads, int scalar,
			   volatile double *sink, double *gbs, double *best_gbs)
{
	size_t m = n / PROBE_CHUNKS;
	double total = 0;
	*best_gbs = 0;
	for (int i = 0; i < PROBE_CHUNKS; i++) {
		double t0 = 1e-6 * util_now_ns();
		*sink += gemv_stream_sum(buf + i * m, m, threads, scalar);
		double t = 1e-6 * util_now_ns() - t0;
		total += t;
		*best_gbs = fmax(*best_gbs, m * sizeof(float) / (t * 1e-3) / 1e9);
	}
	*gbs = PROBE_CHUNKS * m * sizeof(float) / (total * 1e-3) / 1e9;
}

struct shape_run {
	struct gemv_qmat *q[MAXL + 2]; /* dense32, dense16, one per --bits */
	int nq;
	struct cfg *cfg;
	int ncfg;
	double *bw;      /* (nthreads, repeats) GB/s */
	double *bw_best; /* (nthreads, repeats) GB/s, fastest probe piece */
};

static int build_mats(const struct opts *o, const float *w, int d_out, int d_in,
		      struct shape_run *s, struct lif_err *err)
{
	int bits[MAXL + 2] = {32, 16};
	memcpy(bits + 2, o->bits, o->nbits * sizeof(int));
	int dense = !!(o->kernels & 1u << GEMV_DENSE), lowbit = !!(o->kernels & 3u);
	for (s->nq = 0; s->nq < o->nbits + 2; s->nq++) {
		if (s->nq < 2 ? !dense : !lowbit)
			continue;
		if (!(s->q[s->nq] = gemv_quantize(w, d_out, d_in, bits[s->nq], o->group, err)))
			return -1;
	}
	return 0;
}

/* Median over repeats of dequant time / LUT time, each pair measured back to
 * back in the same repeat (robust to load that drifts between repeats).
 * Config c is a LUT run when c - 1 is the dequant run of the same matrix. */
static double paired_speedup(const struct opts *o, const struct shape_run *s, int c)
{
	const struct cfg *l = &s->cfg[c], *d = c > 0 ? &s->cfg[c - 1] : NULL;
	if (l->k != GEMV_LUT || !d || d->k != GEMV_DEQUANT)
		return l->k == GEMV_DEQUANT ? 1.0 : -1;
	double r[o->repeats];
	for (int i = 0; i < o->repeats; i++)
		r[i] = d->ms[i] / l->ms[i];
	return median(r, o->repeats);
}

/* Median of each config, written as CSV rows (and a line on stdout). */
static void report(FILE *csv, FILE *out, const struct opts *o, const struct shape_run *s)
{
	for (int c = 0; c < s->ncfg; c++) {
		const struct cfg *f = &s->cfg[c];
		double sp = paired_speedup(o, s, c);
		char spbuf[32] = "";
		if (sp > 0)
			snprintf(spbuf, sizeof spbuf, "%.4g", sp);
		const struct gemv_qmat *q = s->q[f->qi];
		int ti = 0;
		while (o->threads[ti] != f->threads)
			ti++;
		double ms = median(f->ms, o->repeats), bw = median(s->bw + ti * o->repeats, o->repeats);
		double d_out = gemv_qmat_d_out(q), d_in = gemv_qmat_d_in(q);
		double gflops = 2 * d_out * d_in / (ms * 1e-3) / 1e9;
		double wgbs = (double)gemv_qmat_bytes(q) / (ms * 1e-3) / 1e9;
		double wbest = (double)gemv_qmat_bytes(q) / (min_of(f->ms, o->repeats) * 1e-3) / 1e9;
		double bwmax = 0; /* fastest probe with at most f->threads threads */
		for (int u = 0; u < o->nthreads; u++)
			if (o->threads[u] <= f->threads)
				bwmax = fmax(bwmax, -min_of_neg(s->bw_best + u * o->repeats, o->repeats));
		if (csv)
			fprintf(csv, "%s,%d,%d,%d,%d,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%s,%.6g,%.6g,%.4g,%.4g,%d\n",
				gemv_kernel_name(f->k), gemv_qmat_bits(q), f->threads, (int)d_out,
				(int)d_in, gemv_qmat_group(q), ms, gflops, wgbs, bw, wgbs / bw, spbuf,
				min_of(f->ms, o->repeats), wbest / bwmax, f->err_hat, f->err_fp32,
				o->repeats);
		if (out)
			fprintf(out, "%-8s %2d bits  %d thr  %5dx%-5d  %8.3f ms  %7.2f GFLOP/s  %6.2f GB/s  %4.2f of %.1f GB/s  err %.1e\n",
				gemv_kernel_name(f->k), gemv_qmat_bits(q), f->threads, (int)d_out,
				(int)d_in, ms, gflops, wgbs, wgbs / bw, bw, f->err_hat);
	}
}

/* LUT vs dequant speedups, side by side from the same run. */
static void report_ratios(FILE *out, const struct opts *o, const struct shape_run *s)
{
	for (int c = 0; c < s->ncfg; c++) {
		const struct gemv_qmat *q = s->q[s->cfg[c].qi];
		if (s->cfg[c].k == GEMV_LUT && paired_speedup(o, s, c) > 0)
			fprintf(out, "lut speedup over dequant: %d bits, %d threads, %dx%d: %.2fx "
				     "(median of paired repeats)\n",
				gemv_qmat_bits(q), s->cfg[c].threads, gemv_qmat_d_out(q),
				gemv_qmat_d_in(q), paired_speedup(o, s, c));
	}
}

/* Every config once per repeat, interleaved, each after a cache flush. */
static int measure(const struct opts *o, struct shape_run *s, const float *probe, float *x,
		   float *y, const struct cli_global *g, struct lif_err *err)
{
	volatile double sink = 0; /* the sums are used, so they are computed */
	size_t nprobe = o->probe_bytes / sizeof(float), nflush = FLUSH_BYTES / sizeof(float);
	for (int rep = -1; rep < o->repeats; rep++) { /* rep -1 warms up */
		for (int ti = 0; ti < o->nthreads; ti++) {
			double bw, best;
			probe_gb_per_s(probe, nprobe, o->threads[ti], o->scalar, &sink, &bw, &best);
			if (rep >= 0) {
				s->bw[ti * o->repeats + rep] = bw;
				s->bw_best[ti * o->repeats + rep] = best;
			}
		}
		for (int c = 0; c < s->ncfg; c++) {
			struct cfg *f = &s->cfg[c];
			if (!o->warm)
				sink += gemv_stream_sum(probe + nprobe - nflush, nflush, f->threads,
							o->scalar);
			double t0 = 1e-6 * util_now_ns();
			if (gemv_run(f->k, s->q[f->qi], x, y, f->threads, o->scalar, err))
				return -1;
			double t = 1e-6 * util_now_ns() - t0;
			if (rep >= 0)
				f->ms[rep] = t;
			sink += y[0];
		}
		cli_progress(g, "bench-gemv", rep + 1, o->repeats);
	}
	return 0;
}

static int plan(const struct opts *o, struct shape_run *s)
{
	s->cfg = calloc((size_t)o->nthreads * (2 * o->nbits + 2), sizeof *s->cfg);
	s->bw = calloc((size_t)o->nthreads * o->repeats, sizeof *s->bw);
	s->bw_best = calloc((size_t)o->nthreads * o->repeats, sizeof *s->bw_best);
	if (!s->cfg || !s->bw || !s->bw_best)
		return -1;
	for (int ti = 0; ti < o->nthreads; ti++) {
		for (int qi = 0; qi < 2 && (o->kernels & 1u << GEMV_DENSE); qi++)
			s->cfg[s->ncfg++] = (struct cfg){.k = GEMV_DENSE, .qi = qi, .threads = o->threads[ti]};
		for (int b = 0; b < o->nbits; b++)
			for (int k = GEMV_DEQUANT; k <= GEMV_LUT; k++)
				if (o->kernels & 1u << k)
					s->cfg[s->ncfg++] = (struct cfg){.k = k, .qi = 2 + b, .threads = o->threads[ti]};
	}
	for (int c = 0; c < s->ncfg; c++)
		if (!(s->cfg[c].ms = calloc(o->repeats, sizeof(double))))
			return -1;
	return 0;
}

static void shape_free(struct shape_run *s)
{
	for (int i = 0; i < s->nq; i++)
		gemv_qmat_free(s->q[i]);
	for (int c = 0; s->cfg && c < s->ncfg; c++)
		free(s->cfg[c].ms);
	free(s->cfg), free(s->bw), free(s->bw_best);
	memset(s, 0, sizeof *s);
}

/* y_ref = M·x in double for M (d_out, d_in). */
static void ref_gemv(const float *m, const float *x, int d_out, int d_in, double *y_ref)
{
	for (int r = 0; r < d_out; r++) {
		double acc = 0;
		for (int i = 0; i < d_in; i++)
			acc += (double)m[(size_t)r * d_in + i] * x[i];
		y_ref[r] = acc;
	}
}

static double rel_rms(const float *y, const double *ref, int n)
{
	double e2 = 0, r2 = 0;
	for (int i = 0; i < n; i++)
		e2 += (y[i] - ref[i]) * (y[i] - ref[i]), r2 += ref[i] * ref[i];
	return r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
}

/* Each config run once against W·x and ŵ·x (ŵ: the weights it multiplies). */
static int accuracy(struct shape_run *s, const float *w, const float *x, float *y, int d_out,
		    int d_in, int scalar, struct lif_err *err)
{
	float *wh = malloc((size_t)d_out * d_in * sizeof *wh);
	double *y32 = malloc(d_out * sizeof *y32), *yh = malloc(d_out * sizeof *yh);
	int rc = !wh || !y32 || !yh ? err_set(err, ERR_NOMEM, "no memory for the reference") : 0;
	if (!rc)
		ref_gemv(w, x, d_out, d_in, y32);
	for (int qi = 0; !rc && qi < s->nq; qi++) {
		if (!s->q[qi])
			continue;
		if ((rc = gemv_qmat_dequantize(s->q[qi], wh, err)))
			break;
		ref_gemv(wh, x, d_out, d_in, yh);
		for (int c = 0; !rc && c < s->ncfg; c++) {
			struct cfg *f = &s->cfg[c];
			if (f->qi != qi || (rc = gemv_run(f->k, s->q[qi], x, y, f->threads, scalar, err)))
				continue;
			f->err_hat = rel_rms(y, yh, d_out);
			f->err_fp32 = rel_rms(y, y32, d_out);
		}
	}
	free(wh), free(y32), free(yh);
	return rc;
}

/* Add the shape's low-bit medians at the first thread count to r. */
static void add_rates(const struct opts *o, const struct shape_run *s, struct rates *r)
{
	for (int c = 0; c < s->ncfg; c++) {
		const struct cfg *f = &s->cfg[c];
		const struct gemv_qmat *q = s->q[f->qi];
		if (f->k == GEMV_DENSE || f->threads != o->threads[0])
			continue;
		int k = f->k == GEMV_LUT, b = gemv_qmat_bits(q) - 1;
		r->weights[k][b] += (double)gemv_qmat_d_out(q) * gemv_qmat_d_in(q);
		r->ms[k][b] += median(f->ms, o->repeats);
	}
}

/* The profile read, with the measured rates, written atomically. */
static int write_profile(const struct opts *o, const struct device *in, const struct rates *r,
			 struct lif_err *err)
{
	struct device d = *in;
	for (int b = 0; b < COMPUTE_MAX_BITS; b++) {
		d.compute.dequant_weights_per_s[b] = r->weights[0][b] / (r->ms[0][b] * 1e-3);
		d.compute.lut_weights_per_s[b] = r->weights[1][b] / (r->ms[1][b] * 1e-3);
	}
	d.compute.n_dequant = d.compute.n_lut = COMPUTE_MAX_BITS;
	return device_write_ini(o->profile_out, &d, err);
}

static int run_shape(const struct opts *o, int si, const float *probe, FILE *csv,
		     struct rates *rates, const struct cli_global *g, struct lif_err *err)
{
	int d_out = o->shape[si][0], d_in = o->shape[si][1], rc = 0;
	struct shape_run s = {0};
	float *w = NULL, *x = NULL, *y = malloc((size_t)d_out * sizeof(float));
	if (!y || make_inputs(o, d_out, d_in, &w, &x) || plan(o, &s))
		rc = err_set(err, ERR_NOMEM, "no memory for shape %dx%d", d_out, d_in);
	if (!rc)
		rc = build_mats(o, w, d_out, d_in, &s, err);
	if (!rc)
		rc = accuracy(&s, w, x, y, d_out, d_in, o->scalar, err);
	free(w);
	w = NULL;
	if (!rc)
		rc = measure(o, &s, probe, x, y, g, err);
	if (!rc) {
		report(csv, g->quiet ? NULL : stdout, o, &s);
		add_rates(o, &s, rates);
		if (!g->quiet)
			report_ratios(stdout, o, &s);
	}
	shape_free(&s);
	free(w), free(x), free(y);
	return rc;
}

static float *probe_new(size_t bytes)
{
	size_t n = bytes / sizeof(float);
	float *p = malloc(bytes);
	for (size_t i = 0; p && i < n; i++)
		p[i] = (float)(i & 1023) * 0.001f; /* real data: every page touched */
	return p;
}

int verb_bench_gemv(int argc, char **argv, const struct cli_global *g)
{
	struct opts o;
	struct lif_err err = {0};
	char tmp[4096];
	FILE *csv = NULL;
	struct device dev;
	struct rates rates = {0};
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	char profile[PATH_CAP];
	if (o.profile_in && !(o.profile_in = cli_path(VERB, PATH_DEVICE, o.profile_in, profile,
						      sizeof profile)))
		return 1;
	if (o.profile_in && device_load(o.profile_in, &dev, &err)) /* before the long run */
		return cli_fail(VERB, &err);
	if (o.csv) {
		snprintf(tmp, sizeof tmp, "%s.tmp", o.csv);
		if (!(csv = fopen(tmp, "w")))
			return cli_errorf(VERB, "%s: cannot write: %s", o.csv, strerror(errno));
		fprintf(csv, "kernel,bits,threads,d_out,d_in,group,ms_median,gflops,weight_gb_per_s,"
			     "bw_gb_per_s,bw_frac,speedup_vs_dequant,ms_min,bw_frac_best,rel_err_rms,"
			     "rel_err_vs_fp32_rms,repeats\n");
	}
	float *probe = probe_new(o.probe_bytes);
	if (!probe)
		rc = err_set(&err, ERR_NOMEM, "no memory for the %zu MiB bandwidth probe",
			     o.probe_bytes >> 20);
	if (!g->quiet)
		printf("bench-gemv: %s path, group %d, median of %d repeats, %s cache\n",
		       o.scalar || !gemv_have_avx2() ? "portable" : "AVX2", o.group, o.repeats,
		       o.warm ? "warm" : "flushed");
	for (int si = 0; !rc && si < o.nshapes; si++)
		rc = run_shape(&o, si, probe, csv, &rates, g, &err);
	free(probe);
	if (!rc && o.profile_in) {
		rc = write_profile(&o, &dev, &rates, &err);
		if (!rc && !g->quiet)
			printf("bench-gemv: wrote %s: lut %.4g %.4g %.4g %.4g, dequant %.4g %.4g %.4g "
			       "%.4g Gweights/s (bits 1..4, %d thread%s)\n", o.profile_out,
			       rates.weights[1][0] / rates.ms[1][0] / 1e6,
			       rates.weights[1][1] / rates.ms[1][1] / 1e6,
			       rates.weights[1][2] / rates.ms[1][2] / 1e6,
			       rates.weights[1][3] / rates.ms[1][3] / 1e6,
			       rates.weights[0][0] / rates.ms[0][0] / 1e6,
			       rates.weights[0][1] / rates.ms[0][1] / 1e6,
			       rates.weights[0][2] / rates.ms[0][2] / 1e6,
			       rates.weights[0][3] / rates.ms[0][3] / 1e6, o.threads[0],
			       o.threads[0] > 1 ? "s" : "");
	}
	if (csv && (fclose(csv) || rc)) {
		remove(tmp);
		return rc ? cli_fail(VERB, &err) : cli_errorf(VERB, "%s: write failed", o.csv);
	}
	if (rc)
		return cli_fail(VERB, &err);
	if (csv && rename(tmp, o.csv))
		return cli_errorf(VERB, "%s: cannot rename from %s: %s", o.csv, tmp, strerror(errno));
	return 0;
}
