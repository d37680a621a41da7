#include <criterion/criterion.h>
#include <string.h>

#include "sim/base/suggest.h"
#include "tests/testutil.h"

Test(suggest, distance_counts_edits)
{
	cr_expect_eq(suggest_distance("", ""), 0);
	cr_expect_eq(suggest_distance("sweep", "sweep"), 0);
	cr_expect_eq(suggest_distance("swep", "sweep"), 1);
	cr_expect_eq(suggest_distance("kitten", "sitting"), 3);
	cr_expect_eq(suggest_distance("Stats", "stats"), 0, "case-insensitive");
	cr_expect_eq(suggest_distance("abc", ""), 3);
}

Test(suggest, nearest_is_a_typo_or_nothing)
{
	const char *verbs[] = {"synth", "stats", "sweep", "merge", "replay", "record"};
	cr_expect_str_eq(suggest_nearest("swep", verbs, 6), "sweep");
	cr_expect_str_eq(suggest_nearest("stat", verbs, 6), "stats");
	cr_expect_null(suggest_nearest("stast", verbs, 6), "a swap costs 2: too far for 5 letters");
	cr_expect_str_eq(suggest_nearest("recrod", verbs, 6), "record");
	cr_expect_null(suggest_nearest("frobnicate", verbs, 6), "far from every verb");
	cr_expect_null(suggest_nearest("x", verbs, 6));
	const char *keys[] = {"window", "layout", "parallelism"};
	cr_expect_str_eq(suggest_nearest("windw", keys, 3), "window");
	cr_expect_str_eq(suggest_nearest("paralelism", keys, 3), "parallelism");
}

Test(suggest, a_missing_file_suggests_its_neighbour)
{
	char buf[300];
	tu_write("opt-6.7b.ini", "x");
	suggest_file(tu_path("opt-6.7.ini"), buf, sizeof buf);
	cr_expect_str_eq(buf, " (did you mean 'opt-6.7b.ini'?)");
	suggest_file(tu_path("zzzzzzzzzz.ini"), buf, sizeof buf);
	cr_expect_str_eq(buf, "");
	suggest_file("/no/such/dir/x.ini", buf, sizeof buf);
	cr_expect_str_eq(buf, "");
}
