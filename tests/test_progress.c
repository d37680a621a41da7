#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <string.h>

#include "sim/base/progress.h"

struct pcase {
	long long done, total;
	double elapsed_s;
	char want[96];
};

static struct pcase pcases[] = {
	{0, 100, 0, "sweep: 0/100 (0%)"},
	{0, 100, 5, "sweep: 0/100 (0%)"},
	{25, 100, 10, "sweep: 25/100 (25%)  2.5/s  ETA 30s"},
	{1, 400, 2, "sweep: 1/400 (0%)  0.50/s  ETA 13:18"},
	{500, 1000, 1, "sweep: 500/1000 (50%)  500/s  ETA 1s"},
	{10, 40000, 10, "sweep: 10/40000 (0%)  1.0/s  ETA 11:06:30"},
	{100, 100, 61, "sweep: 100/100 (100%)  1.6/s  in 1:01"},
};

ParameterizedTestParameters(progress, lines_show_count_percent_rate_and_eta)
{
	return cr_make_param_array(struct pcase, pcases, sizeof pcases / sizeof pcases[0]);
}

ParameterizedTest(struct pcase *c, progress, lines_show_count_percent_rate_and_eta)
{
	char buf[256];
	progress_format(buf, sizeof buf, "sweep", c->done, c->total, c->elapsed_s);
	cr_expect_str_eq(buf, c->want);
}

Test(progress, durations_read_as_seconds_minutes_or_hours)
{
	char b[32];
	progress_format_duration(b, sizeof b, 0.4);
	cr_expect_str_eq(b, "0s");
	progress_format_duration(b, sizeof b, 59.4);
	cr_expect_str_eq(b, "59s");
	progress_format_duration(b, sizeof b, 60);
	cr_expect_str_eq(b, "1:00");
	progress_format_duration(b, sizeof b, 3600);
	cr_expect_str_eq(b, "1:00:00");
	progress_format_duration(b, sizeof b, -1);
	cr_expect_str_eq(b, "?");
	progress_format_duration(b, sizeof b, INFINITY);
	cr_expect_str_eq(b, "?");
}
