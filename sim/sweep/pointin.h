/*
 * pointin: the inputs sweep kinds share across points (sim/kind_*.c):
 * a model description with its trace and simulator cache, loaded once per
 * distinct (model, trace, synth parameters, scale, load flags); device
 * profiles, once per path; and relative paths resolved against the file that
 * names them. Thread-safe: points run concurrently and only read what they
 * get. This is the edge where files are read; the simulator core is not.
 */
#ifndef LIFSIM_POINTIN_H
#define LIFSIM_POINTIN_H

#include "models/device.h"
#include "models/llm.h"
#include "sim/base/conf.h"
#include "sim/base/err.h"
#include "sim/base/path.h"
#include "sim/core/sim.h"
#include "traces/synth.h"
#include "traces/trace.h"

struct pointin;

/* One loaded model + trace + its simulator cache. */
struct pointin_trace {
	struct llm_desc m;
	struct trace *t;
	struct sim_cache *cache;
};

struct pointin_spec {
	const char *model;                /* a models/llms file */
	const char *trace;                /* a trace file, or "synth" */
	const struct synth_params *synth; /* trace = synth: the generator's parameters */
	double scale;                     /* 0 or 1: as described; else replay_scale_model */
	int load_flags;                   /* TRACE_LOAD_* */
	int threads;                      /* threads that load the trace (0: 1); not part of the key */
	int stream;                       /* 1: read a trace file by blocks of tokens as the cache
					     needs them (sim_cache_new_stream: t holds the metadata
					     only), unless inputs are loaded; 0: load it whole */
};

struct pointin *pointin_new(struct lif_err *err);
void pointin_free(struct pointin *pi);

const struct pointin_trace *pointin_trace(struct pointin *pi, const struct pointin_spec *spec,
					  struct lif_err *err);
const struct device *pointin_device(struct pointin *pi, const char *path, struct lif_err *err);

/* Resolve a relative path (not empty, not "synth") that the [section] key of
 * doc gave (the last such entry) through the search path (sim/base/path.h),
 * first in the directory of the file that gave it. A model or device that is
 * found nowhere is an error naming the file, line, key and the places
 * searched; any other file not found is left relative to that directory (it
 * may be an output, or its loader reports it). */
int pointin_resolve(char *path, size_t cap, const struct conf_doc *doc, const char *section,
		    const char *key, enum path_kind kind, struct lif_err *err);

/* A point's document read through option tables: each table fills its
 * struct from the entries of its section (NULL: every section no table before
 * it names; the last table's). */
struct pointin_table {
	const char *section;
	const struct conf_opt *opts;
	void *target;
};

/* Apply each entry of doc (but those of section `skip`, may be NULL) through
 * the first table for its section (the caller set the defaults); an entry no
 * row takes is "FILE:LINE: [section] key: unknown key (did you mean ...)".
 * Then every required key (a string row without default) must have been
 * given: "[section] key: required key is missing". */
int pointin_apply(const struct conf_doc *doc, const struct pointin_table *t, size_t n,
		  const char *skip, struct lif_err *err);

/* A path field of a point and the key that gave it (pointin_resolve). */
struct pointin_path {
	char *path;
	size_t cap;
	const char *section, *key;
	enum path_kind kind;
};

/* Resolve the n paths in order; the first error wins. */
int pointin_resolve_all(const struct conf_doc *doc, const struct pointin_path *p, size_t n,
			struct lif_err *err);

#endif
