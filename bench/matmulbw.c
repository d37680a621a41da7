/* matmulbw: the recorder's decode kernels (traces/record/matmul.h) against a
 * plain read of memory, as bytes of weights streamed per second.
 *
 * For each dtype (f32, f16, bf16) a matrix of ROWS x COLS (default 16384 x
 * 8192: 512 MiB in f32, 256 MiB in half precision, far beyond the caches)
 * is multiplied by one vector (COLS=N in the environment sets the row length,
 * the rows then filling the same 128 Mi elements: COLS=2048 is OPT-1.3B's
 * d_model, whose half-precision rows are one 4 KiB page each) with the recorder's thread pool; beside it the
 * plain read sums a 512 MiB buffer with the same number of OpenMP threads.
 * Passes of every kind are interleaved ROUNDS times and the best pass of each
 * kind is kept (the machine is shared: the best pass is the one that had the
 * CPUs), so the ratios compare like with like.
 *   [CPUTIME=1] matmulbw [THREADS [ROUNDS [ISA]]]   (defaults 2, 15, best; ISA c|avx2|avx512)
 * Output: one line per kind: name, GB/s, ratio to the plain read.
 * Then a prompt chunk of CHUNK tokens through the same matrices: float32 by
 * OpenBLAS sgemm, half precision by the recorder's chunk kernels (converted
 * in registers); GFLOP/s and the ratio to sgemm. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "traces/record/matmul.h"
#include "traces/record/safetensors.h"

#define ELEMS ((size_t)16384 * 8192)
#define CHUNK 16
static int ROWS, COLS;

/* CPU time of the process divided by the threads when CPUTIME is set (the
 * rate a pass reaches while it has its CPUs, on a loaded machine), else
 * wall-clock time. */
static int cputime, nthreads;
static double now(void)
{
	struct timespec t;
	clock_gettime(cputime ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
	return (t.tv_sec + 1e-9 * t.tv_nsec) / (cputime ? nthreads : 1);
}

static double plain_read(const float *v, size_t n, int threads, float *sink)
{
	float s = 0;
	double t0 = now();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1 << 18) reduction(+ : s)
	for (size_t i = 0; i < n; i++)
		s += v[i];
	double t = now() - t0;
	*sink += s;
	return (double)n * sizeof *v / t;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2, rounds = argc > 2 ? atoi(argv[2]) : 15;
	nthreads = threads;
	cputime = getenv("CPUTIME") != NULL;
	COLS = getenv("COLS") ? atoi(getenv("COLS")) : 8192;
	if (COLS < 64 || COLS > (1 << 20) || COLS % 64) {
		fprintf(stderr, "matmulbw: COLS must be a multiple of 64 in [64, 2^20]\n");
		return 2;
	}
	ROWS = (int)(ELEMS / COLS);
	size_t n = (size_t)ROWS * COLS;
	float *f32 = malloc(n * sizeof *f32), *x = malloc(CHUNK * COLS * sizeof *x),
	      *y = malloc(CHUNK * ROWS * sizeof *y);
	uint16_t *f16 = malloc(n * 2), *bf16 = malloc(n * 2);
	struct lif_err err = {0};
	struct matmul_pool *p = matmul_pool_new(threads, &err);
	if (!f32 || !f16 || !bf16 || !x || !y || !p) {
		fprintf(stderr, "matmulbw: %s\n", p ? "out of memory" : err.msg);
		return 1;
	}
	if (argc > 3) {
		int isa = !strcmp(argv[3], "avx512") ? MATMUL_ISA_AVX512 : !strcmp(argv[3], "avx2") ? MATMUL_ISA_AVX2
												     : MATMUL_ISA_C;
		if (matmul_pool_set_isa(p, isa, &err)) {
			fprintf(stderr, "matmulbw: %s\n", err.msg);
			return 1;
		}
	}
#pragma omp parallel for num_threads(threads)
	for (size_t i = 0; i < n; i++) {
		f32[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
		f16[i] = 0x3c00 | (uint16_t)(i & 0x3ff);
		bf16[i] = 0x3f80 | (uint16_t)(i & 0x7f);
	}
	for (int i = 0; i < CHUNK * COLS; i++)
		x[i] = 1.0f / (1 + i % COLS + i / COLS);
	struct matrix W[3] = {{f32, ST_F32, ROWS, COLS}, {f16, ST_F16, ROWS, COLS}, {bf16, ST_BF16, ROWS, COLS}};
	const char *name[4] = {"read", "gemv-f32", "gemv-f16", "gemv-bf16"};
	double best[4] = {0}, sink = 0;
	float fs = 0;
	for (int r = 0; r < rounds; r++) {
		double b = plain_read(f32, n, threads, &fs);
		best[0] = b > best[0] ? b : best[0];
		for (int k = 0; k < 3; k++) {
			double t0 = now();
			matmul(p, 1, y, &W[k], NULL, x);
			b = (double)n * matmul_dtype_bytes(W[k].dtype) / (now() - t0);
			best[k + 1] = b > best[k + 1] ? b : best[k + 1];
			sink += y[0];
		}
	}
	printf("rows %d x cols %d, threads %d, isa %s, best of %d interleaved passes, %s time\n", ROWS, COLS, threads,
	       matmul_isa_name(argc > 3 ? (!strcmp(argv[3], "avx512") ? 2 : !strcmp(argv[3], "avx2")) : matmul_isa_best()),
	       rounds, cputime ? "CPU" : "wall-clock");
	for (int k = 0; k < 4; k++)
		printf("%-10s %6.2f GB/s  %5.1f%% of read\n", name[k], best[k] / 1e9, 100 * best[k] / best[0]);
	double chunk[3] = {0}, flops = 2.0 * CHUNK * (double)n;
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < 3; k++) {
			double t0 = now();
			matmul(p, CHUNK, y, &W[k], NULL, x);
			double b = flops / (now() - t0);
			chunk[k] = b > chunk[k] ? b : chunk[k];
			sink += y[0];
		}
	for (int k = 0; k < 3; k++)
		printf("chunk%d-%-4s %6.1f GFLOP/s  %5.1f%% of sgemm\n", CHUNK, name[k + 1] + 5, chunk[k] / 1e9,
		       100 * chunk[k] / chunk[0]);
	matmul_pool_free(p);
	free(f32), free(f16), free(bf16), free(x), free(y);
	return sink + fs == 12345.678 ? 2 : 0;
}
