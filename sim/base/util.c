/* util.c: the shared small helpers (the contract is in util.h). */
#include "sim/base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int util_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double util_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Read f to its end into a growing buffer; ERR_* or 0. */
static int read_all(FILE *f, const char *path, size_t max_bytes, char **out, size_t *len,
		    struct lif_err *err)
{
	size_t cap = 0, n = 0, got;
	char *buf = NULL;
	do {
		if (n + 65536 + 1 > cap) {
			char *nb = realloc(buf, cap = 2 * cap + 65536 + 1);
			if (!nb) {
				free(buf);
				return err_set(err, ERR_NOMEM, "%s: out of memory reading it", path);
			}
			buf = nb;
		}
		n += got = fread(buf + n, 1, cap - n - 1, f);
		if (max_bytes && n > max_bytes) {
			free(buf);
			return err_set(err, ERR_RANGE, "%s: larger than %zu bytes", path, max_bytes);
		}
	} while (got);
	if (ferror(f)) {
		free(buf);
		return err_set(err, ERR_IO, "%s: cannot read: %s", path, strerror(errno));
	}
	buf[n] = '\0';
	*out = buf, *len = n;
	return 0;
}

char *util_read_file(const char *path, size_t max_bytes, size_t *len, struct lif_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = NULL;
	size_t n = 0;
	read_all(f, path, max_bytes, &buf, &n, err);
	fclose(f);
	if (buf && len)
		*len = n;
	return buf;
}
