/*
 * drift: the matched drift probe of the validate kinds (kind_validate.c,
 * kind_moevalidate.c) and the statistics they report.
 *
 * A probe reads `chunk` bytes at random offsets (sequentially for a naive
 * point) at queue depth `depth` for `seconds`, once before a point's first
 * timed token and once after every timed token. Its reference `ref` is what
 * the device profile's flash model gives for the same reads, so a token's
 * factor f = ref / (geometric mean of the probes just before and after it)
 * says how much slower the disk is now than the profile says, at this
 * operating point; corrected io divides the measured io by f. With a compute
 * probe (drift_add_compute), every disk probe is followed by 5 cold sgemv
 * calls of one shape (its pages touched first, as calibrate's table times
 * matrices it has just written: sim/real/calib_gemv.c), giving factors fc
 * against `cref` the same way.
 */
#ifndef LIFSIM_DRIFT_H
#define LIFSIM_DRIFT_H

#include <stdint.h>

#include "models/device.h"
#include "sim/base/err.h"
#include "sim/real/io.h"

#define DRIFT_MAXPROBE 4096

struct drift_probe {
	struct io_engine *e;
	struct io_arena *arena;
	int64_t chunk;
	int sequential, depth;
	double seconds, ref; /* reference throughput, B/s */
	uint64_t seed;
	double last;		    /* the latest probe, B/s */
	double f[DRIFT_MAXPROBE];   /* per timed token: ref / geometric mean of the probes around it */
	double mib[DRIFT_MAXPROBE]; /* every probe's throughput, MiB/s */
	int nf, nmib;
	/* the compute probe (NULL: none); fc as f, against cref */
	struct calib_gemv_probe *cp;
	double cref, clast, fc[DRIFT_MAXPROBE], cbps[DRIFT_MAXPROBE];
	int nfc, ncb;
};

/* Open a probe of `file` through io engine `engine`: reads of chunk bytes
 * at depth, sequential or random, seconds each, the reads landing in arena
 * (may be NULL); ref from dev's flash model. Clears *pr first. An error
 * names `file` when it is smaller than one read. */
int drift_open(struct drift_probe *pr, const char *engine, const char *file, int64_t chunk, int depth,
	       int sequential, double seconds, uint64_t seed, const struct device *dev,
	       struct io_arena *arena, struct lif_err *err);

/* Add the compute probe: cold sgemv calls of a rows x cols fp32 matrix,
 * against the profile's rate cref (B/s). */
int drift_add_compute(struct drift_probe *pr, int rows, int cols, double cref, struct lif_err *err);

/* One probe (disk, then compute when added). */
int drift_run(struct drift_probe *pr, struct lif_err *err);

/* drift_run as a replay's after-token hook (ctx: the probe). */
int drift_after_token(void *ctx, int64_t tok, struct lif_err *err);

/* Close the engine and the compute probe (the factors stay). */
void drift_close(struct drift_probe *pr);

/* Median of v[0..n) (NAN when n < 1; n <= DRIFT_MAXPROBE), and the
 * coefficient of variation (0 when n < 2 or the mean is not positive). */
double drift_median(const double *v, int n);
double drift_cv(const double *v, int n);

/* "latency" when the queue (Little's law: `depth` reads of mean_read bytes
 * in flight) binds rather than the device's caps, else "bandwidth";
 * "unknown" without a parametric flash model or reads. */
const char *drift_regime(const struct device *dev, double mean_read, double depth);

#endif
