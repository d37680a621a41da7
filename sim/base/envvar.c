/* envvar: lifsim's environment variables, checked (see envvar.h). */
#include "sim/base/envvar.h"

#include <errno.h>
#include <stdlib.h>

#include "sim/base/conf.h"

/* Each parser: 0 and *out on a valid value, else -1 with *why set. */
static int parse_stream_block(const char *s, int64_t *out, const char **why)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < 1) {
		*why = "not a whole number of tokens >= 1";
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_mem_limit(const char *s, uint64_t *out, const char **why)
{
	long long v;
	if (conf_parse_bytes(s, &v) || v < 1) {
		*why = "not a size in bytes >= 1 (e.g. 8GiB, 512MB, 1048576)";
		return -1;
	}
	*out = (uint64_t)v;
	return 0;
}

static int parse_time_limit(const char *s, double *out, const char **why)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= ENVVAR_HDF5_TIME_MIN && v <= ENVVAR_HDF5_TIME_MAX)) {
		*why = "not a number of seconds from 0.01 to 86400";
		return -1;
	}
	*out = v;
	return 0;
}

/* getenv, with an empty value taken as unset */
static const char *env(const char *name)
{
	const char *s = getenv(name);
	return s && *s ? s : NULL;
}

int envvar_check(struct lif_err *err)
{
	const char *why = NULL, *name = NULL, *s;
	int64_t b;
	uint64_t m;
	double t;
	if ((s = env("LIFSIM_STREAM_BLOCK")) && parse_stream_block(s, &b, &why))
		name = "LIFSIM_STREAM_BLOCK";
	else if ((s = env("LIFSIM_MEM_LIMIT")) && parse_mem_limit(s, &m, &why))
		name = "LIFSIM_MEM_LIMIT";
	else if ((s = env("LIFSIM_HDF5_TIME_LIMIT")) && parse_time_limit(s, &t, &why))
		name = "LIFSIM_HDF5_TIME_LIMIT";
	if (!name)
		return 0;
	return err_set(err, ERR_INVAL, "%s='%s': %s (lifsim(1), ENVIRONMENT)", name, s, why);
}

int64_t envvar_stream_block(void)
{
	const char *s = env("LIFSIM_STREAM_BLOCK"), *why;
	int64_t v;
	return s && !parse_stream_block(s, &v, &why) ? v : 0;
}

uint64_t envvar_mem_limit(void)
{
	const char *s = env("LIFSIM_MEM_LIMIT"), *why;
	uint64_t v;
	return s && !parse_mem_limit(s, &v, &why) ? v : 0;
}

double envvar_hdf5_time_limit(void)
{
	const char *s = env("LIFSIM_HDF5_TIME_LIMIT"), *why;
	double v;
	return s && !parse_time_limit(s, &v, &why) ? v : ENVVAR_HDF5_TIME_DEFAULT;
}
