/*
 * csv: the one CSV reader and field writer (RFC 4180: fields are quoted when
 * they hold a comma, a quote, a line break or an edge space; "" is a quote
 * inside a quoted field; records end in \n or \r\n; a quoted field may span
 * lines).
 *
 * csv_read loads a whole file: a header record and rows that each have as many
 * fields as the header. Lines may be of any length. Errors name the file and
 * the line: a missing or unreadable file (ERR_IO), an empty file, a NUL byte,
 * an unterminated quote or a ragged row (ERR_FORMAT).
 */
#ifndef LIFSIM_CSV_H
#define LIFSIM_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "sim/base/err.h"

struct csv_rec {
	char **f; /* (n) fields, owned */
	size_t n;
	int line; /* the line the record starts on (1-based) */
};

struct csv {
	struct csv_rec *recs; /* (n) records; [0] is the header */
	size_t n;
};

/* Read path into *c (zeroed first). On failure *c is empty. */
int csv_read(const char *path, struct csv *c, struct lif_err *err);

/* Free what csv_read filled and zero *c. Accepts an empty csv. */
void csv_free(struct csv *c);

/* The index of the header field named name, or -1. */
long csv_col(const struct csv *c, const char *name);

/* Write field s, quoted when needed, preceded by a comma unless first. */
void csv_write_field(FILE *f, const char *s, int first);

#endif
