/* drift: the validate kinds' drift probe (see sim/sweep/drift.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/flash.h"
#include "sim/base/util.h"
#include "sim/real/calib.h"
#include "sim/sweep/drift.h"

int drift_open(struct drift_probe *pr, const char *engine, const char *file, int64_t chunk, int depth,
	       int sequential, double seconds, uint64_t seed, const struct device *dev,
	       struct io_arena *arena, struct lif_err *err)
{
	memset(pr, 0, sizeof *pr);
	pr->chunk = chunk, pr->depth = depth, pr->sequential = sequential;
	pr->seconds = seconds, pr->seed = seed, pr->arena = arena;
	pr->ref = flash_throughput_bytes_per_s(&dev->flash, chunk, depth);
	if (!(pr->e = io_open(engine, file, depth, 0, err)))
		return err->code;
	if (io_file_bytes(pr->e) < chunk) {
		io_close(pr->e), pr->e = NULL;
		return err_set(err, ERR_INVAL, "[validate] probe_file %s: smaller than one probe read "
			       "(%lld bytes)", file, (long long)chunk);
	}
	return 0;
}

int drift_add_compute(struct drift_probe *pr, int rows, int cols, double cref, struct lif_err *err)
{
	pr->cref = cref;
	if (!(pr->cp = calib_gemv_probe_new(rows, cols, CALIB_GEMV_COLD_BYTES)))
		return err_set(err, ERR_NOMEM, "out of memory for the compute probe");
	return 0;
}

int drift_run(struct drift_probe *pr, struct lif_err *err)
{
	struct calib_point p;
	int rc = calib_measure(pr->e, pr->chunk, pr->sequential, pr->seconds, pr->seed++, pr->arena, &p,
			       err);
	if (rc)
		return rc;
	double now = p.mib_per_s * 1048576.0;
	if (pr->last > 0 && pr->nf < DRIFT_MAXPROBE)
		pr->f[pr->nf++] = pr->ref / sqrt(pr->last * now);
	if (pr->nmib < DRIFT_MAXPROBE)
		pr->mib[pr->nmib++] = p.mib_per_s;
	pr->last = now;
	if (pr->cp) {
		double c = calib_gemv_probe_run(pr->cp, 5);
		if (pr->clast > 0 && pr->nfc < DRIFT_MAXPROBE)
			pr->fc[pr->nfc++] = pr->cref / sqrt(pr->clast * c);
		if (pr->ncb < DRIFT_MAXPROBE)
			pr->cbps[pr->ncb++] = c;
		pr->clast = c;
	}
	return 0;
}

int drift_after_token(void *ctx, int64_t tok, struct lif_err *err)
{
	(void)tok;
	return drift_run(ctx, err);
}

void drift_close(struct drift_probe *pr)
{
	io_close(pr->e);
	pr->e = NULL;
	calib_gemv_probe_free(pr->cp);
	pr->cp = NULL;
}

double drift_median(const double *v, int n)
{
	static _Thread_local double s[DRIFT_MAXPROBE];
	if (n < 1)
		return NAN;
	n = n < DRIFT_MAXPROBE ? n : DRIFT_MAXPROBE;
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, util_cmp_double);
	return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

double drift_cv(const double *v, int n)
{
	double m = 0, ss = 0;
	for (int i = 0; i < n; i++)
		m += v[i] / n;
	for (int i = 0; i < n; i++)
		ss += (v[i] - m) * (v[i] - m);
	return n > 1 && m > 0 ? sqrt(ss / (n - 1)) / m : 0;
}

const char *drift_regime(const struct device *dev, double mean_read, double depth)
{
	const struct flash_params *f = &dev->flash.par;
	if (!(f->t0_us > 0) || !(mean_read > 0))
		return "unknown";
	double a = (double)f->alignment_bytes, b = ceil(mean_read / a) * a;
	double little = depth * b / (f->t0_us * 1e-6 + b / f->xfer_bytes_per_s);
	return little < fmin(f->iops_max * b, f->max_bytes_per_s) ? "latency" : "bandwidth";
}
