/*
 * pertoken: per-token detail of one sweep point, HDF5 schema
 * "lifsim-per-token" version 1: one dataset `tokens` of doubles, shape
 * [tokens, PERTOKEN_COLS], whose columns are named by the root attribute
 * `columns` (PERTOKEN_COLUMNS); root attributes `schema`, `schema_version`,
 * `point_id`. Written by the simulate kind when `[output] per_token = true`
 * as DIR/per_token/POINT_ID.h5 (atomically); `lifsim tokens FILE` prints it
 * as CSV for plotting.
 */
#ifndef LIFSIM_PERTOKEN_H
#define LIFSIM_PERTOKEN_H

#include <stdint.h>
#include <stdio.h>

#include "sim/base/err.h"
#include "sim/core/sim.h"

#define PERTOKEN_SCHEMA "lifsim-per-token"
#define PERTOKEN_VERSION 1
/* at most this many tokens in a per-token file (a reader bound) */
#define PERTOKEN_MAX_TOKENS (1LL << 31)
#define PERTOKEN_COLS 7
#define PERTOKEN_COLUMNS "io_ms,mem_ms,compute_ms,total_ms,bytes_read,reads,neurons_loaded"

int pertoken_write(const char *path, const char *point_id, const struct sim_token *tok,
		   int64_t n, struct lif_err *err);

/* Print FILE as CSV (a header row, then one row per token, with `token`). */
int pertoken_print_csv(const char *path, FILE *out, struct lif_err *err);

#endif
