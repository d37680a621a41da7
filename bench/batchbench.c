/* batchbench: how long a small batch of reads takes, measured with lifsim's
 * io engine (sim/real/io.h) beside the flash model's cost of the same batch
 * as the MoE simulator asks it (sim/core/moe.c: flash_time_ns of the n
 * extents at min(parallelism, n) outstanding). Tests issue 17's hypothesis
 * that a layer's small batch costs more than its share of a full queue
 * (ramp-up and drain). Per n in the list: REPS batches of n reads of SIZE
 * bytes at distinct random SIZE-aligned offsets of FILE, each issued at once
 * through an engine opened PAR deep (as the MoE replay opens it), timed with
 * CLOCK_MONOTONIC; prints the median, p10 and p90 batch time, the model's
 * time and the ratio measured / model, and the same for the longest single
 * request's latency of each batch (lat_ns), against the model's one-request
 * time at depth 1 (t(b): a batch cannot finish before its slowest read).
 *   batchbench FILE PROFILE ENGINE PAR SIZE REPS SEED N...
 * Built and run by bench/batch.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/device.h"
#include "models/flash.h"
#include "sim/base/conf.h"
#include "sim/base/util.h"
#include "sim/real/io.h"

#define MAXN 1024
#define MAXREPS 1000

static double pct(double *v, int n, double q)
{
	qsort(v, n, sizeof *v, util_cmp_double);
	int i = (int)(q * (n - 1) + 0.5);
	return v[i];
}

int main(int argc, char **argv)
{
	if (argc < 9) {
		fprintf(stderr, "usage: batchbench FILE PROFILE ENGINE PAR SIZE REPS SEED N...\n");
		return 2;
	}
	const char *file = argv[1], *profile = argv[2], *engine = argv[3];
	int par = atoi(argv[4]), reps = atoi(argv[6]);
	int64_t size = strtoll(argv[5], NULL, 10);
	unsigned seed = (unsigned)strtoul(argv[7], NULL, 10);
	struct lif_err err = {0};
	struct device dev;
	conf_init(); /* long profile lines, as lifsim reads them */
	if (par < 1 || size < 4096 || size % 4096 || reps < 1 || reps > MAXREPS) {
		fprintf(stderr, "batchbench: PAR >= 1, SIZE a multiple of 4096, REPS in 1..%d\n", MAXREPS);
		return 2;
	}
	if (device_load(profile, &dev, &err)) {
		fprintf(stderr, "batchbench: %s\n", err.msg);
		return 1;
	}
	struct io_engine *io = io_open(engine, file, par, 0, &err);
	if (!io) {
		fprintf(stderr, "batchbench: %s\n", err.msg);
		return 1;
	}
	int64_t slots = io_file_bytes(io) / size;
	char *buf = io_alloc((size_t)size * MAXN, 4096);
	struct io_req *req = calloc(MAXN, sizeof *req);
	int64_t *lens = calloc(MAXN, sizeof *lens), *used = calloc(MAXN, sizeof *used);
	double *lat = calloc(MAXN, sizeof *lat), *t = calloc(MAXREPS, sizeof *t);
	double *tmax = calloc(MAXREPS, sizeof *tmax);
	if (!buf || !req || !lens || !used || !lat || !t || !tmax || slots < MAXN) {
		fprintf(stderr, "batchbench: out of memory or FILE too small\n");
		return 1;
	}
	srand(seed);
	printf("engine,parallelism,size_bytes,n,reps,meas_ms_median,meas_ms_p10,meas_ms_p90,"
	       "model_ms,meas_over_model,max_lat_ms_median,model_one_ms_depth1,max_lat_over_one\n");
	for (int a = 8; a < argc; a++) {
		int n = atoi(argv[a]);
		if (n < 1 || n > MAXN) {
			fprintf(stderr, "batchbench: N must be in 1..%d\n", MAXN);
			return 2;
		}
		for (int r = 0; r < reps; r++) {
			for (int i = 0; i < n; i++) {
				int64_t s;
				int dup;
				do { /* distinct slots: no request reads what another does */
					s = (int64_t)(((double)rand() / ((double)RAND_MAX + 1)) * (double)slots);
					dup = 0;
					for (int j = 0; j < i; j++)
						dup |= used[j] == s;
				} while (dup);
				used[i] = s;
				req[i] = (struct io_req){.offset = s * size, .bytes = size,
							 .buf = buf + (size_t)i * size};
				lens[i] = size;
			}
			double s0 = util_now_ns();
			if (io_read(io, req, (size_t)n, lat, &err)) {
				fprintf(stderr, "batchbench: %s\n", err.msg);
				return 1;
			}
			t[r] = (util_now_ns() - s0) * 1e-6;
			double mx = 0;
			for (int i = 0; i < n; i++)
				mx = lat[i] > mx ? lat[i] : mx;
			tmax[r] = mx * 1e-6;
		}
		double model = flash_time_ns(&dev.flash, lens, (size_t)n, par < n ? par : n) * 1e-6;
		double one = flash_extent_ns(&dev.flash, size, 1) * 1e-6;
		double med = pct(t, reps, 0.5), p10 = pct(t, reps, 0.1), p90 = pct(t, reps, 0.9);
		double lmed = pct(tmax, reps, 0.5);
		printf("%s,%d,%lld,%d,%d,%.4f,%.4f,%.4f,%.4f,%.3f,%.4f,%.4f,%.3f\n", engine, par,
		       (long long)size, n, reps, med, p10, p90, model, med / model, lmed, one, lmed / one);
		fflush(stdout);
	}
	io_close(io);
	free(buf), free(req), free(lens), free(used), free(lat), free(t), free(tmax);
	return 0;
}
