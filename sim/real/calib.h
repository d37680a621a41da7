/*
 * calib: measuring the host's flash and DRAM for a device profile
 * (`lifsim calibrate`), and fitting the parametric flash model
 * (models/flash.h) to the measurements.
 *
 * A point is a burst of random reads of chunk_bytes at aligned offsets of a
 * file filled with real data, kept `parallelism` deep by an io engine
 * (sim/real/io.h) for about `seconds`. From the latencies of its requests:
 * throughput, IOPS, mean and p99 latency, and Little's law
 * (little_ratio = iops * lat_mean / parallelism, ~1 for a closed queue).
 *
 * The fit: nonlinear least squares (GSL gsl_multifit_nlinear, trust region,
 * Levenberg-Marquardt) of log throughput over the points, in the five
 * parameters t0, B_xfer, IOPS_max, B_max, softmin p (alignment fixed; each
 * fitted as its logarithm so it stays positive, p through a logistic map
 * onto the profile's range [0.5, 64]). Residuals are
 * log(measured / model).
 */
#ifndef LIFSIM_CALIB_H
#define LIFSIM_CALIB_H

#include <stdint.h>

#include "models/flash.h"
#include "sim/base/err.h"
#include "sim/real/io.h"

struct calib_point {
	char engine[16];
	int64_t chunk_bytes;
	int parallelism;
	int sequential;      /* 1: consecutive offsets (the sequential rate) */
	double seconds;      /* measured wall time */
	int64_t requests;
	double mib_per_s, iops, lat_us_mean, lat_us_p99;
	double little_ratio; /* iops * lat_mean / parallelism */
	double fit_mib_per_s, residual; /* filled by calib_fit: model and log(meas/model) */
};

/* Measure one point with engine e (its parallelism) on its file. seed picks
 * the random offsets. Reads land in arena slice after slice (sim/real/io.h); with
 * arena NULL, in 2 x parallelism buffers in turn, as fio's do. */
int calib_measure(struct io_engine *e, int64_t chunk_bytes, int sequential, double seconds,
		  uint64_t seed, struct io_arena *arena, struct calib_point *out,
		  struct lif_err *err);

/* Fit the parametric model to n points (n >= 5), alignment given. init may
 * hold a starting guess (fields <= 0 are estimated from the points). Fills
 * out, and each point's fit_mib_per_s and residual; *rms_log the RMS of the
 * residuals. A parameter the points leave unbounded (a cap no point nears)
 * comes out at the device profile's bound, CALIB_MAX_T0_US or CALIB_MAX_RATE,
 * so that the profile written from it always loads. */
#define CALIB_MAX_T0_US 1e6
#define CALIB_MAX_RATE 1e30
int calib_fit(struct calib_point *pts, int n, int64_t alignment_bytes,
	      const struct flash_params *init, struct flash_params *out, double *rms_log,
	      struct lif_err *err);

/* Median memcpy bandwidth in bytes/s over `repeats` copies of a buffer of
 * `bytes` (both > 0). */
double calib_copy_bytes_per_s(int64_t bytes, int repeats);

/* Median single-thread sgemv FLOP/s (OpenBLAS) of a rows x cols matrix. */
double calib_sgemv_flops_per_s(int rows, int cols, int repeats);

/* `lifsim calibrate --compute` (sim/real/calib_gemv.c, OpenBLAS with its
 * default threads): the median achieved rate, in bytes of the matrix per
 * second, of y = M x for a rows x cols fp32 matrix M (cblas_sgemv), over
 * `repeats` calls after one untimed call; 0 when out of memory. (Debian's
 * OpenBLAS is built without bf16, so there is no sbgemv to measure.)
 * cold_bytes > 0: the calls cycle through copies of M, so each call's M was
 * last touched at least cold_bytes of other matrices before (out of every
 * cache, as in decoding, where each weight is read once per token); 0: the
 * same M every call (warm: a matrix that fits in the caches stays there). */
double calib_gemv_bytes_per_s(int rows, int cols, int repeats, int64_t cold_bytes);
#define CALIB_GEMV_COLD_BYTES (512LL << 20) /* calibrate --compute's cold_bytes */

/* A GEMV drift probe (validate): the copies of a rows x cols fp32 matrix made
 * once (NULL: out of memory), then each run the median rate (bytes of the
 * matrix per second) of `repeats` (1..64) sgemv calls, each on the next copy,
 * as calib_gemv_bytes_per_s measures with cold_bytes (every page of the
 * copies touched first, untimed: the table's matrices were just written). */
struct calib_gemv_probe;
struct calib_gemv_probe *calib_gemv_probe_new(int rows, int cols, int64_t cold_bytes);
double calib_gemv_probe_run(struct calib_gemv_probe *p, int repeats);
void calib_gemv_probe_free(struct calib_gemv_probe *p);

/* Median fp32 GEMM FLOP/s (cblas_sgemm) of n x n matrices: the host's
 * arithmetic ceiling for the roofline. */
double calib_sgemm_flops_per_s(int n, int repeats);

/* OpenBLAS's thread count (what the rates above used). */
int calib_blas_threads(void);

/* This host's online CPU cores (sysconf), 0 when unknown. */
int calib_cores(void);

/* Median rate, in bytes of fp16 input per second, of converting `bytes` of
 * fp16 weights to fp32 with the replay's own conversion (place's,
 * replay_convert), one thread, source and destination out of the caches;
 * 0 when out of memory. `lifsim calibrate --compute` writes it to [dram]
 * convert_bytes_per_s. */
double calib_convert_bytes_per_s(int64_t bytes, int repeats);

/* Warnings about a point that looks like a cache rather than a device
 * (more than 10 GB/s, or a mean latency under 5 us) or breaks Little's law
 * by more than 25%; buf gets "" when none. */
void calib_point_warnings(const struct calib_point *p, char *buf, size_t cap);

#endif
