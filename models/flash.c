#include "models/flash.h"

#include <math.h>
#include <string.h>

/* ---- parametric ---- */

/* One extent's time is b_a / softmin(N b_a / t, IOPS b_a, B_max), which is
 * the soft maximum of the three per-request service times:
 * (  (t/N)^p + (1/IOPS)^p + (b_a/B_max)^p  )^(1/p). */
static double parametric_extent_ns(const struct flash_model *m, double bytes, double n)
{
	const struct flash_params *f = &m->par;
	double align = (double)f->alignment_bytes;
	double ba = align > 1 ? ceil(bytes / align) * align : bytes;
	double t_s = f->t0_us * 1e-6 + ba / f->xfer_bytes_per_s;
	double a = t_s / n, b = 1.0 / f->iops_max, c = ba / f->max_bytes_per_s;
	double top = fmax(a, fmax(b, c)), p = f->softmin_p; /* scaled: no underflow at large p */
	double s = pow(a / top, p) + pow(b / top, p) + pow(c / top, p);
	return top * pow(s, 1.0 / p) * 1e9;
}

static int bad(const char **key, const char *name, struct lif_err *err, const char *what,
	       double v)
{
	*key = name;
	return err_set(err, ERR_RANGE, "[flash] %s: %s (got %g)", name, what, v);
}

static int parametric_check(const struct flash_model *m, const char **key, struct lif_err *err)
{
	const struct flash_params *f = &m->par;
	if (!(f->t0_us >= 0) || !isfinite(f->t0_us))
		return bad(key, "t0_us", err, "must be a latency >= 0", f->t0_us);
	if (!(f->xfer_bytes_per_s > 0) || !isfinite(f->xfer_bytes_per_s))
		return bad(key, "xfer_bytes_per_s", err, "must be a rate > 0", f->xfer_bytes_per_s);
	if (!(f->iops_max > 0) || !isfinite(f->iops_max))
		return bad(key, "iops_max", err, "must be a rate > 0", f->iops_max);
	if (!(f->max_bytes_per_s > 0) || !isfinite(f->max_bytes_per_s))
		return bad(key, "max_bytes_per_s", err, "must be a rate > 0", f->max_bytes_per_s);
	if (f->alignment_bytes < 1)
		return bad(key, "alignment_bytes", err, "must be >= 1", (double)f->alignment_bytes);
	if (!(f->softmin_p >= 0.5 && f->softmin_p <= 64))
		return bad(key, "softmin_p", err, "must be in [0.5, 64]", f->softmin_p);
	return 0;
}

/* ---- tabulated ---- */

/* Index i and weight w with x between v[i] and v[i+1] in log space, x
 * clamped to [v[0], v[n-1]]. */
static void log_bracket(const double *v, int n, double x, int *i, double *w)
{
	*w = 0;
	if (n < 2 || x <= v[0]) {
		*i = 0;
		return;
	}
	if (x >= v[n - 1]) {
		*i = n - 2;
		*w = 1;
		return;
	}
	int lo = 0, hi = n - 1; /* v[lo] <= x < v[hi] */
	while (hi - lo > 1) {
		int mid = (lo + hi) / 2;
		if (v[mid] <= x)
			lo = mid;
		else
			hi = mid;
	}
	*i = lo;
	*w = (log(x) - log(v[lo])) / (log(v[lo + 1]) - log(v[lo]));
}

double flash_table_bytes_per_s(const struct flash_table *t, double chunk, double par)
{
	int i, j;
	double u, w;
	log_bracket(t->chunk_bytes, t->n_chunks, chunk, &i, &u);
	log_bracket(t->parallelism, t->n_parallelism, par, &j, &w);
	int np = t->n_parallelism;
	int i1 = t->n_chunks > 1 ? i + 1 : i, j1 = np > 1 ? j + 1 : j;
	const double *x = t->bytes_per_s;
	double l00 = log(x[i * np + j]), l01 = log(x[i * np + j1]);
	double l10 = log(x[i1 * np + j]), l11 = log(x[i1 * np + j1]);
	double l = (1 - u) * ((1 - w) * l00 + w * l01) + u * ((1 - w) * l10 + w * l11);
	return exp(l);
}

static double tabulated_extent_ns(const struct flash_model *m, double bytes, double n)
{
	const struct flash_table *t = &m->tab;
	double billed = bytes < t->chunk_bytes[0] ? t->chunk_bytes[0] : bytes;
	return billed / flash_table_bytes_per_s(t, bytes, n) * 1e9;
}

static int increasing(const double *v, int n, double min, int *at)
{
	for (int i = 0; i < n; i++) {
		if (!(v[i] >= min) || !isfinite(v[i]) || (i > 0 && !(v[i] > v[i - 1]))) {
			*at = i;
			return 0;
		}
	}
	return 1;
}

static int tabulated_check(const struct flash_model *m, const char **key, struct lif_err *err)
{
	const struct flash_table *t = &m->tab;
	int at;
	if (t->n_chunks < 1 || t->n_chunks > FLASH_MAX_CHUNKS)
		return bad(key, "chunk_bytes", err, "needs 1 to 32 chunk sizes", t->n_chunks);
	if (t->n_parallelism < 1 || t->n_parallelism > FLASH_MAX_PARALLELISM)
		return bad(key, "parallelism", err, "needs 1 to 16 parallelism values",
			   t->n_parallelism);
	if (!increasing(t->chunk_bytes, t->n_chunks, 1, &at))
		return bad(key, "chunk_bytes", err, "sizes must be >= 1 and strictly increasing",
			   t->chunk_bytes[at]);
	if (!increasing(t->parallelism, t->n_parallelism, 1, &at))
		return bad(key, "parallelism", err, "values must be >= 1 and strictly increasing",
			   t->parallelism[at]);
	for (int i = 0; i < t->n_chunks * t->n_parallelism; i++)
		if (!(t->bytes_per_s[i] > 0) || !isfinite(t->bytes_per_s[i])) {
			*key = "mb_per_s";
			return err_set(err, ERR_RANGE,
				       "[flash] mb_per_s: row %d column %d: throughput must be > 0 (got %g)",
				       i / t->n_parallelism + 1, i % t->n_parallelism + 1,
				       t->bytes_per_s[i] / 1e6);
		}
	return 0;
}

/* ---- the table of forms and the generic entry points ---- */

const struct flash_ops flash_ops_table[FLASH_NKINDS] = {
	[FLASH_PARAMETRIC] = {.name = "parametric", .extent_ns = parametric_extent_ns,
			      .check = parametric_check},
	[FLASH_TABULATED] = {.name = "tabulated", .extent_ns = tabulated_extent_ns,
			     .check = tabulated_check},
};

const char *flash_kind_choice(int i)
{
	return i >= 0 && i < FLASH_NKINDS ? flash_ops_table[i].name : NULL;
}

const struct flash_ops *flash_ops_find(const char *name)
{
	for (int i = 0; i < FLASH_NKINDS; i++)
		if (!strcmp(flash_ops_table[i].name, name))
			return &flash_ops_table[i];
	return NULL;
}

int flash_check(const struct flash_model *m, const char **key, struct lif_err *err)
{
	if (m->kind < 0 || m->kind >= FLASH_NKINDS) {
		*key = "model";
		return err_set(err, ERR_INVAL, "[flash] model: unknown flash model %d", m->kind);
	}
	return flash_ops_table[m->kind].check(m, key, err);
}

double flash_extent_ns(const struct flash_model *m, int64_t bytes, int parallelism)
{
	if (bytes <= 0)
		return 0;
	double n = parallelism < 1 ? 1 : parallelism;
	return flash_ops_table[m->kind].extent_ns(m, (double)bytes, n);
}

/* Extents of one set mostly share a few sizes (one bundle, two merged
 * bundles, ...), so a small direct-mapped cache of size -> time spares most
 * of the pow/log calls. */
#define FLASH_CACHE 64

double flash_time_ns(const struct flash_model *m, const int64_t *extent_bytes, size_t n_extents,
		     int parallelism)
{
	int64_t keys[FLASH_CACHE];
	double vals[FLASH_CACHE];
	for (int i = 0; i < FLASH_CACHE; i++)
		keys[i] = -1;
	double total = 0;
	for (size_t i = 0; i < n_extents; i++) {
		int64_t b = extent_bytes[i];
		if (b <= 0)
			continue;
		unsigned slot = (unsigned)((uint64_t)b * 0x9E3779B97F4A7C15ull >> 58);
		if (keys[slot] != b) {
			keys[slot] = b;
			vals[slot] = flash_extent_ns(m, b, parallelism);
		}
		total += vals[slot];
	}
	return total;
}

double flash_throughput_bytes_per_s(const struct flash_model *m, int64_t chunk_bytes,
				    int parallelism)
{
	if (chunk_bytes <= 0)
		return 0;
	return (double)chunk_bytes / (flash_extent_ns(m, chunk_bytes, parallelism) * 1e-9);
}
