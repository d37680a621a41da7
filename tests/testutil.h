/* testutil: helpers shared by the Criterion tests (temporary dirs, running
 * the lifsim binary, fixture paths). */
#ifndef LIFSIM_TESTUTIL_H
#define LIFSIM_TESTUTIL_H

#include <stddef.h>

/* A fresh temporary directory for this test (removed at exit). */
const char *tu_tmpdir(void);

/* Path of a file in the temporary directory. */
const char *tu_path(const char *name);

/* Path under the source tree ($LIFSIM_SRCDIR, else the one built from). */
const char *tu_src(const char *rel);
/* The lifsim binary under test: $LIFSIM, else the build tree's. */
const char *tu_bin(void);

/* Write text to a file in the temporary directory; returns its path. */
const char *tu_write(const char *name, const char *text);

/* Run `lifsim ARGS` (tu_bin()), capturing stderr+stdout into out.
 * Returns the exit status. */
int tu_lifsim(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same with stdin, stdout and stderr on a pseudo-terminal (forkpty), as
 * when a user runs it: what a terminal shows (progress lines) is in out, with
 * the terminal's \r\n line ends. Returns the exit status. */
int tu_lifsim_tty(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Library start-up that main() does (HDF5 / GSL / inih settings). */
void tu_init(void);

#endif
