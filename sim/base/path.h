/*
 * path: the search path that finds lifsim's shipped files (model
 * descriptions, device profiles, experiments) by path or short name from any
 * directory (ARCHITECTURE.md, "Search path"; lifsim(1), "SEARCH PATH").
 *
 * A name is looked up in a list of directories, in order:
 *   1. the first directory: the current directory for a command-line
 *      argument, the experiment's directory for a key in an experiment;
 *   2. each directory of LIFSIM_PATH (colon-separated; empty entries skipped);
 *   3. the data directory: the source tree when the binary runs from its build
 *      tree, else <dir of the executable>/../share/lifsim, then the configured
 *      $(pkgdatadir).
 * In each directory D the name is tried as D/NAME; a short name (no '/') is
 * also tried as D/SUB/NAME.ini (NAME as is when it ends in .ini) for each SUB
 * of its kind: models/llms and llms (a model), models/devices and devices (a
 * device), experiments (an experiment). An absolute name is used as is.
 * Directories are tried in order and the first file found wins.
 * Data directories are laid out like the source tree, so an experiment's
 * relative paths (model = ../models/llms/opt-6.7b.ini) hold in both.
 */
#ifndef LIFSIM_PATH_H
#define LIFSIM_PATH_H

#include <stddef.h>

#include "sim/base/err.h"

#define PATH_CAP 4096  /* longest path resolved */
#define PATH_MAX_DIRS 32 /* directories searched at most */

enum path_kind {
	PATH_FILE,       /* any file: no short names */
	PATH_MODEL,      /* a model description (models/llms/NAME.ini) */
	PATH_DEVICE,     /* a device profile (models/devices/NAME.ini) */
	PATH_EXPERIMENT, /* an experiment (experiments/NAME.ini) */
};

/* The directories searched, in order (see above). */
struct path_dirs {
	char dir[PATH_MAX_DIRS][PATH_CAP];
	size_t n;
};

/* Fill dirs: first (NULL or "" for the current directory), the directories of
 * lifsim_path (the value of LIFSIM_PATH; NULL for none), then the data
 * directories; a directory already listed is not listed again. */
void path_dirs_make(struct path_dirs *dirs, const char *first, const char *lifsim_path);

/* The same with LIFSIM_PATH from the environment. */
void path_dirs_default(struct path_dirs *dirs, const char *first);

/* Find name of kind among dirs: the first candidate that is an existing
 * regular file goes to out; an absolute name goes to out as is (its loader
 * reports what is wrong with it). On failure returns ERR_IO with a message
 * that lists every place tried; out is untouched. */
int path_find_in(const char *name, enum path_kind kind, const struct path_dirs *dirs, char *out,
		 size_t cap, struct lif_err *err);

/* path_find_in over path_dirs_default(first). */
int path_find(const char *name, enum path_kind kind, const char *first, char *out, size_t cap,
	      struct lif_err *err);

/* The data directories this binary searches last (for --help and lifsim(1)),
 * into dirs (not cleared first). */
void path_data_dirs(struct path_dirs *dirs);

#endif
