/*
 * hostinfo: what a results directory records about the build and the machine
 * that made it (lifsim's version and git commit, host, CPU model, file
 * checksums), and the default worker-thread count: the CPUs this process may
 * run on (sched_getaffinity), capped by a cgroup v2 CPU quota (cpu.max) and
 * by SLURM_CPUS_PER_TASK. The rule itself is a pure function of its inputs
 * (hostinfo_threads_from) so tests can feed it any machine.
 */
#ifndef LIFSIM_HOSTINFO_H
#define LIFSIM_HOSTINFO_H

#include <stddef.h>

#include "sim/base/err.h"

/* lifsim's version (configure.ac) and the git commit it was built from
 * (`git describe --always --dirty` at build time; "unknown" outside git). */
const char *hostinfo_version(void);
const char *hostinfo_commit(void);

/* The host name and the CPU model ("model name" in /proc/cpuinfo, else
 * "unknown") into buf. */
void hostinfo_host(char *buf, size_t cap);
void hostinfo_cpu_model(char *buf, size_t cap);

/* The current UTC time as ISO 8601 ("2026-12-02T14:50:00Z"). */
void hostinfo_date(char *buf, size_t cap);

/* SHA-256 of a file's bytes as 64 hex digits. */
int hostinfo_sha256_file(const char *path, char hex[65], struct lif_err *err);

/* What the default thread count depends on. */
struct hostinfo_cpus {
	int online;            /* CPUs online (sysconf); <= 0: unknown */
	int affinity;          /* CPUs in this process's affinity mask; <= 0: unknown */
	const char *cpu_max;   /* the cgroup v2 cpu.max text ("max 100000", "150000 100000"), or NULL */
	const char *slurm_cpus; /* $SLURM_CPUS_PER_TASK, or NULL */
};

/* The thread count: affinity (else online, else 1), capped by the cgroup
 * quota rounded up (quota / period) and by a valid SLURM_CPUS_PER_TASK;
 * never below 1. Malformed inputs are ignored. */
int hostinfo_threads_from(const struct hostinfo_cpus *in);

/* hostinfo_threads_from on this process: sched_getaffinity, the cpu.max of
 * its cgroup (/proc/self/cgroup, /sys/fs/cgroup; the smallest quota up the
 * tree) and the environment. */
int hostinfo_default_threads(void);

/* The kernel's samplers of page access that are running: DAMON's kdamonds
 * whose admin_dir/kdamonds/N/state reads "on" (admin_dir is
 * /sys/kernel/mm/damon/admin on Linux). 0 when there is no such directory
 * (no DAMON, or no sysfs). The lowest number of one that is on goes to
 * *first (-1 when none) unless first is NULL. A running kdamond clears pages' accessed bits as it
 * samples; on lifsim's test host, memory written again after 40 s idle took
 * twice as long as memory written 1 s before (8 against 17 GB/s), a cost the
 * replay's row conversions pay and calibrate's tables do not: validate and
 * calibrate say so (ARCHITECTURE.md, "What the host does to a
 * measurement"). */
int hostinfo_damon_from(const char *admin_dir, int *first);
int hostinfo_damon(int *first);

/* "lifsim WHO: WARNING ..." on stderr when hostinfo_damon finds a running
 * kdamond, naming it and what it does to WHO's measurements. */
void hostinfo_warn_damon(const char *who);

#endif
