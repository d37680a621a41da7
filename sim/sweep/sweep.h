/*
 * sweep: an experiment INI expanded into points, run in parallel into a
 * results directory. experiments/FORMAT.md is the normative description of
 * the experiment file; this header is the contract of the runner.
 *
 * Expansion. Every key of the experiment (sections other than [vars], [sweep]
 * and [row NAME]) may hold a comma-separated list; the points are the
 * cartesian product of the lists, in file order of the keys, the last key
 * varying fastest. `[sweep] zip = k1, k2` advances lists of equal length
 * together. Each `[row NAME]` section is a named variant of the base (its
 * keys override or add keys) and yields its own product; rows come first in
 * the order, in file order. A point is a struct conf_doc holding one value per
 * key, each entry keeping the file:line it came from.
 *
 * Identity. A point's id is a 64-bit FNV-1a hash of its canonical text (its
 * sorted "[section] key = value" lines and its row name), so it does not
 * depend on key order, includes, point index or shard. Each point's random
 * seed derives from that id (so from the experiment's own `seed` keys too),
 * never from the thread or the point index.
 *
 * Kinds. What a point computes is a `struct sweep_kind` (a const vtable),
 * found by name (`[experiment] kind`, default "simulate") in the const
 * table sweep_kinds[] (sim/sweep/sweep_kinds.c). A point holds every section but
 * [vars], [sweep] and the rows, [experiment] kind included: a kind that
 * applies all sections (conf_apply with NULL) lists that key in its table.
 * `run` is called concurrently from several threads with the same ctx: it
 * must treat ctx as read-only.
 *
 * Output (a directory): results.csv, one row per point in point order:
 * `point`, `point_id`, `row` (only with rows), one column per swept
 * parameter (named by its key, or section.key where the key alone would be
 * ambiguous), the kind's result columns, then every resolved setting as
 * section.key (sorted); results.jsonl, the same rows as JSON Lines;
 * provenance.json (sim/sweep/resfiles.h); and config.resolved.ini, every
 * parameter of every point as used. Both are written atomically (temporary
 * file, fsync, rename); while running, results.csv is rewritten every few
 * seconds, so an interrupted run leaves the points done so far, and a re-run
 * into the same directory keeps the rows whose point_id is still a point of
 * the experiment and computes only the rest.
 */
#ifndef LIFSIM_SWEEP_H
#define LIFSIM_SWEEP_H

#include <gsl/gsl_rng.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/base/conf.h"
#include "sim/base/err.h"

#define SWEEP_RESULTS "results.csv"
#define SWEEP_CONFIG "config.resolved.ini"
#define SWEEP_CONFIG_SCHEMA "lifsim-config-resolved"
#define SWEEP_CONFIG_VERSION 1
#define SWEEP_DEFAULT_KIND "simulate"

struct sweep;     /* an expanded experiment: its points, in order */
struct sweep_row; /* the result columns of one point */

/* ---- point kinds ---- */

/* Compute one point: read parameters from point (conf_apply with the kind's
 * table), set result columns on row. Every point must set the same columns
 * in the same order. Return 0 or a negative ERR_* with err filled. */
typedef int (*sweep_point_fn)(void *ctx, const struct conf_doc *point, struct sweep_row *row,
			      struct lif_err *err);

/* Check one point without computing it (unknown keys, bad values), and add
 * every parameter as the kind will use it (defaults included) to resolved
 * with sweep_resolved_add / sweep_resolved_add_opts. Cheap: it runs on every
 * point before the first point is computed. */
typedef int (*sweep_check_fn)(void *ctx, const struct conf_doc *point, struct conf_doc *resolved,
			      struct lif_err *err);

struct sweep_kind {
	const char *name;    /* [experiment] kind = NAME */
	const char *summary; /* one line for --help */
	/* Shared state for all points (e.g. traces loaded once); NULL: none. */
	int (*ctx_new)(const struct sweep *sw, void **ctx, struct lif_err *err);
	void (*ctx_free)(void *ctx);
	sweep_check_fn check; /* NULL: every point is accepted as given */
	sweep_point_fn run;
};

/* `echo`: result columns `params` (the point's canonical text on one line)
 * and `entries` (its number of keys); for dry runs and tests. */
extern const struct sweep_kind sweep_kind_echo;

/* The NULL-terminated table of kinds the `sweep` verb knows (sweep_kinds.c). */
extern const struct sweep_kind *const sweep_kinds[];

/* Find a kind by name in a NULL-terminated table, or NULL. */
const struct sweep_kind *sweep_kind_find(const struct sweep_kind *const *table, const char *name);

/* ---- result rows (used by kinds) ---- */

/* Set a result column. Names are non-empty without , " . or newlines, not
 * point, point_id or row, and unique within a row; a bad or repeated name is recorded in the row and
 * fails the point. Numbers are written in the shortest form that reads back
 * exactly (nan and inf as such). Return 0 or ERR_INVAL / ERR_NOMEM. */
int sweep_row_set_num(struct sweep_row *row, const char *name, double v);
int sweep_row_set_int(struct sweep_row *row, const char *name, long long v);
int sweep_row_set_str(struct sweep_row *row, const char *name, const char *v);

/* The point being computed: its index, id, seed, row name (NULL without
 * rows), and a gsl_rng (mt19937, seeded from the seed) created on first call
 * and owned by the row (NULL if out of memory). */
size_t sweep_row_point(const struct sweep_row *row);
uint64_t sweep_row_id(const struct sweep_row *row);
uint64_t sweep_row_seed(const struct sweep_row *row);
const char *sweep_row_label(const struct sweep_row *row);
gsl_rng *sweep_row_rng(struct sweep_row *row);

/* The results directory of the run (for a kind's side outputs, e.g.
 * per-token detail), or NULL when the row was made outside a run. */
const char *sweep_row_dir(const struct sweep_row *row);
void sweep_row_set_dir(struct sweep_row *row, const char *dir);

/* A fresh row for point (to call a kind's run directly, e.g. in tests);
 * NULL if out of memory. sweep_row_free accepts NULL. */
struct sweep_row *sweep_row_new(const struct sweep *sw, size_t point);
void sweep_row_free(struct sweep_row *row);

/* The columns set so far, in set order; the first failed set's message, or
 * NULL. */
size_t sweep_row_columns(const struct sweep_row *row);
const char *sweep_row_name(const struct sweep_row *row, size_t col);
const char *sweep_row_value(const struct sweep_row *row, size_t col);
const char *sweep_row_error(const struct sweep_row *row);

/* ---- resolved parameters (used by a kind's check) ---- */

/* Record that [section] key is used with value (replaces an earlier one). */
int sweep_resolved_add(struct conf_doc *resolved, const char *section, const char *key,
		       const char *value);
/* Record every option of a conf_opt table as its current value in target. */
int sweep_resolved_add_opts(struct conf_doc *resolved, const struct conf_opt *opts,
			    const void *target);

/* ---- expansion ---- */

/* Read and expand an experiment file. Errors name file:line and the key. */
int sweep_new(const char *path, struct sweep **out, struct lif_err *err);
void sweep_free(struct sweep *sw);

size_t sweep_points(const struct sweep *sw);
const char *sweep_path(const struct sweep *sw);
const char *sweep_kind_name(const struct sweep *sw);    /* [experiment] kind */
const struct conf_doc *sweep_doc(const struct sweep *sw); /* the file as read */
uint64_t sweep_point_id(const struct sweep *sw, size_t point);
const char *sweep_point_label(const struct sweep *sw, size_t point); /* row name or NULL */

/* Build point's parameters as a document owned by the caller (conf_doc_free). */
int sweep_point_doc(const struct sweep *sw, size_t point, struct conf_doc **out,
		    struct lif_err *err);

/* Swept parameters (keys whose value differs between points), in column order. */
size_t sweep_params(const struct sweep *sw);
const char *sweep_param_section(const struct sweep *sw, size_t param);
const char *sweep_param_key(const struct sweep *sw, size_t param);
/* The parameter's value at a point ("" where the point lacks the key). */
const char *sweep_param_value(const struct sweep *sw, size_t point, size_t param);

/* "window=5 layout=rowcol" (row and swept values) for messages. */
void sweep_point_describe(const struct sweep *sw, size_t point, char *buf, size_t cap);

/* ---- running ---- */

struct sweep_report;

struct sweep_opts {
	const char *dir;    /* output directory; created if missing */
	int threads;        /* >= 1 */
	int shard_index;    /* run the points with index % shard_count == shard_index */
	int shard_count;    /* 0 or 1: all points */
	double flush_s;     /* rewrite results.csv at most this often while running; <= 0: 2 s */
	const volatile sig_atomic_t *stop; /* set nonzero to stop starting points; may be NULL */
	void (*progress)(void *pctx, size_t done, size_t total); /* may be NULL */
	/* called once before computing, with the report's counts; may be NULL */
	void (*planned)(void *pctx, const struct sweep_report *rep);
	void *progress_ctx; /* passed to progress and planned */
};

struct sweep_report {
	size_t points;      /* in the experiment */
	size_t in_shard;    /* selected by the shard */
	size_t kept;        /* rows kept from an earlier results.csv */
	size_t computed;    /* points computed by this run */
	int resumed;        /* an earlier results.csv was found */
	size_t new_points;  /* of the shard, points not in the earlier results.csv */
	char new_list[256]; /* their indices ("3, 7, 12, ... (40 more)") */
};

/* Run kind.check on every point in order; the first failure is the error,
 * prefixed with the point. */
int sweep_validate(const struct sweep *sw, const struct sweep_kind *kind, void *ctx,
		   struct lif_err *err);

/* Validate, write config.resolved.ini, then compute every point of the shard
 * not already in DIR/results.csv on o->threads threads and write
 * results.csv (see the top of this header). The report may be NULL. */
int sweep_run(const struct sweep *sw, const struct sweep_kind *kind, void *ctx,
	      const struct sweep_opts *o, struct sweep_report *rep, struct lif_err *err);

/* Write the points (point, point_id, row, swept parameters) as CSV to f. */
int sweep_list(const struct sweep *sw, FILE *f, struct lif_err *err);

/* Join the results directories of shards of one experiment into out_dir:
 * identical config.resolved.ini and columns, no point twice, every point
 * present; copies each point's per_token/POINT_ID.h5 from the shard its row
 * comes from (when there is one), then writes results.csv (point order) and
 * config.resolved.ini. */
int sweep_merge(const char *const *dirs, size_t ndirs, const char *out_dir,
		struct lif_err *err);

#endif
