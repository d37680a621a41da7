#include "traces/record/matmul.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "traces/record/safetensors.h"

int matmul_dtype_bytes(int dtype)
{
	return dtype == ST_F32 ? 4 : 2;
}

/* Widen n elements of src (dtype) to float32. fp16 uses the CPU's F16C
 * instructions when it has them (exact either way). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(float *d, const uint16_t *s, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
	for (; i < n; i++)
		d[i] = st_f16_to_f32(s[i]);
}
static int have_f16c(void)
{
	return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
}
#else
static void f16_to_f32_f16c(float *d, const uint16_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d[i] = st_f16_to_f32(s[i]);
}
static int have_f16c(void)
{
	return 0;
}
#endif

static void widen(float *d, const void *src, int dtype, size_t n, const float *f16_table)
{
	const uint16_t *h = src;
	if (dtype == ST_F32)
		memcpy(d, src, n * sizeof *d);
	else if (dtype == ST_BF16)
		for (size_t i = 0; i < n; i++)
			d[i] = st_bf16_to_f32(h[i]);
	else if (!f16_table)
		f16_to_f32_f16c(d, h, n);
	else
		for (size_t i = 0; i < n; i++)
			d[i] = f16_table[h[i]];
}

struct gemv_job {
	float *y;                /* (n, rows) */
	const struct matrix *W;  /* (rows, cols) */
	const float *b;          /* (rows) or NULL */
	const float *x;          /* (n, cols) */
	int n;
};

struct matmul_pool {
	pthread_t *th;   /* (n) th[1..n-1] are workers; the caller is thread 0 */
	int n, started;
	float **scratch; /* (n) per thread: (MATMUL_HALF_ROWS, max cols) */
	float *f16_table; /* (65536) fp16 -> float32 when the CPU has no F16C, else NULL */
	pthread_mutex_t mu;
	pthread_cond_t go;
	uint64_t gen;    /* job number, bumped for every job (under mu) */
	int stop;
	struct gemv_job job;
	_Atomic uint64_t next; /* gen << 32 | next block to claim */
	_Atomic int done;      /* blocks of the current job finished */
};

/* y[:, r0:r0+nr] (+)= x Wf^T for float32 rows Wf (nr, cols). */
static void gemv_rows(const struct gemv_job *j, const float *Wf, int r0, int nr)
{
	int rows = j->W->rows, cols = j->W->cols;
	float beta = j->b ? 1.0f : 0.0f;
	if (j->n == 1) /* decode: one token */
		cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, cols, 1.0f, Wf, cols, j->x, 1, beta, j->y + r0, 1);
	else /* a prompt chunk */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, nr, cols, 1.0f, j->x, cols, Wf,
			    cols, beta, j->y + r0, rows);
}

/* One block of rows r0..r0+nr: float32 straight from the mmap, half
 * precision widened a few rows at a time. */
static void gemv_block(const struct matmul_pool *p, const struct gemv_job *j, int tid, int r0, int nr)
{
	const struct matrix *W = j->W;
	for (int t = 0; j->b && t < j->n; t++)
		memcpy(j->y + (size_t)t * W->rows + r0, j->b + r0, (size_t)nr * sizeof *j->y);
	if (W->dtype == ST_F32) {
		gemv_rows(j, (const float *)W->data + (size_t)r0 * W->cols, r0, nr);
		return;
	}
	int step = j->n == 1 ? MATMUL_HALF_ROWS_ONE : MATMUL_HALF_ROWS;
	for (int h = 0; h < nr; h += step) {
		int k = nr - h < step ? nr - h : step;
		const char *src = (const char *)W->data + (size_t)(r0 + h) * W->cols * 2;
		widen(p->scratch[tid], src, W->dtype, (size_t)k * W->cols, p->f16_table);
		gemv_rows(j, p->scratch[tid], r0 + h, k);
	}
}

/* Claim and run blocks of job j (number gen) until none is left. */
static void gemv_claim(struct matmul_pool *p, const struct gemv_job *j, uint64_t gen, int tid)
{
	int nblk = (j->W->rows + MATMUL_BLOCK_ROWS - 1) / MATMUL_BLOCK_ROWS;
	for (;;) {
		uint64_t cur = atomic_load(&p->next);
		if (cur >> 32 != (gen & 0xffffffffu) || (int)(cur & 0xffffffffu) >= nblk)
			return;
		if (!atomic_compare_exchange_weak(&p->next, &cur, cur + 1))
			continue;
		int r0 = (int)(cur & 0xffffffffu) * MATMUL_BLOCK_ROWS;
		int nr = j->W->rows - r0 < MATMUL_BLOCK_ROWS ? j->W->rows - r0 : MATMUL_BLOCK_ROWS;
		gemv_block(p, j, tid, r0, nr);
		atomic_fetch_add(&p->done, 1);
	}
}

struct worker_arg {
	struct matmul_pool *p;
	int tid;
};

static void *pool_worker(void *arg)
{
	struct matmul_pool *p = ((struct worker_arg *)arg)->p;
	int tid = ((struct worker_arg *)arg)->tid;
	uint64_t seen = 0;
	free(arg);
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (p->gen == seen && !p->stop)
			pthread_cond_wait(&p->go, &p->mu);
		seen = p->gen;
		struct gemv_job j = p->job;
		int stop = p->stop;
		pthread_mutex_unlock(&p->mu);
		if (stop)
			return NULL;
		gemv_claim(p, &j, seen, tid);
	}
}

struct matmul_pool *matmul_pool_new(int threads, int max_cols, struct lif_err *err)
{
	struct matmul_pool *p = calloc(1, sizeof *p);
	if (!p) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	p->n = threads < 1 ? 1 : threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	atomic_init(&p->next, 0);
	atomic_init(&p->done, 0);
	p->th = calloc((size_t)p->n, sizeof *p->th);
	p->scratch = calloc((size_t)p->n, sizeof *p->scratch);
	int ok = p->th && p->scratch;
	for (int t = 0; ok && t < p->n; t++)
		ok = (p->scratch[t] = malloc((size_t)MATMUL_HALF_ROWS * max_cols * sizeof(float))) != NULL;
	if (ok && !have_f16c() && (ok = (p->f16_table = malloc(65536 * sizeof *p->f16_table)) != NULL))
		for (int i = 0; i < 65536; i++)
			p->f16_table[i] = st_f16_to_f32((uint16_t)i);
	for (int t = 1; ok && t < p->n; t++) {
		struct worker_arg *a = malloc(sizeof *a);
		if (a)
			a->p = p, a->tid = t;
		if (!a || pthread_create(&p->th[t], NULL, pool_worker, a)) {
			free(a);
			p->n = t; /* run with the threads we have */
			break;
		}
		p->started = t;
	}
	if (!ok) {
		matmul_pool_free(p);
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	return p;
}

void matmul_pool_free(struct matmul_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int t = 1; t <= p->started; t++)
		pthread_join(p->th[t], NULL);
	for (int t = 0; p->scratch && t < p->n; t++)
		free(p->scratch[t]);
	free(p->scratch);
	free(p->th);
	free(p->f16_table);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->go);
	free(p);
}

void matmul(struct matmul_pool *p, int n, float *y, const struct matrix *W, const float *b,
	    const float *x)
{
	struct gemv_job j = {y, W, b, x, n};
	int nblk = (W->rows + MATMUL_BLOCK_ROWS - 1) / MATMUL_BLOCK_ROWS;
	pthread_mutex_lock(&p->mu);
	uint64_t gen = ++p->gen;
	p->job = j;
	atomic_store(&p->done, 0);
	atomic_store(&p->next, (gen & 0xffffffffu) << 32);
	if (p->n > 1 && nblk > 1)
		pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	gemv_claim(p, &j, gen, 0);
	while (atomic_load(&p->done) < nblk) /* blocks other threads are finishing */
		sched_yield();
}

void matmul_row(const struct matmul_pool *p, float *dst, const struct matrix *W, int row)
{
	size_t off = (size_t)row * W->cols * matmul_dtype_bytes(W->dtype);
	widen(dst, (const char *)W->data + off, W->dtype, (size_t)W->cols, p->f16_table);
}
