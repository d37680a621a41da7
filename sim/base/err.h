/*
 * err: the error contract every lifsim module follows.
 *
 * Functions that can fail return 0 on success or a negative ERR_* code, and
 * fill a caller-owned struct lif_err with a human message. The first error
 * wins: once set, later err_set calls leave the message alone, so the
 * innermost (most specific) failure is what the user reads. Library code never
 * prints and never exits; only main() reports errors.
 */
#ifndef LIFSIM_ERR_H
#define LIFSIM_ERR_H

enum err_code {
	ERR_OK = 0,
	ERR_INVAL = -1,  /* bad argument or value */
	ERR_IO = -2,     /* a file could not be opened, read or written */
	ERR_FORMAT = -3, /* a file is malformed, truncated or of the wrong schema */
	ERR_NOMEM = -4,  /* allocation failed */
	ERR_RANGE = -5,  /* a value is outside what the configuration allows */
	ERR_NOSPACE = -6 /* not enough room on disk or in a budget */
};

struct lif_err {
	int code;       /* 0 until the first error */
	char msg[1024]; /* the first error's message */
};

/* Record an error (unless one is already recorded) and return code. */
int err_set(struct lif_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the recorded message with "prefix: " (e.g. a file name). */
void err_prefix(struct lif_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset to "no error". */
void err_clear(struct lif_err *e);

#endif
