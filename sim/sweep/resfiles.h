/*
 * resfiles: the files of a results directory besides config.resolved.ini
 * (experiments/FORMAT.md, "Output"):
 *   results.csv    the table, RFC 4180
 *   results.jsonl  the same table, one JSON object per row: a cell that is a
 *                  JSON number is a number, an empty cell null, any other a
 *                  string; point_id and row are always strings
 *   provenance.json  schema lifsim-provenance, version 1: lifsim's version
 *                  and commit, date, host, CPU, the run (experiment, kind,
 *                  shard, threads) and the SHA-256 of every input file a
 *                  setting names (model descriptions, device profiles, traces)
 * All are written atomically (sim/base/atomic.h).
 */
#ifndef LIFSIM_RESFILES_H
#define LIFSIM_RESFILES_H

#include <stdio.h>

#include "sim/base/err.h"

#define RESFILES_JSONL "results.jsonl"
#define RESFILES_PROVENANCE "provenance.json"
#define RESFILES_PROV_SCHEMA "lifsim-provenance"
#define RESFILES_PROV_VERSION 1

/* Write DIR/results.csv and DIR/results.jsonl: the header head[nh] and
 * nrows rows of nh cells each (cells[row * nh + col]). */
int resfiles_write_table(const char *dir, const char *const *head, size_t nh,
			 const char *const *cells, size_t nrows, struct lif_err *err);

/* 1 when s is a JSON number literal (RFC 8259). */
int resfiles_is_json_number(const char *s);

/* An input file a setting names. */
struct resfiles_input {
	const char *setting; /* "experiment.model" */
	const char *value;   /* as written in the experiment */
	const char *path;    /* resolved, readable */
};

struct resfiles_run {
	const char *experiment; /* the experiment file */
	const char *kind;
	size_t points;
	int shard_index, shard_count; /* count <= 1: unsharded */
	int threads;
	const struct resfiles_input *inputs;
	size_t ninputs;
};

/* Write DIR/provenance.json for a run. */
int resfiles_write_provenance(const char *dir, const struct resfiles_run *run,
			      struct lif_err *err);

/* Write OUT/provenance.json for a merge: the first shard's provenance with
 * "shard" null and "merged_from" listing every shard's directory, date,
 * host, shard and commit (shards without a provenance.json are listed by
 * directory only). */
int resfiles_merge_provenance(const char *const *dirs, size_t ndirs, const char *out,
			      struct lif_err *err);

#endif
