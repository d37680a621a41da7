#include "sim/base/progress.h"

#include <math.h>
#include <stdio.h>

void progress_format_duration(char *buf, size_t cap, double s)
{
	if (!isfinite(s) || s < 0) {
		snprintf(buf, cap, "?");
		return;
	}
	long long t = (long long)(s + 0.5);
	if (t < 60)
		snprintf(buf, cap, "%llds", t);
	else if (t < 3600)
		snprintf(buf, cap, "%lld:%02lld", t / 60, t % 60);
	else
		snprintf(buf, cap, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
}

/* "12.3/s", "0.25/s", "1520/s" */
static void format_rate(char *buf, size_t cap, double r)
{
	snprintf(buf, cap, r >= 100 ? "%.0f/s" : r >= 1 ? "%.1f/s" : "%.2f/s", r);
}

void progress_format(char *buf, size_t cap, const char *what, long long done, long long total,
		     double elapsed_s)
{
	char rate[32] = "", t[32] = "";
	int pct = total > 0 ? (int)(done * 100 / total) : 0;
	if (done > 0 && elapsed_s > 0) {
		double r = (double)done / elapsed_s;
		format_rate(rate, sizeof rate, r);
		progress_format_duration(t, sizeof t, done >= total ? elapsed_s : (double)(total - done) / r);
	}
	if (!rate[0])
		snprintf(buf, cap, "%s: %lld/%lld (%d%%)", what, done, total, pct);
	else
		snprintf(buf, cap, "%s: %lld/%lld (%d%%)  %s  %s %s", what, done, total, pct, rate,
			 done >= total ? "in" : "ETA", t);
}
