/*
 * cli: what every `lifsim VERB` shares: global options (--threads, --quiet),
 * the error convention ("lifsim VERB: what went wrong"; exit 0 on success,
 * 1 for a runtime error, 2 for a usage error), option
 * parsing with clear messages, and progress on stderr when it is a terminal.
 */
#ifndef LIFSIM_CLI_H
#define LIFSIM_CLI_H

#include <getopt.h>

#include "sim/base/conf.h"
#include "sim/base/err.h"
#include "sim/base/path.h"

struct cli_global {
	int threads;  /* --threads N; default: the CPUs this process may use (hostinfo.h) */
	int quiet;    /* --quiet: no summary, no progress */
	int progress; /* stderr is a terminal and not quiet */
};

/* Remove the global options from argv (anywhere before "--") into g.
 * Returns 0, or -1 after printing an error. */
int cli_take_globals(int *argc, char **argv, struct cli_global *g);

/* Exit statuses of every verb. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_RUNTIME 1 /* the work failed: a file, the disk, a bad input's content */
#define CLI_EXIT_USAGE 2   /* the command line is wrong: options, arguments, their values */

/* A runtime error: print "lifsim VERB: msg" to stderr, return CLI_EXIT_RUNTIME. */
int cli_fail(const char *verb, const struct lif_err *err);
int cli_errorf(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A usage error: print "lifsim VERB: msg" to stderr, return CLI_EXIT_USAGE. */
int cli_failf(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Find a file argument through the search path (sim/base/path.h: the current
 * directory, LIFSIM_PATH, the data directory; short names by kind) into buf.
 * Returns buf, or NULL after printing an error that lists the places tried. */
const char *cli_path(const char *verb, enum path_kind kind, const char *arg, char *buf,
		     size_t cap);

/* getopt_long wrapper: returns the option, or -1 at the end; on an unknown
 * option or missing argument prints a clear error and returns '?'. */
int cli_getopt(const char *verb, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

/* Parse a number argument of option `opt`; prints an error on failure. */
int cli_int(const char *verb, const char *opt, const char *s, long long min, long long max,
	    long long *out);
int cli_double(const char *verb, const char *opt, const char *s, double min, double max,
	       double *out);

/* Parse the value s of flag `opt`, which mirrors the INI key [section] key of
 * the option table opts, into field (a variable of the row's type:
 * conf_set_field), with the row's bounds and choices: one source for the flag
 * and the key. s NULL: the row's default. Prints "lifsim VERB: OPT: problem
 * (as [section] key)" on failure. */
int cli_conf(const char *verb, const char *opt, const struct conf_opt *opts, const char *section,
	     const char *key, const char *s, void *field);

/* Progress line "what: 42/100 (42%)  3.1/s  ETA 19s" (sim/base/progress.h)
 * on stderr, redrawn in place at most 5 times a second, only when
 * g->progress (stderr is a terminal and not --quiet). The clock starts at a
 * task's first call (a new `what`, or done going back); done == total ends
 * the line. */
void cli_progress(const struct cli_global *g, const char *what, long long done, long long total);

#endif
