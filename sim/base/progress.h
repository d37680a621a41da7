/*
 * progress: the text of a progress line, "what: done/total (pct%) rate/s
 * ETA h:mm:ss", as a pure function of the counts and the elapsed time, so it
 * is tested without a clock or a terminal. The CLI (sim/cli/cli.h) draws it
 * on stderr, in place, when stderr is a terminal.
 */
#ifndef LIFSIM_PROGRESS_H
#define LIFSIM_PROGRESS_H

#include <stddef.h>

/* Duration as "42s", "3:07" (m:ss) or "1:02:03" (h:mm:ss); "?" when not
 * finite or negative. */
void progress_format_duration(char *buf, size_t cap, double s);

/* The line for done of total after elapsed_s seconds. The rate and ETA are
 * shown once something is done and time has passed; a finished line shows
 * the total time instead of the ETA. */
void progress_format(char *buf, size_t cap, const char *what, long long done, long long total,
		     double elapsed_s);

#endif
