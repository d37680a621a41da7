/*
 * flash: how long a flash device takes to serve a set of reads.
 *
 * A flash model is a plain value (struct flash_model) that the simulator
 * copies per sweep point; its `kind` picks one of the const vtables in
 * flash_ops_table (found by name: "parametric", "tabulated").
 *
 * Contract used by the simulator:
 *   flash_time_ns(m, extents, n, N) is the time to serve the n reads of the
 *   given byte lengths with N requests outstanding, computed as the sum over
 *   extents of each one's share of the queue, b / X(b, N), where X(b, N) is
 *   the device's throughput for requests of b bytes at queue depth N. It
 *   assumes the set keeps N requests in flight; a caller that passes fewer
 *   extents than N should pass a smaller N.
 *
 * parametric (fitted by `calibrate`, see ARCHITECTURE.md, "The cost model"):
 *   b_a  = b rounded up to `alignment_bytes` (the device reads whole blocks)
 *   t(b) = t0 + b_a / B_xfer                 per-request service time
 *   X(b,N) = softmin(N b_a / t(b), IOPS_max b_a, B_max)
 *          with softmin(x, y, z) = (x^-p + y^-p + z^-p)^(-1/p)
 *   Little's law below saturation, the IOPS and bandwidth caps above, with a
 *   soft knee whose sharpness is p (large p: hard minimum). The time of one
 *   extent is b_a / X(b,N): a read shorter than the alignment costs a whole
 *   aligned block.
 *
 * tabulated (measured points, e.g. the paper's M1 Max numbers):
 *   throughput by (chunk size, parallelism), interpolated bilinearly in
 *   (log chunk, log parallelism) on log throughput, so a power law between
 *   two points is reproduced exactly and table points are hit exactly.
 *   Outside the table: parallelism is clamped to the table's range (no gain
 *   beyond the largest measured depth, no extrapolation below the smallest);
 *   a chunk larger than the largest row keeps that row's throughput
 *   (bandwidth bound); a chunk smaller than the smallest row costs as much
 *   time as a smallest-row read (request bound).
 *
 * Both forms report useful bytes: flash_throughput_bytes_per_s(m, b, N) is
 * b divided by the time of one b-byte extent's share.
 */
#ifndef LIFSIM_FLASH_H
#define LIFSIM_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "sim/base/err.h"

#define FLASH_MAX_CHUNKS 32
#define FLASH_MAX_PARALLELISM 16
#define FLASH_MAX_CELLS (FLASH_MAX_CHUNKS * FLASH_MAX_PARALLELISM)

enum flash_kind { FLASH_PARAMETRIC = 0, FLASH_TABULATED = 1, FLASH_NKINDS = 2 };

/* The parametric model's parameters (all > 0 when used). */
struct flash_params {
	double t0_us;            /* fixed per-request latency */
	double xfer_bytes_per_s; /* B_xfer: one request's transfer rate */
	double iops_max;         /* IOPS_max: request-rate cap of the device */
	double max_bytes_per_s;  /* B_max: bandwidth cap of the device */
	int64_t alignment_bytes; /* requests are rounded up to this */
	double softmin_p;        /* soft-minimum exponent p */
};

/* The tabulated model: measured throughput on a grid. */
struct flash_table {
	int n_chunks;                                /* rows */
	int n_parallelism;                           /* columns */
	double chunk_bytes[FLASH_MAX_CHUNKS];        /* (n_chunks), strictly increasing */
	double parallelism[FLASH_MAX_PARALLELISM];   /* (n_parallelism), strictly increasing, >= 1 */
	double bytes_per_s[FLASH_MAX_CELLS];         /* (n_chunks, n_parallelism) row-major, > 0 */
};

/* A flash model: a plain value. Both forms may be filled (a profile can
 * carry its table and a parametric fit); `kind` says which one is used. */
struct flash_model {
	int kind; /* enum flash_kind */
	struct flash_params par;
	struct flash_table tab;
};

/* One flash model form. */
struct flash_ops {
	const char *name;
	/* Time in ns of one extent of `bytes` (> 0) as its share of a queue of
	 * `parallelism` (>= 1) outstanding requests. */
	double (*extent_ns)(const struct flash_model *m, double bytes, double parallelism);
	/* Check this form's fields. On failure fills err with "[flash] KEY:
	 * problem" and sets *key to the offending INI key. */
	int (*check)(const struct flash_model *m, const char **key, struct lif_err *err);
};

/* Indexed by enum flash_kind; the names are the INI `model` choices. */
extern const struct flash_ops flash_ops_table[FLASH_NKINDS];

/* The name of flash_ops_table[i], or NULL past the last: the INI `model`
 * choices (a conf_names_fn). */
const char *flash_kind_choice(int i);

/* The form called `name`, or NULL. */
const struct flash_ops *flash_ops_find(const char *name);

/* Check the form m->kind selects. See flash_ops.check. */
int flash_check(const struct flash_model *m, const char **key, struct lif_err *err);

/* Time in ns to serve n_extents reads of extent_bytes[i] bytes with
 * `parallelism` outstanding requests (values below 1 count as 1); extents of
 * 0 bytes or fewer cost nothing. m must pass flash_check. */
double flash_time_ns(const struct flash_model *m, const int64_t *extent_bytes, size_t n_extents,
		     int parallelism);

/* Time in ns of one extent's share (the term summed by flash_time_ns). */
double flash_extent_ns(const struct flash_model *m, int64_t bytes, int parallelism);

/* Useful throughput for a stream of chunk_bytes reads at `parallelism`. */
double flash_throughput_bytes_per_s(const struct flash_model *m, int64_t chunk_bytes,
				    int parallelism);

/* Tabulated helper: the interpolated table value at (chunk, parallelism),
 * with both clamped to the table (no request-bound correction). */
double flash_table_bytes_per_s(const struct flash_table *t, double chunk_bytes,
			       double parallelism);

#endif
