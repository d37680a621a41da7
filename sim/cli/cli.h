/*
 * cli: what every `lifsim VERB` shares: global options (--threads, --quiet),
 * the error convention ("lifsim VERB: what went wrong", exit 1), option
 * parsing with clear messages, and progress on stderr when it is a terminal.
 */
#ifndef LIFSIM_CLI_H
#define LIFSIM_CLI_H

#include <getopt.h>

#include "sim/base/err.h"

struct cli_global {
	int threads;  /* --threads N; default: the CPUs this process may use (hostinfo.h) */
	int quiet;    /* --quiet: no summary, no progress */
	int progress; /* stderr is a terminal and not quiet */
};

/* Remove the global options from argv (anywhere before "--") into g.
 * Returns 0, or -1 after printing an error. */
int cli_take_globals(int *argc, char **argv, struct cli_global *g);

/* Print "lifsim VERB: msg" to stderr and return 1 (the exit status). */
int cli_fail(const char *verb, const struct lif_err *err);
int cli_failf(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long wrapper: returns the option, or -1 at the end; on an unknown
 * option or missing argument prints a clear error and returns '?'. */
int cli_getopt(const char *verb, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

/* Parse a number argument of option `opt`; prints an error on failure. */
int cli_int(const char *verb, const char *opt, const char *s, long long min, long long max,
	    long long *out);
int cli_double(const char *verb, const char *opt, const char *s, double min, double max,
	       double *out);

/* Progress line "what: 42%" on stderr (only when g->progress). done == total
 * ends the line. */
void cli_progress(const struct cli_global *g, const char *what, long long done, long long total);

#endif
