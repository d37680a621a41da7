/* calib: host measurements and the flash fit (see sim/real/calib.h). */
#include <gsl/gsl_cblas.h> /* declarations; OpenBLAS is linked first and serves them */
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/real/calib.h"
#include "sim/base/util.h"

static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The point from nlat latencies (ns; sorted here) read in wall seconds. */
static void summarize(const struct io_engine *e, int64_t chunk, int sequential, double wall,
		      double *lat, size_t nlat, struct calib_point *out)
{
	const int par = e->parallelism;
	double sum = 0;
	for (size_t i = 0; i < nlat; i++)
		sum += lat[i];
	qsort(lat, nlat, sizeof *lat, util_cmp_double);
	memset(out, 0, sizeof *out);
	snprintf(out->engine, sizeof out->engine, "%s", io_engine_name(e));
	out->chunk_bytes = chunk, out->parallelism = par, out->sequential = sequential;
	out->seconds = wall, out->requests = (int64_t)nlat;
	out->iops = nlat / wall;
	out->mib_per_s = out->iops * chunk / 1048576.0;
	out->lat_us_mean = sum / nlat / 1e3;
	out->lat_us_p99 = lat[(size_t)(0.99 * (nlat - 1))] / 1e3;
	out->little_ratio = out->iops * out->lat_us_mean * 1e-6 / par;
}

int calib_measure(struct io_engine *e, int64_t chunk, int sequential, double seconds,
		  uint64_t seed, struct io_arena *arena, struct calib_point *out, struct lif_err *err)
{
	const int par = e->parallelism;
	const int64_t blk = io_block_bytes(e) > 1 ? io_block_bytes(e) : 4096;
	const int64_t slots = io_file_bytes(e) / chunk;
	if (chunk % blk || slots < 1)
		return err_set(err, ERR_INVAL, "chunk %lld must be a multiple of %lld and fit in %s",
			       (long long)chunk, (long long)blk, e->path);
	if (arena && (size_t)chunk > arena->bytes)
		return err_set(err, ERR_INVAL, "chunk %lld does not fit in the %zu-byte io arena",
			       (long long)chunk, arena->bytes);
	/* Batches last about a quarter of the point: the queue runs dry at each
	 * batch's end while its slowest reads finish, so short batches would
	 * measure the tail, not the device. Without an arena, reads share 2 x
	 * parallelism buffers (their contents are not looked at). */
	const int nbuf = arena ? 1 : 2 * par, nb_max = 1 << 16;
	int nb = par * 16 < 64 ? 64 : par * 16;
	char *buf = io_alloc((size_t)chunk * nbuf, blk > 4096 ? (size_t)blk : 4096); /* whole pages: a buffer across two pages costs the device a second segment */
	struct io_req *r = malloc(nb_max * sizeof *r);
	size_t cap = 1 << 16, nlat = 0;
	double *lat = malloc(cap * sizeof *lat);
	int rc = !buf || !r || !lat ? err_set(err, ERR_NOMEM, "out of memory") : 0;
	/* sequential: from a random slot, so that repeated probes do not read
	 * the same region again */
	int64_t seq = sequential ? (int64_t)(next_rand(&seed) % (uint64_t)slots) : 0;
	if (!rc && !arena)
		memset(buf, 0, (size_t)chunk * nbuf); /* page faults now, not in the timing */
	double t0 = util_now_ns(), t1 = t0;
	for (int round = 0; !rc && (t1 - t0 < seconds * 1e9 || round < 2); round++) {
		for (int i = 0; i < nb; i++) {
			int64_t s = sequential ? seq++ % slots : (int64_t)(next_rand(&seed) % (uint64_t)slots);
			r[i] = (struct io_req){s * chunk, chunk,
					       arena ? io_arena_take(arena, chunk) : buf + (size_t)(i % nbuf) * chunk};
		}
		while (nlat + nb > cap) {
			double *bigger = realloc(lat, (cap *= 2) * sizeof *lat);
			if (!bigger) {
				rc = err_set(err, ERR_NOMEM, "out of memory");
				break;
			}
			lat = bigger;
		}
		double b0 = util_now_ns();
		if (!rc)
			rc = io_read(e, r, nb, lat + nlat, err);
		nlat += nb;
		t1 = util_now_ns();
		/* next batch: a quarter of the point at the rate just seen */
		double want = nb / ((t1 - b0) * 1e-9) * seconds / 4;
		nb = want > nb_max ? nb_max : want > nb ? (int)want : nb;
	}
	if (!rc)
		summarize(e, chunk, sequential, (t1 - t0) / 1e9, lat, nlat, out);
	free(buf), free(r), free(lat);
	return rc;
}

/* ---- the fit ---- */

struct fit_data {
	const struct calib_point *p;
	int n;
	int64_t align;
};

/* p is kept in the profile's range [P_MIN, P_MAX] through a logistic map. */
#define P_MIN 0.5
#define P_MAX 64.0

static double p_of(double z) { return P_MIN + (P_MAX - P_MIN) / (1 + exp(-z)); }
static double z_of(double p) { return -log((P_MAX - P_MIN) / (p - P_MIN) - 1); }

static struct flash_params params_of(const gsl_vector *x, int64_t align)
{
	return (struct flash_params){exp(gsl_vector_get(x, 0)), exp(gsl_vector_get(x, 1)),
				     exp(gsl_vector_get(x, 2)), exp(gsl_vector_get(x, 3)), align,
				     p_of(gsl_vector_get(x, 4))};
}

static double model_bytes_per_s(const struct flash_params *fp, const struct calib_point *p)
{
	struct flash_model m = {.kind = FLASH_PARAMETRIC, .par = *fp};
	return flash_throughput_bytes_per_s(&m, p->chunk_bytes, p->parallelism);
}

static int residuals(const gsl_vector *x, void *data, gsl_vector *f)
{
	const struct fit_data *d = data;
	struct flash_params fp = params_of(x, d->align);
	for (int i = 0; i < d->n; i++) {
		double m = model_bytes_per_s(&fp, &d->p[i]);
		double meas = d->p[i].mib_per_s * 1048576.0;
		gsl_vector_set(f, (size_t)i, isfinite(m) && m > 0 ? log(meas / m) : 1e3);
	}
	return GSL_SUCCESS;
}

/* A starting point from the points: t0 and B_xfer from depth-1 latencies,
 * the caps from the best measured rates. */
static void initial_guess(const struct calib_point *p, int n, struct flash_params *g)
{
	double lat_small = 1e30, lat_big = 0, b_big = 0, best_iops = 0, best_bw = 0;
	int64_t c_small = INT64_MAX;
	for (int i = 0; i < n; i++) {
		if (p[i].parallelism == 1 && p[i].chunk_bytes < c_small)
			c_small = p[i].chunk_bytes, lat_small = p[i].lat_us_mean;
		if (p[i].parallelism == 1 && p[i].chunk_bytes > b_big)
			b_big = (double)p[i].chunk_bytes, lat_big = p[i].lat_us_mean;
		best_iops = fmax(best_iops, p[i].iops);
		best_bw = fmax(best_bw, p[i].mib_per_s * 1048576.0);
	}
	if (g->t0_us <= 0)
		g->t0_us = lat_small < 1e30 ? lat_small * 0.8 : 50;
	if (g->xfer_bytes_per_s <= 0)
		g->xfer_bytes_per_s = lat_big > g->t0_us ? b_big / ((lat_big - g->t0_us) * 1e-6) : 2e9;
	if (g->iops_max <= 0)
		g->iops_max = best_iops * 1.2;
	if (g->max_bytes_per_s <= 0)
		g->max_bytes_per_s = best_bw * 1.1;
	if (g->softmin_p <= 0)
		g->softmin_p = 2;
}

int calib_fit(struct calib_point *pts, int n, int64_t align, const struct flash_params *init,
	      struct flash_params *out, double *rms_log, struct lif_err *err)
{
	if (n < 5)
		return err_set(err, ERR_INVAL, "the fit needs at least 5 points (have %d)", n);
	struct flash_params g = init ? *init : (struct flash_params){0};
	initial_guess(pts, n, &g);
	struct fit_data d = {pts, n, align};
	gsl_multifit_nlinear_fdf fdf = {.f = residuals, .n = (size_t)n, .p = 5, .params = &d};
	gsl_multifit_nlinear_parameters fp = gsl_multifit_nlinear_default_parameters();
	gsl_multifit_nlinear_workspace *w =
		gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &fp, (size_t)n, 5);
	gsl_vector *x = gsl_vector_alloc(5);
	if (!w || !x) {
		gsl_multifit_nlinear_free(w), gsl_vector_free(x);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	const double x0[5] = {log(g.t0_us), log(g.xfer_bytes_per_s), log(g.iops_max),
			      log(g.max_bytes_per_s), z_of(fmin(fmax(g.softmin_p, 0.6), 60))};
	for (int i = 0; i < 5; i++)
		gsl_vector_set(x, (size_t)i, x0[i]);
	int info, rc = gsl_multifit_nlinear_init(x, &fdf, w);
	if (!rc)
		rc = gsl_multifit_nlinear_driver(500, 1e-10, 1e-10, 1e-10, NULL, NULL, &info, w);
	if (rc && rc != GSL_EMAXITER) {
		gsl_multifit_nlinear_free(w), gsl_vector_free(x);
		return err_set(err, ERR_RANGE, "the flash fit failed: %s", gsl_strerror(rc));
	}
	*out = params_of(w->x, align);
	/* A cap that no measured point comes near is not identified by the
	 * points: the fit drifts it toward infinity (seen on a loaded machine,
	 * where the mem engine's rates stop growing with the chunk). Written
	 * unclamped, the profile would be refused by its own loader
	 * (models/device.c bounds t0_us to 1e6 us and the rates to 1e30); at the
	 * bound the cap never binds, which is what the points say. */
	out->t0_us = fmin(out->t0_us, CALIB_MAX_T0_US);
	out->xfer_bytes_per_s = fmin(out->xfer_bytes_per_s, CALIB_MAX_RATE);
	out->iops_max = fmin(out->iops_max, CALIB_MAX_RATE);
	out->max_bytes_per_s = fmin(out->max_bytes_per_s, CALIB_MAX_RATE);
	double ss = 0;
	for (int i = 0; i < n; i++) {
		double m = model_bytes_per_s(out, &pts[i]);
		pts[i].fit_mib_per_s = m / 1048576.0;
		pts[i].residual = log(pts[i].mib_per_s * 1048576.0 / m);
		ss += pts[i].residual * pts[i].residual;
	}
	*rms_log = sqrt(ss / n);
	gsl_multifit_nlinear_free(w), gsl_vector_free(x);
	return 0;
}

/* ---- DRAM and compute ---- */

double calib_copy_bytes_per_s(int64_t bytes, int repeats)
{
	char *a = malloc((size_t)bytes), *b = malloc((size_t)bytes);
	double *t = malloc(repeats * sizeof *t), med = 0;
	if (a && b && t) {
		memset(a, 1, (size_t)bytes), memset(b, 2, (size_t)bytes);
		for (int i = 0; i < repeats; i++) {
			double t0 = util_now_ns();
			memcpy(i % 2 ? a : b, i % 2 ? b : a, (size_t)bytes);
			t[i] = util_now_ns() - t0;
		}
		qsort(t, repeats, sizeof *t, util_cmp_double);
		med = bytes / (t[repeats / 2] * 1e-9);
	}
	free(a), free(b), free(t);
	return med;
}

double calib_sgemv_flops_per_s(int rows, int cols, int repeats)
{
	float *m = malloc((size_t)rows * cols * sizeof *m), *x = malloc(cols * sizeof *x);
	float *y = malloc(rows * sizeof *y);
	double *t = malloc(repeats * sizeof *t), med = 0;
	if (m && x && y && t) {
		for (size_t i = 0; i < (size_t)rows * cols; i++)
			m[i] = (float)(i % 7) * 0.01f;
		for (int i = 0; i < cols; i++)
			x[i] = 1.0f;
		for (int i = 0; i < repeats; i++) {
			double t0 = util_now_ns();
			cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1.0f, m, cols, x, 1, 0.0f, y, 1);
			t[i] = util_now_ns() - t0;
		}
		qsort(t, repeats, sizeof *t, util_cmp_double);
		med = 2.0 * rows * cols / (t[repeats / 2] * 1e-9);
	}
	free(m), free(x), free(y), free(t);
	return med;
}

void calib_point_warnings(const struct calib_point *p, char *buf, size_t cap)
{
	size_t k = 0;
	buf[0] = '\0';
	if (p->mib_per_s * 1048576.0 > 10e9)
		k += (size_t)snprintf(buf + k, cap - k, "%.1f GB/s is above what a disk serves: a cache? ",
				      p->mib_per_s * 1048576.0 / 1e9);
	if (k < cap && p->lat_us_mean < 5)
		k += (size_t)snprintf(buf + k, cap - k, "mean latency %.2f us is below a device's: a "
				      "cache? ", p->lat_us_mean);
	if (k < cap && fabs(p->little_ratio - 1) > 0.25)
		snprintf(buf + k, cap - k, "Little's law off: iops * latency / parallelism = %.2f ",
			 p->little_ratio);
}
