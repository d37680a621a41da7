/* lifsim device: inspect a device profile (its flash throughput grid). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/device.h"
#include "sim/cli/verbs.h"
#include "sim/base/util.h"

#define VERB "device"
#define MAX_POINTS 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lifsim device PROFILE.ini [--chunks LIST] [--parallelism LIST] [--resolved]\n\n"
		"Load a device profile (models/devices/*.ini), check it, and print the flash\n"
		"model's throughput grid as CSV on stdout, one row per (chunk, parallelism):\n"
		"  chunk_bytes,parallelism,mb_per_s,share_us\n"
		"mb_per_s is useful throughput in 10^6 B/s; share_us is one read's share of the\n"
		"queue (what the simulator sums per extent).\n\n"
		"options:\n"
		"  --chunks LIST       chunk sizes, e.g. 4KiB,16KiB,1MiB (default 4KiB..1MiB, x2)\n"
		"  --parallelism LIST  outstanding requests, e.g. 1,8,32 (default 1..64, x2)\n"
		"  --resolved          print the profile as loaded (INI) instead of the grid\n"
		"  --bench N           time flash_time_ns over N extents (sets of 1024 reads at\n"
		"                      parallelism 32; mix 'bundles': 1 to 8 x 16 KiB, mix\n"
		"                      'distinct': every size differs) and print\n"
		"                      profile,model,mix,extents,seconds,extents_per_s\n\n"
		"profile keys:\n");
	conf_help(f, device_opts);
}

/* Parse a comma list of byte sizes (bytes = 1) or integers >= 1. */
static int parse_list(const char *opt, const char *s, int bytes, long long *v, int *n)
{
	size_t k;
	char **items = conf_list_split(s, &k);
	int rc = 0;
	if (!items || k > MAX_POINTS) {
		conf_list_free(items, items ? k : 0);
		return cli_failf(VERB, "%s: expected 1 to %d values", opt, MAX_POINTS);
	}
	for (size_t i = 0; i < k && !rc; i++) {
		int bad = bytes ? conf_parse_bytes(items[i], &v[i]) : conf_parse_int(items[i], &v[i]);
		if (bad || v[i] < 1 || (!bytes && v[i] > 1 << 20))
			rc = cli_failf(VERB, "%s: '%s' is not %s", opt, items[i],
				       bytes ? "a byte size >= 1 (e.g. 16KiB)"
					     : "an integer in [1, 1048576]");
	}
	*n = (int)k;
	conf_list_free(items, k);
	return rc;
}

static int print_grid(const struct device *d, const long long *c, int nc, const long long *p,
		      int np)
{
	printf("chunk_bytes,parallelism,mb_per_s,share_us\n");
	for (int i = 0; i < nc; i++)
		for (int j = 0; j < np; j++)
			printf("%lld,%lld,%.6g,%.6g\n", c[i], p[j],
			       flash_throughput_bytes_per_s(&d->flash, c[i], (int)p[j]) / 1e6,
			       flash_extent_ns(&d->flash, c[i], (int)p[j]) / 1e3);
	return fflush(stdout) ? cli_errorf(VERB, "cannot write to stdout") : 0;
}

/* Seconds to serve n extents, in sets of `set` reads at parallelism 32. */
static double time_sets(const struct device *d, const int64_t *ext, int set, long long n)
{
	volatile double sink = 0;
	double t0 = util_now_ns();
	for (long long done = 0; done < n; done += set)
		sink += flash_time_ns(&d->flash, ext, (size_t)set, 32);
	(void)sink;
	return (util_now_ns() - t0) * 1e-9;
}

/* Time the simulator's hot call on two deterministic mixes of extent sizes:
 * "bundles" (1 to 8 x 16 KiB, the common case) and "distinct" (every size in
 * a set differs, so no evaluation is reused). */
static int bench(const struct device *d, long long n)
{
	enum { SET = 1024 };
	int64_t mix[2][SET];
	const char *names[2] = {"bundles", "distinct"};
	uint64_t s = 1;
	for (int i = 0; i < SET; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		mix[0][i] = (int64_t)(1 + (s >> 33) % 8) * 16384;
		mix[1][i] = (int64_t)(i + 1) * 4096;
	}
	long long total = (n + SET - 1) / SET * SET;
	printf("profile,model,mix,extents,seconds,extents_per_s\n");
	for (int k = 0; k < 2; k++) {
		double sec = time_sets(d, mix[k], SET, n);
		printf("%s,%s,%s,%lld,%.6f,%.4g\n", d->name, flash_ops_table[d->flash.kind].name,
		       names[k], total, sec, total / sec);
	}
	return fflush(stdout) ? cli_errorf(VERB, "cannot write to stdout") : 0;
}

int verb_device(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"chunks", required_argument, 0, 'c'},
		{"parallelism", required_argument, 0, 'p'},
		{"resolved", no_argument, 0, 'r'},
		{"bench", required_argument, 0, 'b'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	long long chunks[MAX_POINTS], par[MAX_POINTS];
	int nc = 9, np = 7, resolved = 0, c;
	long long bench_n = 0;
	(void)g;
	for (int i = 0; i < nc; i++)
		chunks[i] = 4096LL << i;
	for (int j = 0; j < np; j++)
		par[j] = 1LL << j;
	while ((c = cli_getopt(VERB, argc, argv, "h", longopts)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == '?')
			return 2;
		if (c == 'r')
			resolved = 1;
		else if (c == 'b') {
			if (cli_int(VERB, "--bench", optarg, 1, 1LL << 40, &bench_n))
				return 2;
		}
		else if (parse_list(c == 'c' ? "--chunks" : "--parallelism", optarg, c == 'c',
				    c == 'c' ? chunks : par, c == 'c' ? &nc : &np))
			return 2;
	}
	if (optind != argc - 1)
		return cli_failf(VERB, "expected one PROFILE.ini (see lifsim device --help)");
	struct device d;
	struct lif_err err = {0};
	char path[PATH_CAP];
	if (!cli_path(VERB, PATH_DEVICE, argv[optind], path, sizeof path))
		return 1;
	if (device_load(path, &d, &err))
		return cli_fail(VERB, &err);
	if (bench_n)
		return bench(&d, bench_n);
	if (resolved)
		return device_write(stdout, &d, &err) || fflush(stdout) ? cli_errorf(VERB, "cannot write to stdout") : 0;
	return print_grid(&d, chunks, nc, par, np);
}
