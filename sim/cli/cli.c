#include "sim/cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/base/conf.h"
#include "sim/base/hostinfo.h"
#include "sim/base/progress.h"
#include "sim/base/suggest.h"
#include <errno.h>

int cli_take_globals(int *argc, char **argv, struct cli_global *g)
{
	g->threads = hostinfo_default_threads();
	g->quiet = 0;
	int out = 1;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
			g->quiet = 1;
			continue;
		}
		const char *val = NULL;
		if (!strcmp(a, "--threads")) {
			if (i + 1 >= *argc) {
				fprintf(stderr, "lifsim: --threads needs a value\n");
				return -1;
			}
			val = argv[++i];
		} else if (!strncmp(a, "--threads=", 10)) {
			val = a + 10;
		}
		if (val) {
			long long t;
			if (conf_parse_int(val, &t) || t < 1 || t > 1024) {
				fprintf(stderr, "lifsim: --threads: '%s' is not a thread count in [1, 1024]\n", val);
				return -1;
			}
			g->threads = (int)t;
			continue;
		}
		argv[out++] = argv[i];
	}
	*argc = out;
	argv[out] = NULL;
	g->progress = !g->quiet && isatty(STDERR_FILENO);
	return 0;
}

const char *cli_path(const char *verb, enum path_kind kind, const char *arg, char *buf,
		     size_t cap)
{
	struct lif_err err = {0};
	if (path_find(arg, kind, NULL, buf, cap, &err)) {
		cli_fail(verb, &err);
		return NULL;
	}
	if (kind != PATH_FILE && access(buf, F_OK)) { /* a path as given: a near name? */
		int eno = errno;
		char hint[256] = "";
		suggest_file(buf, hint, sizeof hint);
		cli_errorf(verb, "%s: cannot open: %s%s", buf, strerror(eno), hint);
		return NULL;
	}
	return buf;
}

int cli_fail(const char *verb, const struct lif_err *err)
{
	fprintf(stderr, "lifsim %s: %s\n", verb, err->code ? err->msg : "failed");
	return CLI_EXIT_RUNTIME;
}

static void vsay(const char *verb, const char *fmt, va_list ap)
{
	fprintf(stderr, "lifsim %s: ", verb);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_errorf(const char *verb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(verb, fmt, ap);
	va_end(ap);
	return CLI_EXIT_RUNTIME;
}

int cli_failf(const char *verb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(verb, fmt, ap);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

int cli_getopt(const char *verb, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	char so[128];
	snprintf(so, sizeof so, ":%s", shortopts);
	opterr = 0;
	int c = getopt_long(argc, argv, so, longopts, NULL);
	if (c == '?') {
		if (optopt)
			cli_failf(verb, "unknown option '-%c' (see lifsim %s --help)", optopt, verb);
		else
			cli_failf(verb, "unknown option '%s' (see lifsim %s --help)", argv[optind - 1], verb);
	} else if (c == ':') {
		cli_failf(verb, "option '%s' needs a value", argv[optind - 1]);
		c = '?';
	}
	return c;
}

int cli_int(const char *verb, const char *opt, const char *s, long long min, long long max,
	    long long *out)
{
	if (conf_parse_int(s, out) || *out < min || *out > max) {
		cli_failf(verb, "%s: '%s' is not an integer in [%lld, %lld]", opt, s, min, max);
		return -1;
	}
	return 0;
}

int cli_conf(const char *verb, const char *opt, const struct conf_opt *opts, const char *section,
	     const char *key, const char *s, void *field)
{
	const struct conf_opt *o = conf_find(opts, section, key);
	struct lif_err err = {0};
	if (!o)
		return cli_failf(verb, "%s: no key [%s] %s to parse it by", opt, section, key), -1;
	if (!conf_set_field(o, field, s ? s : o->def ? o->def : "", &err))
		return 0;
	size_t n = strlen(o->name); /* the message starts "NAME: " */
	const char *what = strncmp(err.msg, o->name, n) || strncmp(err.msg + n, ": ", 2)
				   ? err.msg
				   : err.msg + n + 2;
	cli_failf(verb, "%s: %s (as [%s] %s)", opt, what, section, key);
	return -1;
}

int cli_double(const char *verb, const char *opt, const char *s, double min, double max,
	       double *out)
{
	if (conf_parse_double(s, out) || *out < min || *out > max) {
		cli_failf(verb, "%s: '%s' is not a number in [%g, %g]", opt, s, min, max);
		return -1;
	}
	return 0;
}

/* The progress line being drawn: the CLI's one piece of process state (a
 * verb draws one task at a time). */
static struct {
	char what[64];
	long long last_done;
	double t0, drawn;
	size_t width;
} progress_line;

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress(const struct cli_global *g, const char *what, long long done, long long total)
{
	if (!g->progress || total <= 0)
		return;
	double now = mono_s();
	if (strncmp(progress_line.what, what, sizeof progress_line.what - 1) ||
	    done < progress_line.last_done) {
		snprintf(progress_line.what, sizeof progress_line.what, "%s", what);
		progress_line.t0 = now, progress_line.drawn = 0, progress_line.width = 0;
	}
	progress_line.last_done = done;
	if (done < total && now - progress_line.drawn < 0.2)
		return; /* redraw at most five times a second */
	char line[256];
	progress_format(line, sizeof line, what, done, total, now - progress_line.t0);
	size_t n = strlen(line);
	fprintf(stderr, "\r%s%*s", line, (int)(progress_line.width > n ? progress_line.width - n : 0), "");
	progress_line.width = n, progress_line.drawn = now;
	if (done >= total) {
		fputc('\n', stderr);
		progress_line.what[0] = '\0';
	}
	fflush(stderr);
}
