/* calib_gemv: the host's achieved GEMV and GEMM rates (OpenBLAS) for
 * `lifsim calibrate --compute` (see sim/real/calib.h). In its own file
 * because it uses OpenBLAS's cblas.h (openblas_get_num_threads), which
 * calib.c's GSL declarations would clash with. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/real/calib.h"
#include "sim/real/replay.h"
#include "sim/base/util.h"

static double median(double *t, int n)
{
	qsort(t, n, sizeof *t, util_cmp_double);
	return t[n / 2];
}

double calib_gemv_bytes_per_s(int rows, int cols, int repeats, int64_t cold_bytes)
{
	const size_t n = (size_t)rows * cols, esz = 4;
	/* copies of the matrix, called in turn: each call's matrix was last
	 * touched cold_bytes of other matrices ago (out of every cache) */
	const size_t copies = cold_bytes > 0 ? (size_t)(cold_bytes / (int64_t)(n * esz)) + 2 : 1;
	float *m = malloc(copies * n * esz), *x = malloc((size_t)cols * esz);
	float *y = malloc((size_t)rows * sizeof *y);
	double *t = malloc((size_t)(repeats + 1) * sizeof *t), med = 0;
	if (m && x && y && t) {
		for (size_t i = 0; i < copies * n; i++)
			m[i] = (float)(i % 7) * 0.125f;
		for (int i = 0; i < cols; i++)
			x[i] = 1.0f;
		/* one untimed call first: page faults and the library's thread start */
		for (int i = 0; i <= repeats; i++) {
			const float *a = m + (size_t)i % copies * n;
			double t0 = util_now_ns();
			cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1.0f, a, cols, x, 1, 0.0f,
				    y, 1);
			t[i] = util_now_ns() - t0;
		}
		med = (double)(n * esz) / (median(t + 1, repeats) * 1e-9);
	}
	free(m), free(x), free(y), free(t);
	return med;
}

double calib_sgemm_flops_per_s(int n, int repeats)
{
	const size_t k = (size_t)n * n;
	float *a = malloc(k * sizeof *a), *b = malloc(k * sizeof *b), *c = malloc(k * sizeof *c);
	double *t = malloc((size_t)(repeats + 1) * sizeof *t), med = 0;
	if (a && b && c && t) {
		for (size_t i = 0; i < k; i++)
			a[i] = (float)(i % 5) * 0.25f, b[i] = (float)(i % 3) * 0.5f;
		for (int i = 0; i <= repeats; i++) {
			double t0 = util_now_ns();
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b,
				    n, 0.0f, c, n);
			t[i] = util_now_ns() - t0;
		}
		med = 2.0 * n * n * n / (median(t + 1, repeats) * 1e-9);
	}
	free(a), free(b), free(c), free(t);
	return med;
}

int calib_blas_threads(void)
{
	return openblas_get_num_threads();
}

int calib_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 && n <= 4096 ? (int)n : 0;
}

double calib_convert_bytes_per_s(int64_t bytes, int repeats)
{
	/* two source and two destination buffers in turn, each 4 x bytes apart
	 * from its last use: out of the caches, as place's staged rows (just
	 * read by the device) and matrix rows are */
	const int64_t n = bytes / 2;
	uint16_t *src[2] = {malloc((size_t)bytes), malloc((size_t)bytes)};
	char *dst[2] = {malloc((size_t)(2 * bytes)), malloc((size_t)(2 * bytes))};
	double *t = malloc((size_t)repeats * sizeof *t), med = 0;
	if (src[0] && src[1] && dst[0] && dst[1] && t && n > 0 && repeats > 0) {
		for (int k = 0; k < 2; k++) {
			for (int64_t i = 0; i < n; i++) /* normal fp16 values, both signs */
				src[k][i] = (uint16_t)(0x3000 + (i * 7919 + k) % 0x1800) | (uint16_t)((i & 1) << 15);
			memset(dst[k], 0, (size_t)(2 * bytes));
		}
		replay_convert(dst[1], LLM_FP32, (const char *)src[1], LLM_FP16, n); /* untimed */
		for (int i = 0; i < repeats; i++) {
			double t0 = util_now_ns();
			replay_convert(dst[i % 2], LLM_FP32, (const char *)src[i % 2], LLM_FP16, n);
			t[i] = util_now_ns() - t0;
		}
		qsort(t, (size_t)repeats, sizeof *t, util_cmp_double);
		med = (double)bytes / (t[repeats / 2] * 1e-9);
	}
	free(src[0]), free(src[1]), free(dst[0]), free(dst[1]), free(t);
	return med;
}

struct calib_gemv_probe {
	int rows, cols;
	size_t copies, next;
	float *m, *x, *y;
	double *t;
};

struct calib_gemv_probe *calib_gemv_probe_new(int rows, int cols, int64_t cold_bytes)
{
	struct calib_gemv_probe *p = calloc(1, sizeof *p);
	const size_t n = (size_t)rows * cols;
	if (!p)
		return NULL;
	p->rows = rows, p->cols = cols;
	p->copies = cold_bytes > 0 ? (size_t)(cold_bytes / (int64_t)(n * 4)) + 2 : 1;
	p->m = malloc(p->copies * n * 4), p->x = malloc((size_t)cols * 4), p->y = malloc((size_t)rows * 4);
	p->t = malloc(64 * sizeof *p->t);
	if (!p->m || !p->x || !p->y || !p->t) {
		calib_gemv_probe_free(p);
		return NULL;
	}
	for (size_t i = 0; i < p->copies * n; i++)
		p->m[i] = (float)(i % 7) * 0.125f;
	for (int i = 0; i < cols; i++)
		p->x[i] = 1.0f;
	return p;
}

double calib_gemv_probe_run(struct calib_gemv_probe *p, int repeats)
{
	const size_t n = (size_t)p->rows * p->cols;
	repeats = repeats < 1 ? 1 : repeats > 64 ? 64 : repeats;
	/* Touch every page of the copies first: between runs they sit idle
	 * (a token, the disk probe), and a kernel that samples page access
	 * (DAMON, as on lifsim's test host) clears the pages' accessed bits
	 * meanwhile, which makes the first touch after idling slower (measured:
	 * 8 GB/s against 17-20 for memory written 40 s before, 17 with DAMON
	 * stopped). calibrate's table times matrices it has just written; the
	 * probe must time the same thing, or it reads as drift. */
	volatile const char *pg = (volatile const char *)p->m;
	for (size_t b = 0; b < p->copies * n * 4; b += 4096)
		(void)pg[b];
	for (int i = 0; i < repeats; i++) {
		const float *a = p->m + p->next++ % p->copies * n;
		double t0 = util_now_ns();
		cblas_sgemv(CblasRowMajor, CblasNoTrans, p->rows, p->cols, 1.0f, a, p->cols, p->x, 1, 0.0f,
			    p->y, 1);
		p->t[i] = util_now_ns() - t0;
	}
	return (double)(n * 4) / (median(p->t, repeats) * 1e-9);
}

void calib_gemv_probe_free(struct calib_gemv_probe *p)
{
	if (!p)
		return;
	free(p->m), free(p->x), free(p->y), free(p->t);
	free(p);
}
