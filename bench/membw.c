/* membw: DRAM read bandwidth, the bound for a memory-bound decode step.
 * Sums a buffer much larger than the caches with all threads (OpenMP),
 * REPEATS times, and prints the best rate in bytes/s (as STREAM reports: the
 * machine is shared, and the best rate is the most optimistic bound, so the
 * ratio to it is conservative). Chunks of 1 MiB are handed out dynamically,
 * as the recorder's pool does, so that on a shared machine a thread the OS
 * has descheduled does not hold the pass up (a static split would then
 * understate the bandwidth and flatter the ratio). Used by bench/record.sh.
 *   membw [MiB]   (default 1024) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define REPEATS 7

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	size_t n = mib * (1 << 20) / sizeof(float);
	float *v = malloc(n * sizeof *v);
	if (!v)
		return 1;
#pragma omp parallel for
	for (size_t i = 0; i < n; i++)
		v[i] = (float)(i & 7);
	double rate[REPEATS], sink = 0;
	for (int r = 0; r < REPEATS; r++) {
		struct timespec t0, t1;
		float s = 0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
#pragma omp parallel for schedule(dynamic, 1 << 18) reduction(+ : s)
		for (size_t i = 0; i < n; i++)
			s += v[i];
		clock_gettime(CLOCK_MONOTONIC, &t1);
		sink += s;
		rate[r] = (double)(n * sizeof *v) / ((t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
	}
	qsort(rate, REPEATS, sizeof *rate, cmp);
	printf("%.0f\n", rate[REPEATS - 1]);
	free(v);
	return sink == 42 ? 2 : 0;
}
