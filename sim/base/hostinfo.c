#include "sim/base/hostinfo.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <nettle/sha2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/base/commit.h" /* generated at build time: LIFSIM_COMMIT */

const char *hostinfo_version(void)
{
	return PACKAGE_VERSION;
}

const char *hostinfo_commit(void)
{
	return LIFSIM_COMMIT;
}

void hostinfo_host(char *buf, size_t cap)
{
	if (gethostname(buf, cap) != 0)
		snprintf(buf, cap, "unknown");
	buf[cap - 1] = '\0';
}

void hostinfo_cpu_model(char *buf, size_t cap)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");
	snprintf(buf, cap, "unknown");
	while (f && fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon += 1 + strspn(colon + 1, " \t");
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, cap, "%s", colon);
		break;
	}
	if (f)
		fclose(f);
}

void hostinfo_date(char *buf, size_t cap)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int hostinfo_sha256_file(const char *path, char hex[65], struct lif_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
	struct sha256_ctx ctx;
	unsigned char buf[65536], d[SHA256_DIGEST_SIZE];
	size_t n;
	sha256_init(&ctx);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		sha256_update(&ctx, n, buf);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return err_set(err, ERR_IO, "%s: read error", path);
	sha256_digest(&ctx, sizeof d, d);
	for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return 0;
}

/* ceil(quota / period) from "QUOTA PERIOD", or -1 ("max" or malformed). */
static int quota_cpus(const char *s)
{
	char q[32];
	long long period;
	char tail;
	if (!s || sscanf(s, "%31s %lld %c", q, &period, &tail) != 2 || period <= 0)
		return -1;
	char *end;
	errno = 0;
	long long quota = strtoll(q, &end, 10);
	if (*end || errno || quota <= 0)
		return -1;
	return (int)((quota + period - 1) / period);
}

static int positive_int(const char *s)
{
	char *end;
	if (!s || !*s)
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	return *end || errno || v <= 0 || v > 1 << 20 ? -1 : (int)v;
}

int hostinfo_threads_from(const struct hostinfo_cpus *in)
{
	int n = in->affinity > 0 ? in->affinity : in->online > 0 ? in->online : 1;
	int q = quota_cpus(in->cpu_max), s = positive_int(in->slurm_cpus);
	if (q > 0 && q < n)
		n = q;
	if (s > 0 && s < n)
		n = s;
	return n;
}

/* The smallest cpu.max quota from this process's cgroup up to the root,
 * copied into buf; NULL when there is none. */
static const char *cgroup_cpu_max(char *buf, size_t cap)
{
	char line[4096], path[4300], text[128];
	FILE *f = fopen("/proc/self/cgroup", "r");
	const char *best = NULL;
	int best_n = 0;
	if (!f)
		return NULL;
	char *rel = NULL;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "0::", 3)) {
			rel = line + 3;
			rel[strcspn(rel, "\n")] = '\0';
			break;
		}
	fclose(f);
	for (int up = 0; rel && up < 64; up++) {
		snprintf(path, sizeof path, "/sys/fs/cgroup%s%scpu.max", rel,
			 rel[0] && rel[strlen(rel) - 1] == '/' ? "" : "/");
		FILE *m = fopen(path, "r");
		if (m && fgets(text, sizeof text, m)) {
			int n = quota_cpus(text);
			if (n > 0 && (!best || n < best_n)) {
				snprintf(buf, cap, "%s", text);
				best = buf, best_n = n;
			}
		}
		if (m)
			fclose(m);
		char *slash = strrchr(rel, '/');
		if (!slash || (slash == rel && !rel[1]))
			break;
		slash[slash == rel] = '\0'; /* "/a/b" -> "/a", "/a" -> "/" */
	}
	return best;
}

int hostinfo_default_threads(void)
{
	cpu_set_t set;
	char cpu_max[128];
	struct hostinfo_cpus in = {.online = (int)sysconf(_SC_NPROCESSORS_ONLN), .affinity = -1,
				   .slurm_cpus = getenv("SLURM_CPUS_PER_TASK")};
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		in.affinity = CPU_COUNT(&set);
	in.cpu_max = cgroup_cpu_max(cpu_max, sizeof cpu_max);
	return hostinfo_threads_from(&in);
}

int hostinfo_damon_from(const char *admin_dir, int *first)
{
	char path[4400], text[16];
	snprintf(path, sizeof path, "%s/kdamonds", admin_dir);
	DIR *d = opendir(path);
	int on = 0, lowest = -1;
	for (struct dirent *e; d && (e = readdir(d));) {
		char *end;
		long k = strtol(e->d_name, &end, 10);
		if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || k > 1 << 20)
			continue; /* "nr_kdamonds", ".", ".." */
		snprintf(path, sizeof path, "%s/kdamonds/%s/state", admin_dir, e->d_name);
		FILE *f = fopen(path, "r");
		if (f && fgets(text, sizeof text, f) && !strncmp(text, "on", 2) &&
		    (text[2] == '\n' || !text[2])) {
			on++;
			if (lowest < 0 || k < lowest)
				lowest = (int)k;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	if (first)
		*first = lowest;
	return on;
}

int hostinfo_damon(int *first)
{
	return hostinfo_damon_from("/sys/kernel/mm/damon/admin", first);
}

void hostinfo_warn_damon(const char *who)
{
	int first, n = hostinfo_damon(&first);
	if (n > 0)
		fprintf(stderr,
			"lifsim %s: WARNING the kernel samples page access "
			"(/sys/kernel/mm/damon/admin/kdamonds/%d/state is on%s): memory that sat "
			"idle is written up to 2x slower than memory just written, which "
			"calibrate's rates are measured on, so a replay's mem_ms reads high "
			"against the prediction (ARCHITECTURE.md, \"What the host does to a "
			"measurement\")\n",
			who, first, n > 1 ? ", and others" : "");
}
