#include "tests/testutil.h"

#include <errno.h>
#include <gsl/gsl_errno.h>
#include <pty.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/base/conf.h"
#include "traces/trace.h"

static char tmpdir[256];
static char pathbuf[8][4096];
static int pathidx;

static void cleanup(void)
{
	char cmd[512];
	if (tmpdir[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd)) {
		}
	}
}

const char *tu_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/tmp/lifsim-test.XXXXXX");
		if (!mkdtemp(tmpdir))
			abort();
		atexit(cleanup);
	}
	return tmpdir;
}

static char *next_buf(void)
{
	pathidx = (pathidx + 1) % 8;
	return pathbuf[pathidx];
}

const char *tu_path(const char *name)
{
	char *b = next_buf();
	snprintf(b, 4096, "%s/%s", tu_tmpdir(), name);
	return b;
}

const char *tu_src(const char *rel)
{
	const char *src = getenv("LIFSIM_SRCDIR");
	char *b = next_buf();
	snprintf(b, 4096, "%s/%s", src ? src : LIFSIM_SRCDIR, rel); /* the build's, by hand */
	return b;
}

const char *tu_write(const char *name, const char *text)
{
	const char *p = tu_path(name);
	FILE *f = fopen(p, "w");
	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
	return p;
}

const char *tu_bin(void)
{
	const char *bin = getenv("LIFSIM");
	return bin ? bin : LIFSIM_BUILDDIR "/lifsim";
}

/* The shell command "PREFIX lifsim ARGS SUFFIX" for printf-style ARGS, lifsim
 * being $LIFSIM or the build tree's (so a test run by hand, without `make
 * check`'s environment, finds the binary and sources it was built with). */
static void lifsim_cmd(char *cmd, size_t cap, const char *prefix, const char *suffix, const char *fmt,
		       va_list ap)
{
	char args[8192];
	vsnprintf(args, sizeof args, fmt, ap);
	snprintf(cmd, cap, "%s%s %s%s", prefix, tu_bin(), args, suffix);
}

int tu_lifsim(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[9000];
	va_list ap;
	va_start(ap, fmt);
	lifsim_cmd(cmd, sizeof cmd, "", " 2>&1", fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	while (fgetc(p) != EOF) {
	}
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tu_lifsim_tty(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[9000];
	va_list ap;
	va_start(ap, fmt);
	lifsim_cmd(cmd, sizeof cmd, "exec ", "", fmt, ap);
	va_end(ap);
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	size_t n = 0;
	for (;;) { /* until the child closes the terminal (EIO on Linux) */
		char buf[4096];
		ssize_t r = read(master, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t k = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
		memcpy(out + n, buf, k);
		n += k;
	}
	out[n] = '\0';
	close(master);
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tu_init(void)
{
	gsl_set_error_handler_off();
	trace_init();
	conf_init();
}
