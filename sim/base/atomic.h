/*
 * atomic: write a file so that readers see either the old file or the whole
 * new one, never a half-written one: write "PATH.tmp", fsync, rename, fsync
 * the directory.
 */
#ifndef LIFSIM_ATOMIC_H
#define LIFSIM_ATOMIC_H

#include <stdio.h>

#include "sim/base/err.h"

struct atomic_file {
	FILE *fp;          /* write here */
	char path[4096];   /* final name */
	char tmp[4200];    /* temporary name */
};

/* Open the temporary file for path. */
int atomic_open(struct atomic_file *af, const char *path, struct lif_err *err);

/* Flush, fsync, close and rename into place; on failure the temporary file is
 * removed and path is untouched. */
int atomic_commit(struct atomic_file *af, struct lif_err *err);

/* Close and remove the temporary file (after an error). Safe to call twice. */
void atomic_abort(struct atomic_file *af);

#endif
