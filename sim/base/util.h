/*
 * util: small helpers every layer shares, one copy each: a qsort comparator
 * for doubles, a monotonic clock, and a whole-file reader.
 */
#ifndef LIFSIM_UTIL_H
#define LIFSIM_UTIL_H

#include <stddef.h>

#include "sim/base/err.h"

/* qsort comparator: ascending doubles (NaNs compare equal to everything). */
int util_cmp_double(const void *a, const void *b);

/* Nanoseconds on CLOCK_MONOTONIC (for differences only; the origin is
 * arbitrary). */
double util_now_ns(void);

/* The whole of path as a NUL-terminated string the caller frees, its length
 * (without the NUL) in *len when len is not NULL. max_bytes > 0 refuses a
 * larger file (ERR_RANGE). NULL on failure, with err naming the file. */
char *util_read_file(const char *path, size_t max_bytes, size_t *len, struct lif_err *err);

#endif
