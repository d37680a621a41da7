/* The recorder's matrix products (traces/record/matmul.h): every kernel the
 * CPU has against a double-precision reference, rows independent of the
 * rows computed beside them (what makes results thread-count independent),
 * and the fused products. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "traces/record/matmul.h"
#include "traces/record/safetensors.h"

/* Shapes that exercise every tail: rows not a multiple of 4 or of a block,
 * columns not a multiple of 8, 16 or 32. */
static const int shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {67, 61}, {130, 256}, {133, 1000}, {9, 2047}};

struct mats {
	float *f32;
	uint16_t *f16, *bf16;
	float *x, *b;
};

/* Random weights, representable exactly in each dtype (so one reference
 * serves all three): f16 values with 10-bit mantissas from bf16-exact ones. */
static struct mats mats_new(int rows, int cols, unsigned seed)
{
	struct mats m;
	size_t n = (size_t)rows * cols;
	m.f32 = malloc(n * sizeof *m.f32);
	m.f16 = malloc(n * 2);
	m.bf16 = malloc(n * 2);
	m.x = malloc((size_t)cols * sizeof *m.x);
	m.b = malloc((size_t)rows * sizeof *m.b);
	srand(seed);
	for (size_t i = 0; i < n; i++) {
		/* a bf16 value in [-2, 2) with 7 mantissa bits: also exact in f16 */
		int k = rand() % 512 - 256;
		float v = (float)k / 128.0f;
		m.f32[i] = v;
		uint32_t u;
		memcpy(&u, &v, 4);
		m.bf16[i] = (uint16_t)(u >> 16);
		/* the same value in fp16: sign, exponent rebiased, mantissa */
		if (k == 0) {
			m.f16[i] = 0;
		} else {
			int e = (int)((u >> 23) & 255) - 127 + 15;
			m.f16[i] = (uint16_t)((u >> 16 & 0x8000) | e << 10 | (u >> 13 & 0x3ff));
		}
	}
	for (int i = 0; i < cols; i++)
		m.x[i] = (float)(rand() % 2001 - 1000) / 997.0f;
	for (int r = 0; r < rows; r++)
		m.b[r] = (float)(rand() % 201 - 100) / 50.0f;
	return m;
}

static void mats_free(struct mats *m)
{
	free(m->f32), free(m->f16), free(m->bf16), free(m->x), free(m->b);
}

Test(matmul, test_weights_are_the_same_in_every_dtype)
{
	struct mats m = mats_new(5, 33, 1);
	for (int i = 0; i < 5 * 33; i++) {
		cr_assert_eq(st_f16_to_f32(m.f16[i]), m.f32[i], "f16 %d", i);
		cr_assert_eq(st_bf16_to_f32(m.bf16[i]), m.f32[i], "bf16 %d", i);
	}
	mats_free(&m);
}

/* Every ISA this CPU has, every dtype, 1 and 3 threads, one token: within
 * float32 rounding of a double-precision sum. */
Test(matmul, every_kernel_matches_a_double_precision_reference)
{
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int rows = shapes[s][0], cols = shapes[s][1];
		struct mats m = mats_new(rows, cols, 7 + (unsigned)s);
		double *want = malloc((size_t)rows * sizeof *want), scale = 0;
		for (int r = 0; r < rows; r++) {
			double acc = m.b[r], mag = fabs(m.b[r]);
			for (int i = 0; i < cols; i++) {
				acc += (double)m.f32[(size_t)r * cols + i] * m.x[i];
				mag += fabs((double)m.f32[(size_t)r * cols + i] * m.x[i]);
			}
			want[r] = acc;
			scale = fmax(scale, mag);
		}
		float *y = malloc((size_t)rows * sizeof *y);
		const void *data[3] = {m.f32, m.f16, m.bf16};
		const int dt[3] = {ST_F32, ST_F16, ST_BF16};
		for (int th = 1; th <= 3; th += 2)
			for (int isa = MATMUL_ISA_C; isa <= matmul_isa_best(); isa++)
				for (int d = 0; d < 3; d++) {
					struct lif_err e = {0};
					struct matmul_pool *p = matmul_pool_new(th, &e);
					cr_assert(p, "%s", e.msg);
					cr_assert_eq(matmul_pool_set_isa(p, isa, &e), 0, "%s", e.msg);
					struct matrix W = {data[d], dt[d], rows, cols};
					matmul(p, 1, y, &W, m.b, m.x);
					for (int r = 0; r < rows; r++)
						cr_expect(fabs(y[r] - want[r]) <= 1e-6 * scale + 1e-30,
							  "%dx%d isa %s dtype %d row %d: %.9g vs %.9g", rows, cols,
							  matmul_isa_name(isa), dt[d], r, y[r], want[r]);
					matmul_pool_free(p);
				}
		free(y);
		free(want);
		mats_free(&m);
	}
}

/* A row's value is the same bits whether it is computed with all the
 * others, alone, or with any other neighbours: threads may take any rows. */
Test(matmul, a_row_does_not_depend_on_the_rows_beside_it)
{
	int rows = 133, cols = 1000;
	struct mats m = mats_new(rows, cols, 3);
	float *all = malloc((size_t)rows * sizeof *all), one;
	const void *data[3] = {m.f32, m.f16, m.bf16};
	const int dt[3] = {ST_F32, ST_F16, ST_BF16};
	for (int isa = MATMUL_ISA_C; isa <= matmul_isa_best(); isa++)
		for (int d = 0; d < 3; d++) {
			struct lif_err e = {0};
			struct matmul_pool *p = matmul_pool_new(1, &e);
			cr_assert(p, "%s", e.msg);
			cr_assert_eq(matmul_pool_set_isa(p, isa, &e), 0, "%s", e.msg);
			struct matrix W = {data[d], dt[d], rows, cols};
			matmul(p, 1, all, &W, NULL, m.x);
			for (int r = 0; r < rows; r++) {
				struct matrix Wr = {(const char *)data[d] + (size_t)r * cols * matmul_dtype_bytes(dt[d]),
						    dt[d], 1, cols};
				matmul(p, 1, &one, &Wr, NULL, m.x);
				cr_expect_eq(memcmp(&one, &all[r], sizeof one), 0, "isa %s dtype %d row %d: %.9g vs %.9g",
					     matmul_isa_name(isa), dt[d], r, one, all[r]);
			}
			matmul_pool_free(p);
		}
	free(all);
	mats_free(&m);
}

/* matmul_many gives each product exactly what matmul gives it, for one
 * token and for a chunk, with any thread count. */
Test(matmul, fused_products_equal_separate_ones)
{
	int cols = 61, rows[3] = {130, 5, 67}, n[2] = {1, 9};
	struct mats m[3] = {mats_new(130, cols, 11), mats_new(5, cols, 12), mats_new(67, cols, 13)};
	float *x = malloc(9 * (size_t)cols * sizeof *x);
	for (int i = 0; i < 9 * cols; i++)
		x[i] = (float)(i % 17) / 8.0f - 1.0f;
	for (int k = 0; k < 2; k++)
		for (int th = 1; th <= 2; th++) {
			struct lif_err e = {0};
			struct matmul_pool *p = matmul_pool_new(th, &e);
			cr_assert(p, "%s", e.msg);
			struct matrix W[3];
			struct matmul_op ops[3];
			float *sep[3], *fused[3];
			for (int i = 0; i < 3; i++) {
				W[i] = (struct matrix){m[i].f16, ST_F16, rows[i], cols};
				sep[i] = calloc((size_t)n[k] * rows[i], sizeof(float));
				fused[i] = calloc((size_t)n[k] * rows[i], sizeof(float));
				matmul(p, n[k], sep[i], &W[i], i == 1 ? NULL : m[i].b, x);
				ops[i] = (struct matmul_op){fused[i], &W[i], i == 1 ? NULL : m[i].b, x};
			}
			matmul_many(p, n[k], ops, 3);
			for (int i = 0; i < 3; i++) {
				cr_expect_eq(memcmp(sep[i], fused[i], (size_t)n[k] * rows[i] * sizeof(float)), 0,
					     "product %d, %d tokens, %d threads", i, n[k], th);
				free(sep[i]), free(fused[i]);
			}
			matmul_pool_free(p);
		}
	free(x);
	for (int i = 0; i < 3; i++)
		mats_free(&m[i]);
}

Test(matmul, an_isa_the_cpu_lacks_is_refused)
{
	struct lif_err e = {0};
	struct matmul_pool *p = matmul_pool_new(1, &e);
	cr_assert(p, "%s", e.msg);
	cr_expect_neq(matmul_pool_set_isa(p, 7, &e), 0);
	cr_expect(strstr(e.msg, "no ? kernels"), "%s", e.msg);
	if (matmul_isa_best() < MATMUL_ISA_AVX512) {
		struct lif_err e2 = {0};
		cr_expect_neq(matmul_pool_set_isa(p, MATMUL_ISA_AVX512, &e2), 0);
		cr_expect(strstr(e2.msg, "no avx512 kernels"), "%s", e2.msg);
	}
	matmul_pool_free(p);
}

/* A half-precision prompt chunk gives every token exactly the bits decoding
 * that token alone gives it (the chunk kernels sum each row and token as the
 * decode kernels do), for every ISA this CPU has, chunk sizes around the
 * token tiles, every shape's row and column tails, and 1 or 3 threads. */
Test(matmul, a_half_precision_chunk_equals_its_tokens_decoded_alone)
{
	const int ns[] = {2, 3, 4, 5, 9};
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int rows = shapes[s][0], cols = shapes[s][1];
		struct mats m = mats_new(rows, cols, 21 + (unsigned)s);
		float *x = malloc(9 * (size_t)cols * sizeof *x);
		for (int i = 0; i < 9 * cols; i++)
			x[i] = (float)((i * 7919) % 2001 - 1000) / 997.0f;
		float *chunk = malloc(9 * (size_t)rows * sizeof *chunk), *one = malloc((size_t)rows * sizeof *one);
		const void *data[2] = {m.f16, m.bf16};
		const int dt[2] = {ST_F16, ST_BF16};
		for (int th = 1; th <= 3; th += 2)
			for (int isa = MATMUL_ISA_C; isa <= matmul_isa_best(); isa++)
				for (int d = 0; d < 2; d++)
					for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
						struct lif_err e = {0};
						struct matmul_pool *p = matmul_pool_new(th, &e);
						cr_assert(p, "%s", e.msg);
						cr_assert_eq(matmul_pool_set_isa(p, isa, &e), 0, "%s", e.msg);
						struct matrix W = {data[d], dt[d], rows, cols};
						matmul(p, ns[k], chunk, &W, m.b, x);
						for (int t = 0; t < ns[k]; t++) {
							matmul(p, 1, one, &W, m.b, x + (size_t)t * cols);
							cr_expect_eq(memcmp(one, chunk + (size_t)t * rows, (size_t)rows * sizeof *one), 0,
								     "%dx%d isa %s dtype %d, token %d of %d, %d threads", rows, cols,
								     matmul_isa_name(isa), dt[d], t, ns[k], th);
						}
						matmul_pool_free(p);
					}
		free(chunk), free(one), free(x);
		mats_free(&m);
	}
}
