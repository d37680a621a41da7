#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "sim/base/hostinfo.h"
#include "tests/testutil.h"

TestSuite(hostinfo, .init = tu_init);

/* Criterion copies parameters into the test process: arrays, not pointers;
 * "-" stands for an absent input (NULL). */
struct threads_case {
	int online, affinity;
	char cpu_max[32], slurm[16];
	int want;
	char why[80];
};

static struct threads_case threads_cases[] = {
	{8, 8, "-", "-", 8, "a whole machine: every core"},
	{8, 2, "-", "-", 2, "taskset / Slurm cgroup: the affinity mask"},
	{8, -1, "-", "-", 8, "no affinity: the online CPUs"},
	{-1, -1, "-", "-", 1, "nothing known: one thread"},
	{8, 8, "max 100000", "-", 8, "no quota"},
	{8, 8, "200000 100000", "-", 2, "a quota of two CPUs"},
	{8, 8, "150000 100000", "-", 2, "a quota of 1.5 CPUs rounds up"},
	{8, 8, "50000 100000", "-", 1, "half a CPU: one thread"},
	{8, 3, "800000 100000", "-", 3, "a quota above the affinity: the affinity"},
	{8, 8, "garbage", "-", 8, "a malformed cpu.max is ignored"},
	{8, 8, "100000 0", "-", 8, "a zero period is ignored"},
	{8, 8, "-", "4", 4, "SLURM_CPUS_PER_TASK"},
	{8, 2, "-", "4", 2, "SLURM_CPUS_PER_TASK above the affinity: the affinity"},
	{8, 8, "300000 100000", "4", 3, "the smallest of the three"},
	{8, 8, "-", "0", 8, "SLURM_CPUS_PER_TASK=0 is ignored"},
	{8, 8, "-", "4x", 8, "a malformed SLURM_CPUS_PER_TASK is ignored"},
	{8, 8, "-", "", 8, "an empty SLURM_CPUS_PER_TASK is ignored"},
};

ParameterizedTestParameters(hostinfo, default_threads_follow_affinity_quota_and_slurm)
{
	return cr_make_param_array(struct threads_case, threads_cases,
				   sizeof threads_cases / sizeof threads_cases[0]);
}

ParameterizedTest(struct threads_case *c, hostinfo, default_threads_follow_affinity_quota_and_slurm,
		  .init = tu_init)
{
	struct hostinfo_cpus in = {c->online, c->affinity, strcmp(c->cpu_max, "-") ? c->cpu_max : NULL,
				   strcmp(c->slurm, "-") ? c->slurm : NULL};
	cr_expect_eq(hostinfo_threads_from(&in), c->want, "%s: got %d", c->why,
		     hostinfo_threads_from(&in));
}

Test(hostinfo, this_process_gets_at_least_one_thread)
{
	cr_expect_geq(hostinfo_default_threads(), 1);
}

Test(hostinfo, sha256_of_a_known_file)
{
	char hex[65];
	struct lif_err e = {0};
	cr_assert_eq(hostinfo_sha256_file(tu_write("abc.txt", "abc"), hex, &e), 0, "%s", e.msg);
	cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cr_expect_neq(hostinfo_sha256_file(tu_path("missing"), hex, &e), 0);
	cr_expect(strstr(e.msg, "missing: cannot open") != NULL, "%s", e.msg);
}

Test(hostinfo, version_commit_and_date_are_filled)
{
	char d[64];
	cr_expect_str_eq(hostinfo_version(), PACKAGE_VERSION);
	cr_expect_gt(strlen(hostinfo_commit()), 0);
	hostinfo_date(d, sizeof d);
	cr_expect_eq(strlen(d), 20, "%s", d);
	cr_expect_eq(d[19], 'Z');
}

/* admin/kdamonds/K/state with the given text (NULL: no state file). */
static void kdamond(const char *admin, const char *k, const char *state)
{
	char path[4200];
	snprintf(path, sizeof path, "mkdir -p %s/kdamonds/%s", admin, k);
	cr_assert_eq(system(path), 0);
	if (!state)
		return;
	snprintf(path, sizeof path, "%s/kdamonds/%s/state", admin, k);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs(state, f);
	fclose(f);
}

Test(hostinfo, damon_counts_the_kdamonds_that_are_on)
{
	char admin[4200];
	int first = 7;
	snprintf(admin, sizeof admin, "%s/admin", tu_path("damon"));
	cr_expect_eq(hostinfo_damon_from(admin, &first), 0, "no directory: none");
	cr_expect_eq(first, -1);
	kdamond(admin, "0", "off\n");
	kdamond(admin, "1", NULL); /* no state file */
	kdamond(admin, "nr_kdamonds", NULL); /* not a kdamond */
	cr_expect_eq(hostinfo_damon_from(admin, &first), 0, "off and unreadable: none");
	cr_expect_eq(first, -1);
	kdamond(admin, "3", "on\n");
	kdamond(admin, "2", "on");
	kdamond(admin, "4", "online\n"); /* not "on" */
	cr_expect_eq(hostinfo_damon_from(admin, &first), 2);
	cr_expect_eq(first, 2, "the lowest number: got %d", first);
}
