#include "traces/record/matmul.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "traces/record/safetensors.h"

#define SPIN_ROUNDS 2000 /* polls (pause instructions) before a waiting thread sleeps or yields:
			  * tens of microseconds, the gap between products of one token */

int matmul_dtype_bytes(int dtype)
{
	return dtype == ST_F32 ? 4 : 2;
}

const char *matmul_isa_name(int isa)
{
	static const char *names[] = {[MATMUL_ISA_C] = "c", [MATMUL_ISA_AVX2] = "avx2",
				      [MATMUL_ISA_AVX512] = "avx512"};
	return isa >= 0 && isa <= MATMUL_ISA_AVX512 ? names[isa] : "?";
}

/* A row kernel: y[r] = W[r] . x for nr rows of `cols` elements, row r at
 * element offset r * ld of W (dtype fixed by the kernel). */
typedef void (*rows_fn)(float *y, const void *W, size_t ld, const float *x, int cols, int nr);

/* A chunk kernel: y[t * ldy + r] = W[r] . x[t * ldx] for nr rows and n
 * tokens, each (row, token) summed exactly as the row kernel of the same ISA
 * and dtype sums it, so a token's products do not depend on whether it was
 * decoded alone or in a prompt chunk; half precision is converted in
 * registers, once per weight vector for a tile of tokens. */
typedef void (*tiles_fn)(float *y, size_t ldy, const void *W, size_t ld, const float *x, size_t ldx,
			 int cols, int nr, int n);

/* The chunk kernel over a tile function TILE(y, ldy, W, o, ld, x, ldx, cols,
 * R, T, dt): RR rows by TT tokens at a time, then the leftover rows and tokens
 * one by one (R and T are constants in every call, for the compiler). */
#define DEF_TILES(NAME, TARGET, TILE, RR, TT, DT)                                                          \
	TARGET static void NAME(float *y, size_t ldy, const void *W, size_t ld, const float *x, size_t ldx,  \
				int cols, int nr, int n)                                                      \
	{                                                                                                 \
		int r = 0, t;                                                                             \
		for (; r + RR <= nr; r += RR) {                                                           \
			for (t = 0; t + TT <= n; t += TT)                                                 \
				TILE(y + t * ldy + r, ldy, W, (size_t)r * ld, ld, x + t * ldx, ldx, cols, RR, TT, DT); \
			for (; t < n; t++)                                                                \
				TILE(y + t * ldy + r, ldy, W, (size_t)r * ld, ld, x + t * ldx, ldx, cols, RR, 1, DT); \
		}                                                                                         \
		for (; r < nr; r++) {                                                                     \
			for (t = 0; t + TT <= n; t += TT)                                                 \
				TILE(y + t * ldy + r, ldy, W, (size_t)r * ld, ld, x + t * ldx, ldx, cols, 1, TT, DT); \
			for (; t < n; t++)                                                                \
				TILE(y + t * ldy + r, ldy, W, (size_t)r * ld, ld, x + t * ldx, ldx, cols, 1, 1, DT); \
		}                                                                                         \
	}

/* ---------------------------------------------------------------- portable kernels */

/* Four partial sums per row, combined in a fixed order. */
#define DEF_ROWS_C(NAME, T, CONV)                                                              \
	static void NAME(float *y, const void *Wv, size_t ld, const float *x, int cols, int nr) \
	{                                                                                      \
		const T *W = Wv;                                                               \
		for (int r = 0; r < nr; r++) {                                                 \
			const T *w = W + (size_t)r * ld;                                       \
			float s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                  \
			int i = 0;                                                             \
			for (; i + 4 <= cols; i += 4) {                                        \
				s0 += CONV(w[i]) * x[i];                                       \
				s1 += CONV(w[i + 1]) * x[i + 1];                               \
				s2 += CONV(w[i + 2]) * x[i + 2];                               \
				s3 += CONV(w[i + 3]) * x[i + 3];                               \
			}                                                                      \
			for (; i < cols; i++)                                                  \
				s0 += CONV(w[i]) * x[i];                                       \
			y[r] = (s0 + s1) + (s2 + s3);                                          \
		}                                                                              \
	}
#define CONV_F32(v) (v)
DEF_ROWS_C(rows_c_f32, float, CONV_F32)
DEF_ROWS_C(rows_c_bf16, uint16_t, st_bf16_to_f32)

/* fp16 without F16C: a 65536-entry table, built once (read-only after). */
static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;
static void f16_table_init(void)
{
	for (int i = 0; i < 65536; i++)
		f16_table[i] = st_f16_to_f32((uint16_t)i);
}
#define CONV_F16_TABLE(v) f16_table[(v)]
DEF_ROWS_C(rows_c_f16, uint16_t, CONV_F16_TABLE)

/* Portable chunk kernels: the row kernel once per token. */
#define DEF_TILES_C(NAME, ROWS)                                                                      \
	static void NAME(float *y, size_t ldy, const void *W, size_t ld, const float *x, size_t ldx, \
			 int cols, int nr, int n)                                                     \
	{                                                                                            \
		for (int t = 0; t < n; t++)                                                          \
			ROWS(y + t * ldy, W, ld, x + t * ldx, cols, nr);                             \
	}
DEF_TILES_C(tiles_c_f16, rows_c_f16)
DEF_TILES_C(tiles_c_bf16, rows_c_bf16)

/* ---------------------------------------------------------------- x86 kernels */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1

#define T2 "avx2,fma,f16c"
#define T512 "avx512f,avx512bw,avx512vl,avx2,fma,f16c"

/* AVX2: 8 lanes; two accumulators per row over 16 columns a step; the last
 * cols % 8 columns are summed in scalar after the vector reduction. */
__attribute__((target(T2), always_inline)) static inline __m256 ld256(const void *W, size_t i, int dt)
{
	if (dt == ST_F32)
		return _mm256_loadu_ps((const float *)W + i);
	__m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)W + i));
	if (dt == ST_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target(T2), always_inline)) static inline float conv1(const void *W, size_t i, int dt)
{
	if (dt == ST_F32)
		return ((const float *)W)[i];
	uint16_t h = ((const uint16_t *)W)[i];
	if (dt == ST_F16)
		return _cvtsh_ss(h);
	return st_bf16_to_f32(h);
}

__attribute__((target(T2), always_inline)) static inline float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* R rows (a constant after inlining) starting at element offset o. */
__attribute__((target(T2), always_inline)) static inline void rows256(float *y, const void *W, size_t o,
								      size_t ld, const float *x, int cols, int R,
								      int dt)
{
	__m256 a0[4], a1[4];
	for (int r = 0; r < R; r++)
		a0[r] = a1[r] = _mm256_setzero_ps();
	int i = 0;
	for (; i + 16 <= cols; i += 16) {
		__m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
		for (int r = 0; r < R; r++) {
			size_t base = o + (size_t)r * ld + i;
			a0[r] = _mm256_fmadd_ps(ld256(W, base, dt), x0, a0[r]);
			a1[r] = _mm256_fmadd_ps(ld256(W, base + 8, dt), x1, a1[r]);
		}
	}
	if (i + 8 <= cols) {
		__m256 x0 = _mm256_loadu_ps(x + i);
		for (int r = 0; r < R; r++)
			a0[r] = _mm256_fmadd_ps(ld256(W, o + (size_t)r * ld + i, dt), x0, a0[r]);
		i += 8;
	}
	for (int r = 0; r < R; r++) {
		float s = hsum256(_mm256_add_ps(a0[r], a1[r]));
		for (int k = i; k < cols; k++)
			s += conv1(W, o + (size_t)r * ld + k, dt) * x[k];
		y[r] = s;
	}
}

#define DEF_ROWS_AVX2(NAME, DT)                                                                 \
	__attribute__((target(T2))) static void NAME(float *y, const void *W, size_t ld, const float *x, \
						     int cols, int nr)                                    \
	{                                                                                       \
		int r = 0;                                                                      \
		for (; r + 4 <= nr; r += 4)                                                     \
			rows256(y + r, W, (size_t)r * ld, ld, x, cols, 4, DT);                    \
		for (; r < nr; r++)                                                             \
			rows256(y + r, W, (size_t)r * ld, ld, x, cols, 1, DT);                    \
	}
DEF_ROWS_AVX2(rows_avx2_f32, ST_F32)
DEF_ROWS_AVX2(rows_avx2_f16, ST_F16)
DEF_ROWS_AVX2(rows_avx2_bf16, ST_BF16)

/* R rows x T tokens of a chunk, each summed as rows256 sums it. */
__attribute__((target(T2), always_inline)) static inline void tile256(float *y, size_t ldy, const void *W,
								      size_t o, size_t ld, const float *x,
								      size_t ldx, int cols, int R, int T, int dt)
{
	__m256 a0[2][2], a1[2][2], x0[2], x1[2];
	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++)
			a0[r][t] = a1[r][t] = _mm256_setzero_ps();
	int i = 0;
	for (; i + 16 <= cols; i += 16) {
		for (int t = 0; t < T; t++)
			x0[t] = _mm256_loadu_ps(x + t * ldx + i), x1[t] = _mm256_loadu_ps(x + t * ldx + i + 8);
		for (int r = 0; r < R; r++) {
			__m256 w0 = ld256(W, o + r * ld + i, dt), w1 = ld256(W, o + r * ld + i + 8, dt);
			for (int t = 0; t < T; t++) {
				a0[r][t] = _mm256_fmadd_ps(w0, x0[t], a0[r][t]);
				a1[r][t] = _mm256_fmadd_ps(w1, x1[t], a1[r][t]);
			}
		}
	}
	if (i + 8 <= cols) {
		for (int r = 0; r < R; r++) {
			__m256 w0 = ld256(W, o + r * ld + i, dt);
			for (int t = 0; t < T; t++)
				a0[r][t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * ldx + i), a0[r][t]);
		}
		i += 8;
	}
	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++) {
			float s = hsum256(_mm256_add_ps(a0[r][t], a1[r][t]));
			for (int k = i; k < cols; k++)
				s += conv1(W, o + r * ld + k, dt) * x[t * ldx + k];
			y[t * ldy + r] = s;
		}
}
DEF_TILES(tiles_avx2_f16, __attribute__((target(T2))), tile256, 2, 2, ST_F16)
DEF_TILES(tiles_avx2_bf16, __attribute__((target(T2))), tile256, 2, 2, ST_BF16)

/* AVX-512: 16 lanes; two accumulators per row over 32 columns a step; the
 * tail is a masked load (BW+VL for 16-bit masks). */
__attribute__((target(T512), always_inline)) static inline __m512 ld512(const void *W, size_t i, int dt)
{
	if (dt == ST_F32)
		return _mm512_loadu_ps((const float *)W + i);
	__m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)W + i));
	if (dt == ST_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

__attribute__((target(T512), always_inline)) static inline __m512 mld512(__mmask16 m, const void *W, size_t i,
									int dt)
{
	if (dt == ST_F32)
		return _mm512_maskz_loadu_ps(m, (const float *)W + i);
	__m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)W + i);
	if (dt == ST_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

__attribute__((target(T512), always_inline)) static inline float hsum512(__m512 v)
{
	__m256 s = _mm256_add_ps(_mm512_castps512_ps256(v),
				 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
	__m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
	t = _mm_add_ps(t, _mm_movehl_ps(t, t));
	t = _mm_add_ss(t, _mm_movehdup_ps(t));
	return _mm_cvtss_f32(t);
}

__attribute__((target(T512), always_inline)) static inline void rows512(float *y, const void *W, size_t o,
								       size_t ld, const float *x, int cols, int R,
								       int dt)
{
	__m512 a0[4], a1[4];
	for (int r = 0; r < R; r++)
		a0[r] = a1[r] = _mm512_setzero_ps();
	int i = 0;
	/* the next R rows' lines at this column, asked for while these R rows
	 * stream: a half-precision row of 2048 columns is one 4 KiB page, where
	 * the hardware prefetcher starts over (bench/matmulbw.c, COLS=2048) */
	const int es = dt == ST_F32 ? 4 : 2;
	const char *pf = (const char *)W + (o + (size_t)R * ld) * es;
	for (; i + 32 <= cols; i += 32) {
		__m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
		for (int r = 0; r < R; r++) {
			_mm_prefetch(pf + ((size_t)r * ld + i) * es, _MM_HINT_T0);
			if (es == 4)
				_mm_prefetch(pf + ((size_t)r * ld + i) * es + 64, _MM_HINT_T0);
		}
		for (int r = 0; r < R; r++) {
			size_t base = o + (size_t)r * ld + i;
			a0[r] = _mm512_fmadd_ps(ld512(W, base, dt), x0, a0[r]);
			a1[r] = _mm512_fmadd_ps(ld512(W, base + 16, dt), x1, a1[r]);
		}
	}
	if (i + 16 <= cols) {
		__m512 x0 = _mm512_loadu_ps(x + i);
		for (int r = 0; r < R; r++)
			a0[r] = _mm512_fmadd_ps(ld512(W, o + (size_t)r * ld + i, dt), x0, a0[r]);
		i += 16;
	}
	if (i < cols) {
		__mmask16 m = (__mmask16)((1u << (cols - i)) - 1);
		__m512 x1 = _mm512_maskz_loadu_ps(m, x + i);
		for (int r = 0; r < R; r++)
			a1[r] = _mm512_fmadd_ps(mld512(m, W, o + (size_t)r * ld + i, dt), x1, a1[r]);
	}
	for (int r = 0; r < R; r++)
		y[r] = hsum512(_mm512_add_ps(a0[r], a1[r]));
}

#define DEF_ROWS_AVX512(NAME, DT)                                                                 \
	__attribute__((target(T512))) static void NAME(float *y, const void *W, size_t ld, const float *x, \
						       int cols, int nr)                                    \
	{                                                                                         \
		int r = 0;                                                                        \
		for (; r + 4 <= nr; r += 4)                                                       \
			rows512(y + r, W, (size_t)r * ld, ld, x, cols, 4, DT);                      \
		for (; r < nr; r++)                                                               \
			rows512(y + r, W, (size_t)r * ld, ld, x, cols, 1, DT);                      \
	}
DEF_ROWS_AVX512(rows_avx512_f32, ST_F32)
DEF_ROWS_AVX512(rows_avx512_f16, ST_F16)
DEF_ROWS_AVX512(rows_avx512_bf16, ST_BF16)

/* R rows x T tokens of a chunk, each summed as rows512 sums it. */
__attribute__((target(T512), always_inline)) static inline void tile512(float *y, size_t ldy, const void *W,
								       size_t o, size_t ld, const float *x,
								       size_t ldx, int cols, int R, int T, int dt)
{
	__m512 a0[2][4], a1[2][4], x0[4], x1[4];
	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++)
			a0[r][t] = a1[r][t] = _mm512_setzero_ps();
	int i = 0;
	for (; i + 32 <= cols; i += 32) {
		for (int t = 0; t < T; t++)
			x0[t] = _mm512_loadu_ps(x + t * ldx + i), x1[t] = _mm512_loadu_ps(x + t * ldx + i + 16);
		for (int r = 0; r < R; r++) {
			__m512 w0 = ld512(W, o + r * ld + i, dt), w1 = ld512(W, o + r * ld + i + 16, dt);
			for (int t = 0; t < T; t++) {
				a0[r][t] = _mm512_fmadd_ps(w0, x0[t], a0[r][t]);
				a1[r][t] = _mm512_fmadd_ps(w1, x1[t], a1[r][t]);
			}
		}
	}
	if (i + 16 <= cols) {
		for (int r = 0; r < R; r++) {
			__m512 w0 = ld512(W, o + r * ld + i, dt);
			for (int t = 0; t < T; t++)
				a0[r][t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * ldx + i), a0[r][t]);
		}
		i += 16;
	}
	if (i < cols) {
		__mmask16 m = (__mmask16)((1u << (cols - i)) - 1);
		for (int r = 0; r < R; r++) {
			__m512 w1 = mld512(m, W, o + r * ld + i, dt);
			for (int t = 0; t < T; t++)
				a1[r][t] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m, x + t * ldx + i), a1[r][t]);
		}
	}
	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++)
			y[t * ldy + r] = hsum512(_mm512_add_ps(a0[r][t], a1[r][t]));
}
DEF_TILES(tiles_avx512_f16, __attribute__((target(T512))), tile512, 2, 4, ST_F16)
DEF_TILES(tiles_avx512_bf16, __attribute__((target(T512))), tile512, 2, 4, ST_BF16)

__attribute__((target(T2))) static void widen_f16c(float *d, const uint16_t *s, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
	for (; i < n; i++)
		d[i] = _cvtsh_ss(s[i]);
}
#else
#define HAVE_X86 0
#endif

int matmul_isa_best(void)
{
#if HAVE_X86
	__builtin_cpu_init();
	int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		   __builtin_cpu_supports("f16c");
	if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl"))
		return MATMUL_ISA_AVX512;
	if (avx2)
		return MATMUL_ISA_AVX2;
#endif
	return MATMUL_ISA_C;
}

/* The kernel for (isa, dtype). */
static rows_fn rows_kernel(int isa, int dtype)
{
	static const rows_fn k[3][3] = {
		[MATMUL_ISA_C] = {rows_c_f32, rows_c_f16, rows_c_bf16},
#if HAVE_X86
		[MATMUL_ISA_AVX2] = {rows_avx2_f32, rows_avx2_f16, rows_avx2_bf16},
		[MATMUL_ISA_AVX512] = {rows_avx512_f32, rows_avx512_f16, rows_avx512_bf16},
#endif
	};
	int d = dtype == ST_F32 ? 0 : dtype == ST_F16 ? 1 : 2;
	return k[isa][d];
}

/* The chunk kernel for (isa, half-precision dtype); float32 chunks go
 * through sgemm. */
static tiles_fn tiles_kernel(int isa, int dtype)
{
	static const tiles_fn k[3][2] = {
		[MATMUL_ISA_C] = {tiles_c_f16, tiles_c_bf16},
#if HAVE_X86
		[MATMUL_ISA_AVX2] = {tiles_avx2_f16, tiles_avx2_bf16},
		[MATMUL_ISA_AVX512] = {tiles_avx512_f16, tiles_avx512_bf16},
#endif
	};
	return k[isa][dtype == ST_F16 ? 0 : 1];
}

void matmul_widen(float *d, const void *src, int dtype, size_t n)
{
	const uint16_t *h = src;
	if (dtype == ST_F32) {
		memcpy(d, src, n * sizeof *d);
	} else if (dtype == ST_BF16) {
		for (size_t i = 0; i < n; i++)
			d[i] = st_bf16_to_f32(h[i]);
	} else {
#if HAVE_X86
		if (matmul_isa_best() != MATMUL_ISA_C) {
			widen_f16c(d, h, n);
			return;
		}
#endif
		pthread_once(&f16_once, f16_table_init);
		for (size_t i = 0; i < n; i++)
			d[i] = f16_table[h[i]];
	}
}

/* ---------------------------------------------------------------- the pool */

struct job {
	int n;                             /* tokens */
	int nops;
	struct matmul_op op[MATMUL_MAX_OPS];
	int first[MATMUL_MAX_OPS + 1];     /* first block of each op; first[nops]: all blocks */
};

struct matmul_pool {
	pthread_t *th;   /* (n) th[1..n-1] are workers; the caller is thread 0 */
	int n, started, isa;
	pthread_mutex_t mu;
	pthread_cond_t go;
	_Atomic uint64_t gen;  /* job number, bumped for every job (under mu) */
	_Atomic int stop;
	int sleepers;          /* workers waiting on go (under mu) */
	struct job job;
	_Atomic uint64_t next; /* gen << 32 | next block to claim */
	_Atomic int done;      /* blocks of the current job finished */
};

/* y[:, r0:r0+nr] = x W^T (+ b) for a chunk of n > 1 tokens through sgemm on
 * float32 rows Wf (nr, cols). */
static void gemm_rows(const struct job *j, const struct matmul_op *o, const float *Wf, int r0, int nr)
{
	int rows = o->W->rows, cols = o->W->cols;
	for (int t = 0; o->b && t < j->n; t++)
		memcpy(o->y + (size_t)t * rows + r0, o->b + r0, (size_t)nr * sizeof *o->y);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, nr, cols, 1.0f, o->x, cols, Wf, cols,
		    o->b ? 1.0f : 0.0f, o->y + r0, rows);
}

/* One block of rows r0..r0+nr of product o. */
static void run_block(const struct matmul_pool *p, const struct job *j, const struct matmul_op *o, int r0,
		      int nr)
{
	const struct matrix *W = o->W;
	size_t eb = (size_t)matmul_dtype_bytes(W->dtype);
	const char *src = (const char *)W->data + (size_t)r0 * W->cols * eb;
	if (j->n > 1 && W->dtype == ST_F32) {
		gemm_rows(j, o, (const float *)src, r0, nr);
		return;
	}
	if (j->n == 1)
		rows_kernel(p->isa, W->dtype)(o->y + r0, src, (size_t)W->cols, o->x, W->cols, nr);
	else
		tiles_kernel(p->isa, W->dtype)(o->y + r0, (size_t)W->rows, src, (size_t)W->cols, o->x,
					       (size_t)W->cols, W->cols, nr, j->n);
	for (int t = 0; o->b && t < j->n; t++)
		for (int r = 0; r < nr; r++)
			o->y[(size_t)t * W->rows + r0 + r] += o->b[r0 + r];
}

/* Claim and run blocks of job j (number gen) until none is left. */
static void claim(struct matmul_pool *p, const struct job *j, uint64_t gen)
{
	int nblk = j->first[j->nops];
	for (;;) {
		uint64_t cur = atomic_load(&p->next);
		if (cur >> 32 != (gen & 0xffffffffu) || (int)(cur & 0xffffffffu) >= nblk)
			return;
		if (!atomic_compare_exchange_weak(&p->next, &cur, cur + 1))
			continue;
		int b = (int)(cur & 0xffffffffu), k = 0;
		while (b >= j->first[k + 1])
			k++;
		const struct matmul_op *o = &j->op[k];
		int r0 = (b - j->first[k]) * MATMUL_BLOCK_ROWS;
		int nr = o->W->rows - r0 < MATMUL_BLOCK_ROWS ? o->W->rows - r0 : MATMUL_BLOCK_ROWS;
		run_block(p, j, o, r0, nr);
		atomic_fetch_add(&p->done, 1);
	}
}

static inline void cpu_relax(void)
{
#if HAVE_X86
	__builtin_ia32_pause();
#endif
}

static void *pool_worker(void *arg)
{
	struct matmul_pool *p = arg;
	uint64_t seen = 0;
	for (;;) {
		/* the next job usually follows at once: poll before sleeping */
		for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->gen) == seen && !atomic_load(&p->stop); i++)
			cpu_relax();
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) {
			p->sleepers++;
			pthread_cond_wait(&p->go, &p->mu);
			p->sleepers--;
		}
		seen = atomic_load(&p->gen);
		struct job j = p->job; /* stable: the caller changes it only under mu */
		int stop = atomic_load(&p->stop);
		pthread_mutex_unlock(&p->mu);
		if (stop)
			return NULL;
		claim(p, &j, seen);
	}
}

struct matmul_pool *matmul_pool_new(int threads, struct lif_err *err)
{
	struct matmul_pool *p = calloc(1, sizeof *p);
	if (!p) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	p->n = threads < 1 ? 1 : threads;
	p->isa = matmul_isa_best();
	if (p->isa == MATMUL_ISA_C)
		pthread_once(&f16_once, f16_table_init);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	atomic_init(&p->gen, 0);
	atomic_init(&p->stop, 0);
	atomic_init(&p->next, 0);
	atomic_init(&p->done, 0);
	p->th = calloc((size_t)p->n, sizeof *p->th);
	int ok = p->th != NULL;
	for (int t = 1; ok && t < p->n; t++) {
		if (pthread_create(&p->th[t], NULL, pool_worker, p)) {
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
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int t = 1; t <= p->started; t++)
		pthread_join(p->th[t], NULL);
	free(p->th);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->go);
	free(p);
}

int matmul_pool_set_isa(struct matmul_pool *p, int isa, struct lif_err *err)
{
	if (isa < MATMUL_ISA_C || isa > matmul_isa_best())
		return err_set(err, ERR_INVAL, "this CPU has no %s kernels (best: %s)", matmul_isa_name(isa),
			       matmul_isa_name(matmul_isa_best()));
	if (isa == MATMUL_ISA_C)
		pthread_once(&f16_once, f16_table_init);
	p->isa = isa;
	return 0;
}

void matmul_many(struct matmul_pool *p, int n, const struct matmul_op *ops, int nops)
{
	struct job j = {.n = n, .nops = nops};
	for (int k = 0; k < nops; k++) {
		j.op[k] = ops[k];
		j.first[k + 1] = j.first[k] + (ops[k].W->rows + MATMUL_BLOCK_ROWS - 1) / MATMUL_BLOCK_ROWS;
	}
	int nblk = j.first[nops];
	pthread_mutex_lock(&p->mu);
	uint64_t gen = atomic_load(&p->gen) + 1;
	p->job = j;
	atomic_store(&p->done, 0);
	atomic_store(&p->next, (gen & 0xffffffffu) << 32);
	atomic_store(&p->gen, gen);
	if (p->sleepers && nblk > 1)
		pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	claim(p, &j, gen);
	for (int i = 0; atomic_load(&p->done) < nblk; i++) /* blocks other threads are finishing */
		if (i < SPIN_ROUNDS)
			cpu_relax();
		else
			sched_yield(); /* the other thread may have lost its CPU */
}

void matmul(struct matmul_pool *p, int n, float *y, const struct matrix *W, const float *b,
	    const float *x)
{
	struct matmul_op o = {y, W, b, x};
	matmul_many(p, n, &o, 1);
}

void matmul_dot_rows(const struct matmul_pool *p, float *y, const float *W, size_t ld, const float *x,
		     int cols, int nr)
{
	rows_kernel(p->isa, ST_F32)(y, W, ld, x, cols, nr);
}

void matmul_row(const struct matmul_pool *p, float *dst, const struct matrix *W, int row)
{
	(void)p;
	size_t off = (size_t)row * W->cols * matmul_dtype_bytes(W->dtype);
	matmul_widen(dst, (const char *)W->data + off, W->dtype, (size_t)W->cols);
}
