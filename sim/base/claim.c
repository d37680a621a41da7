#include "sim/base/claim.h"

#include "sim/base/conf.h"
#include "sim/base/envvar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int claim_mul(size_t *out, size_t a, size_t b)
{
	size_t r;
	if (__builtin_mul_overflow(a, b, &r))
		return -1;
	*out = r;
	return 0;
}

int claim_mul3(size_t *out, size_t a, size_t b, size_t c)
{
	size_t ab;
	return claim_mul(&ab, a, b) ? -1 : claim_mul(out, ab, c);
}

int claim_add(size_t *acc, size_t a)
{
	return __builtin_add_overflow(*acc, a, acc) ? -1 : 0;
}

/* A "KEY: N kB" line of /proc/meminfo, in bytes; 0 when absent. */
static uint64_t meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	uint64_t v = 0;
	size_t kl = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtoull(line + kl + 1, NULL, 10) * 1024;
			break;
		}
	if (f)
		fclose(f);
	return v;
}

/* A number in a one-line file; 0 when absent or "max". */
static uint64_t file_number(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[64] = "";
	if (!f)
		return 0;
	if (!fgets(buf, sizeof buf, f))
		buf[0] = '\0';
	fclose(f);
	return strtoull(buf, NULL, 10);
}

uint64_t claim_memory_available(void)
{
	uint64_t avail = meminfo("MemAvailable");
	if (!avail) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		avail = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : UINT64_MAX;
	}
	uint64_t max = file_number("/sys/fs/cgroup/memory.max");
	uint64_t cur = file_number("/sys/fs/cgroup/memory.current");
	if (max && max > cur && max - cur < avail)
		avail = max - cur;
	uint64_t lim = envvar_mem_limit();
	if (lim && lim < avail)
		avail = lim;
	return avail;
}

void claim_format_bytes(char *buf, size_t cap, uint64_t b)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)b;
	int u = 0;
	while (v >= 1024 && u < 6)
		v /= 1024, u++;
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " B", b);
	else
		snprintf(buf, cap, "%.1f %s", v, unit[u]);
}

int claim_memory(const char *path, const char *what, uint64_t need, struct lif_err *err)
{
	uint64_t avail = claim_memory_available();
	if (need <= avail)
		return 0;
	char n[32], a[32];
	claim_format_bytes(n, sizeof n, need);
	claim_format_bytes(a, sizeof a, avail);
	return err_set(err, ERR_NOMEM, "%s: %s needs %s of memory, %s available", path, what, n, a);
}

int claim_regular_file(const char *path, struct lif_err *err)
{
	struct stat st;
	if (stat(path, &st))
		return err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return err_set(err, ERR_INVAL, "%s: is a directory, not a file", path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, ERR_INVAL, "%s: is not a regular file", path);
	return 0;
}
