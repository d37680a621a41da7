/* gemv: formats, the quantizer, dispatch and the portable kernels (see
 * models/gemv/gemv.h for the contract and models/gemv/gemv_impl.h for the layouts). */
#include "models/gemv/gemv.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "models/gemv/gemv_impl.h"

/* ---- fp16 <-> fp32 (round to nearest even; exact like F16C) ---- */

float gemv_h2f(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
	float f;
	if (e == 0) {
		f = ldexpf((float)m, -24);
		return sign ? -f : f;
	}
	if (e == 31)
		x = sign | 0x7f800000u | (m << 13);
	else
		x = sign | ((e - 15 + 127) << 23) | (m << 13);
	memcpy(&f, &x, 4);
	return f;
}

uint16_t gemv_f2h(float f)
{
	uint32_t x, ax, sign, h, rest;
	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	ax = x & 0x7fffffff;
	if (ax >= 0x47800000u) /* >= 65536, inf or nan */
		return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00 : 0x7c00));
	if (ax < 0x38800000u) { /* below 2^-14: subnormal half */
		float af;
		memcpy(&af, &ax, 4);
		return (uint16_t)(sign | (uint32_t)lrintf(af * 16777216.0f));
	}
	h = ((((ax >> 23) - 127 + 15)) << 10) | ((ax & 0x7fffff) >> 13);
	rest = ax & 0x1fff;
	if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

int gemv_have_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	       __builtin_cpu_supports("f16c");
}

static const char *const kernel_names[] = {"dequant", "lut", "dense"};

const char *gemv_kernel_name(enum gemv_kernel k)
{
	return (unsigned)k < 3 ? kernel_names[k] : "?";
}

int gemv_kernel_by_name(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, kernel_names[i]))
			return i;
	return -1;
}

/* ---- quantizer ---- */

void gemv_qmat_free(struct gemv_qmat *q)
{
	if (!q)
		return;
	free(q->dq_codes);
	free(q->dq_sz);
	free(q->lut_codes);
	free(q->lut_sz);
	free(q->w32);
	free(q->w16);
	free(q);
}

static void *alloc_zero(size_t bytes)
{
	/* 64-byte aligned, zeroed; bytes rounded up as aligned_alloc requires */
	size_t n = (bytes + 63) / 64 * 64;
	void *p = aligned_alloc(64, n ? n : 64);
	if (p)
		memset(p, 0, n ? n : 64);
	return p;
}

/* Scale and centre of one group, as fp16; codes into q (n entries). */
static int quantize_group(const float *w, int n, int bits, uint8_t *codes, uint16_t *s_h,
			  uint16_t *z_h)
{
	float lo = w[0], hi = w[0];
	for (int i = 1; i < n; i++) {
		lo = w[i] < lo ? w[i] : lo;
		hi = w[i] > hi ? w[i] : hi;
	}
	int qmax = (1 << bits) - 1;
	float c = 0.5f * (float)qmax;
	*s_h = gemv_f2h((hi - lo) / (float)qmax);
	*z_h = gemv_f2h(0.5f * (hi + lo));
	float s = gemv_h2f(*s_h), z = gemv_h2f(*z_h);
	if (!isfinite(s) || !isfinite(z))
		return -1;
	for (int i = 0; i < n; i++) {
		float v = s > 0 ? rintf((w[i] - z) / s + c) : 0.0f;
		codes[i] = (uint8_t)(v < 0 ? 0 : v > qmax ? qmax : v);
	}
	return 0;
}

/* Pack the 32 codes of one dequant block (layout in gemv_impl.h). */
static void pack_dq_block(const uint8_t *q, int bits, uint8_t *out)
{
	if (bits == 4) {
		for (int k = 0; k < 16; k++)
			out[k] = (uint8_t)(q[k] | q[k + 16] << 4);
	} else if (bits == 2 || bits == 3) {
		for (int k = 0; k < 8; k++)
			for (int t = 0; t < 4; t++)
				out[k] |= (uint8_t)((q[k + 8 * t] & 3) << (2 * t));
	}
	if (bits == 1 || bits == 3) {
		uint8_t *o = out + (bits == 3 ? 8 : 0);
		for (int i = 0; i < 32; i++)
			o[i / 8] |= (uint8_t)(((q[i] >> (bits == 3 ? 2 : 0)) & 1) << (i % 8));
	}
}

void gemv_lut_slot(int bits, int v, int k, int *row, int *plane)
{
	if (v < bits / 2 * 2) { /* plane pair (jp, jp+1), rows 16h..16h+15 */
		*row = 16 * (v % 2) + k / 2;
		*plane = v / 2 * 2 + (k & 1);
		return;
	}
	*row = k >= 8 && k < 16 ? k + 8 : k >= 16 && k < 24 ? k - 8 : k;
	*plane = bits - 1;
}

/* One 32-byte LUT vector: tile t, group g, quad pair p, vector v. */
static void pack_lut_vector(const struct gemv_qmat *q, const uint8_t *codes, int t, int g, int p,
			    int v, uint8_t *out)
{
	for (int k = 0; k < 32; k++) {
		int row, j, r, ia = 0, ib = 0;
		gemv_lut_slot(q->bits, v, k, &row, &j);
		if ((r = t * GEMV_TILE + row) >= q->d_out)
			continue; /* padding rows: index 0, scale 0 */
		const uint8_t *c = codes + (size_t)r * q->d_in_pad + g * q->group + p * 8;
		for (int u = 0; u < 4; u++) {
			ia |= ((c[u] >> j) & 1) << u;
			ib |= ((c[4 + u] >> j) & 1) << u;
		}
		out[k] = (uint8_t)(ia | ib << 4);
	}
}

/* Pack codes (d_out, d_in_pad) and scales (d_out, n_groups, 2) into both
 * layouts (gemv_impl.h). */
static void pack_all(struct gemv_qmat *q, const uint8_t *codes, const uint16_t *sz)
{
	int b = q->bits, G = q->group, ng = q->n_groups, nb = G / GEMV_BLOCK;
	size_t row_bytes = (size_t)ng * nb * 4 * b;
	for (int r = 0; r < q->d_out; r++)
		for (int blk = 0; blk < ng * nb; blk++)
			pack_dq_block(codes + (size_t)r * q->d_in_pad + blk * 32, b,
				      q->dq_codes + r * row_bytes + (size_t)blk * 4 * b);
	memcpy(q->dq_sz, sz, (size_t)q->d_out * ng * 2 * sizeof *sz);
	uint8_t *o = q->lut_codes;
	for (int t = 0; t < q->n_tiles; t++)
		for (int g = 0; g < ng; g++) {
			for (int p = 0; p < G / 8; p++)
				for (int v = 0; v < b; v++, o += 32)
					pack_lut_vector(q, codes, t, g, p, v, o);
			uint16_t *s = q->lut_sz + ((size_t)t * ng + g) * 2 * GEMV_TILE;
			for (int k = 0; k < GEMV_TILE && t * GEMV_TILE + k < q->d_out; k++) {
				const uint16_t *src = sz + ((size_t)(t * GEMV_TILE + k) * ng + g) * 2;
				s[k] = src[0];
				s[GEMV_TILE + k] = src[1];
			}
		}
}

static int quantize_lowbit(struct gemv_qmat *q, const float *w, struct lif_err *err)
{
	int ng = q->n_groups, G = q->group, b = q->bits, rc = 0;
	uint8_t *codes = alloc_zero((size_t)q->d_out * q->d_in_pad);
	uint16_t *sz = alloc_zero((size_t)q->d_out * ng * 2 * sizeof *sz);
	q->dq_codes = alloc_zero((size_t)q->d_out * ng * (G / 32) * 4 * b);
	q->dq_sz = alloc_zero((size_t)q->d_out * ng * 2 * sizeof *sz);
	q->lut_codes = alloc_zero((size_t)q->n_tiles * GEMV_TILE * ng * G / 8 * b);
	q->lut_sz = alloc_zero((size_t)q->n_tiles * ng * 2 * GEMV_TILE * sizeof *sz);
	if (!codes || !sz || !q->dq_codes || !q->dq_sz || !q->lut_codes || !q->lut_sz) {
		rc = err_set(err, ERR_NOMEM, "gemv: no memory for a %dx%d %d-bit matrix", q->d_out,
			     q->d_in, b);
		goto out;
	}
	for (int r = 0; r < q->d_out && !rc; r++)
		for (int g = 0; g < ng; g++) {
			int n = q->d_in - g * G < G ? q->d_in - g * G : G;
			uint16_t *p = sz + ((size_t)r * ng + g) * 2;
			if (quantize_group(w + (size_t)r * q->d_in + g * G, n, b,
					   codes + (size_t)r * q->d_in_pad + g * G, p, p + 1)) {
				rc = err_set(err, ERR_RANGE,
					     "gemv: row %d, group %d: weights exceed the fp16 range of "
					     "scales (|w| > 65504)", r, g);
				break;
			}
		}
	if (!rc)
		pack_all(q, codes, sz);
out:
	free(codes);
	free(sz);
	return rc;
}

static int copy_dense(struct gemv_qmat *q, const float *w, struct lif_err *err)
{
	size_t n = (size_t)q->d_out * q->d_in;
	if (q->bits == 32) {
		if (!(q->w32 = alloc_zero(n * sizeof(float))))
			return err_set(err, ERR_NOMEM, "gemv: no memory for %zu fp32 weights", n);
		memcpy(q->w32, w, n * sizeof(float));
		return 0;
	}
	if (!(q->w16 = alloc_zero(n * sizeof(uint16_t))))
		return err_set(err, ERR_NOMEM, "gemv: no memory for %zu fp16 weights", n);
	for (size_t i = 0; i < n; i++) {
		q->w16[i] = gemv_f2h(w[i]);
		if ((q->w16[i] & 0x7c00) == 0x7c00)
			return err_set(err, ERR_RANGE, "gemv: weight %zu (%g) is outside the fp16 range",
				       i, w[i]);
	}
	return 0;
}

struct gemv_qmat *gemv_quantize(const float *w, int d_out, int d_in, int bits, int group,
				struct lif_err *err)
{
	int dense = bits == 32 || bits == 16;
	if (d_out < 1 || d_in < 1) {
		err_set(err, ERR_INVAL, "gemv: shape %dx%d is empty", d_out, d_in);
		return NULL;
	}
	if (!dense && (bits < 1 || bits > 4)) {
		err_set(err, ERR_INVAL, "gemv: %d bits is not supported (1, 2, 3, 4, 16 or 32)", bits);
		return NULL;
	}
	if (!dense && group != 32 && group != 64) {
		err_set(err, ERR_INVAL, "gemv: group size %d is not supported (32 or 64)", group);
		return NULL;
	}
	for (size_t i = 0; i < (size_t)d_out * d_in; i++)
		if (!isfinite(w[i])) {
			err_set(err, ERR_INVAL, "gemv: weight (%zu, %zu) is not finite", i / d_in,
				i % d_in);
			return NULL;
		}
	struct gemv_qmat *q = calloc(1, sizeof *q);
	if (!q) {
		err_set(err, ERR_NOMEM, "gemv: no memory");
		return NULL;
	}
	q->d_out = d_out, q->d_in = d_in, q->bits = bits, q->group = dense ? 0 : group;
	if (!dense) {
		q->n_groups = (d_in + group - 1) / group;
		q->d_in_pad = q->n_groups * group;
		q->n_tiles = (d_out + GEMV_TILE - 1) / GEMV_TILE;
	}
	if (dense ? copy_dense(q, w, err) : quantize_lowbit(q, w, err)) {
		gemv_qmat_free(q);
		return NULL;
	}
	return q;
}

int gemv_qmat_bits(const struct gemv_qmat *q) { return q->bits; }
int gemv_qmat_group(const struct gemv_qmat *q) { return q->group; }
int gemv_qmat_d_out(const struct gemv_qmat *q) { return q->d_out; }
int gemv_qmat_d_in(const struct gemv_qmat *q) { return q->d_in; }

int64_t gemv_bytes(int d_out, int d_in, int bits, int group)
{
	int64_t n = (int64_t)d_out * d_in;
	if (bits == 32 || bits == 16)
		return n * (bits / 8);
	if (bits < 1 || bits > 4 || (group != 32 && group != 64) || d_out < 1 || d_in < 1)
		return -1;
	return (n * bits + 7) / 8 + (int64_t)d_out * ((d_in + group - 1) / group) * 2 * 2;
}

int64_t gemv_qmat_bytes(const struct gemv_qmat *q)
{
	return gemv_bytes(q->d_out, q->d_in, q->bits, q->group);
}

/* Code of weight (r, i), decoded from the dequant layout. */
static int dq_code(const struct gemv_qmat *q, int r, int i)
{
	int b = q->bits, nblk = q->d_in_pad / 32, k = i % 32;
	const uint8_t *p = q->dq_codes + ((size_t)r * nblk + i / 32) * 4 * b;
	if (b == 4)
		return (p[k % 16] >> (k / 16 * 4)) & 15;
	int v = 0;
	if (b == 2 || b == 3)
		v = (p[k % 8] >> (k / 8 * 2)) & 3;
	if (b == 1 || b == 3)
		v |= ((p[(b == 3 ? 8 : 0) + k / 8] >> (k % 8)) & 1) << (b == 3 ? 2 : 0);
	return v;
}

int gemv_qmat_dequantize(const struct gemv_qmat *q, float *w_hat, struct lif_err *err)
{
	size_t n = (size_t)q->d_out * q->d_in;
	if (q->bits == 32) {
		memcpy(w_hat, q->w32, n * sizeof(float));
		return 0;
	}
	if (q->bits == 16) {
		for (size_t i = 0; i < n; i++)
			w_hat[i] = gemv_h2f(q->w16[i]);
		return 0;
	}
	float c = 0.5f * (float)((1 << q->bits) - 1);
	for (int r = 0; r < q->d_out; r++)
		for (int i = 0; i < q->d_in; i++) {
			const uint16_t *sz = q->dq_sz + ((size_t)r * q->n_groups + i / q->group) * 2;
			w_hat[(size_t)r * q->d_in + i] =
				gemv_h2f(sz[0]) * ((float)dq_code(q, r, i) - c) + gemv_h2f(sz[1]);
		}
	return 0;
}

/* ---- per-call activation preparation ---- */

/* x padded to d_in_pad, int8 per block of 32 (llama.cpp's Q8 rounding). */
static void prep_dq(const struct gemv_qmat *q, const float *xp, int8_t *qx, float *d, float *dsum,
		    int b0, int b1, int avx2)
{
	if (avx2) {
		gemv_dq_prep_avx2(xp, qx, d, dsum, b0, b1);
		return;
	}
	for (int blk = b0; blk < b1; blk++) {
		const float *v = xp + blk * 32;
		float amax = 0;
		for (int i = 0; i < 32; i++)
			amax = fabsf(v[i]) > amax ? fabsf(v[i]) : amax;
		float dd = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0;
		int sum = 0;
		for (int i = 0; i < 32; i++) {
			int t = (int)lrintf(v[i] * id);
			qx[blk * 32 + i] = (int8_t)t;
			sum += t;
		}
		d[blk] = dd;
		dsum[blk] = dd * (float)sum;
	}
}

/* Tables of groups [g0, g1): entries 0..7 computed, 8..15 by mirror symmetry
 * T[15 - k] = -T[k]; quantized with a = max quad sum|x| / 127. */
static void prep_lut(const struct gemv_qmat *q, const float *xp, int8_t *tab, float *half_a,
		     float *xsum, int g0, int g1, int avx2)
{
	int G = q->group;
	for (int g = g0; g < g1; g++) {
		const float *v = xp + (size_t)g * G;
		float amax = 0, sum = 0;
		for (int i = 0; i < G; i += 4) {
			float m = fabsf(v[i]) + fabsf(v[i + 1]) + fabsf(v[i + 2]) + fabsf(v[i + 3]);
			amax = m > amax ? m : amax;
			sum += v[i] + v[i + 1] + v[i + 2] + v[i + 3];
		}
		float ia = amax > 0 ? 127.0f / amax : 0;
		half_a[g] = 0.5f * amax / 127.0f;
		xsum[g] = sum;
		if (avx2) {
			gemv_lut_tables_avx2(v, G / 4, ia, tab + (size_t)g * G * 4);
			continue;
		}
		for (int i = 0; i < G; i += 4) {
			int8_t *t = tab + ((size_t)g * G + i) * 4;
			for (int k = 0; k < 8; k++) {
				float e = ((k & 1) ? v[i] : -v[i]) + ((k & 2) ? v[i + 1] : -v[i + 1]) +
					  ((k & 4) ? v[i + 2] : -v[i + 2]) - v[i + 3];
				long r = lrintf(e * ia);
				r = r > 127 ? 127 : r < -127 ? -127 : r;
				t[k] = (int8_t)r;
				t[15 - k] = (int8_t)-r;
			}
		}
	}
}

/* ---- portable kernels ---- */

/* The 32 codes of a dequant block (inverse of pack_dq_block). */
static void unpack_dq_block(const uint8_t *p, int bits, uint8_t *q)
{
	for (int k = 0; k < 32; k++) {
		if (bits == 4) {
			q[k] = (p[k % 16] >> (k / 16 * 4)) & 15;
			continue;
		}
		q[k] = bits == 1 ? 0 : (p[k % 8] >> (k / 8 * 2)) & 3;
		if (bits == 1 || bits == 3)
			q[k] |= ((p[(bits == 3 ? 8 : 0) + k / 8] >> (k % 8)) & 1) << (bits == 3 ? 2 : 0);
	}
}

void gemv_dq_rows_scalar(const struct gemv_qmat *q, const struct gemv_dq_act *a, float *y, int r0,
			 int r1)
{
	int nb = q->group / 32, bb = 4 * q->bits;
	float c = 0.5f * (float)((1 << q->bits) - 1);
	uint8_t codes[32];
	for (int r = r0; r < r1; r++) {
		float acc = 0;
		const uint8_t *w = q->dq_codes + (size_t)r * q->n_groups * nb * bb;
		for (int g = 0; g < q->n_groups; g++) {
			const uint16_t *sz = q->dq_sz + ((size_t)r * q->n_groups + g) * 2;
			float s = gemv_h2f(sz[0]), zc = gemv_h2f(sz[1]) - s * c;
			for (int h = 0; h < nb; h++, w += bb) {
				int blk = g * nb + h, isum = 0;
				unpack_dq_block(w, q->bits, codes);
				for (int k = 0; k < 32; k++)
					isum += codes[k] * a->qx[blk * 32 + k];
				acc += s * a->d[blk] * (float)isum + zc * a->dsum[blk];
			}
		}
		y[r] = acc;
	}
}

void gemv_lut_tiles_scalar(const struct gemv_qmat *q, const struct gemv_lut_act *a, float *y,
			   int t0, int t1)
{
	int b = q->bits, G = q->group;
	for (int t = t0; t < t1; t++) {
		float acc[GEMV_TILE] = {0};
		const uint8_t *w = q->lut_codes + (size_t)t * q->n_groups * G / 8 * b * GEMV_TILE;
		for (int g = 0; g < q->n_groups; g++) {
			int32_t is[GEMV_TILE] = {0};
			for (int p = 0; p < G / 8; p++) {
				const int8_t *tab = a->tab + ((size_t)g * G + p * 8) * 4;
				for (int v = 0; v < b; v++, w += 32)
					for (int k = 0; k < 32; k++) {
						int row, j;
						gemv_lut_slot(b, v, k, &row, &j);
						is[row] += (tab[w[k] & 15] + tab[16 + (w[k] >> 4)]) * (1 << j);
					}
			}
			const uint16_t *sz = q->lut_sz + ((size_t)t * q->n_groups + g) * 2 * GEMV_TILE;
			for (int k = 0; k < GEMV_TILE; k++)
				acc[k] += gemv_h2f(sz[k]) * a->half_a[g] * (float)is[k] +
					  gemv_h2f(sz[GEMV_TILE + k]) * a->xsum[g];
		}
		for (int k = 0; k < GEMV_TILE && t * GEMV_TILE + k < q->d_out; k++)
			y[t * GEMV_TILE + k] = acc[k];
	}
}

/* ---- dispatch ---- */

/* Work is handed out in chunks (dynamic schedule): on a loaded machine a
 * thread that is descheduled does not hold back the others. Activations are
 * prepared by the calling thread before the team starts (a few µs), so the
 * team has no inner barrier. Rows are independent: results do not depend on
 * the schedule. */
#define DQ_CHUNK_ROWS 64
#define LUT_CHUNK_TILES 2

static int run_dequant(const struct gemv_qmat *q, const float *xp, float *y, int threads, int avx2,
		       struct lif_err *err)
{
	int nblk = q->d_in_pad / 32;
	int8_t *qx = alloc_zero(q->d_in_pad);
	float *d = alloc_zero(nblk * sizeof(float)), *dsum = alloc_zero(nblk * sizeof(float));
	if (!qx || !d || !dsum) {
		free(qx), free(d), free(dsum);
		return err_set(err, ERR_NOMEM, "gemv: no memory for activations");
	}
	struct gemv_dq_act a = {qx, d, dsum};
	prep_dq(q, xp, qx, d, dsum, 0, nblk, avx2);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
	for (int r = 0; r < q->d_out; r += DQ_CHUNK_ROWS) {
		int hi = r + DQ_CHUNK_ROWS < q->d_out ? r + DQ_CHUNK_ROWS : q->d_out;
		if (avx2)
			gemv_dq_rows_avx2(q, &a, y, r, hi);
		else
			gemv_dq_rows_scalar(q, &a, y, r, hi);
	}
	free(qx), free(d), free(dsum);
	return 0;
}

static int run_lut(const struct gemv_qmat *q, const float *xp, float *y, int threads, int avx2,
		   struct lif_err *err)
{
	int ng = q->n_groups;
	int8_t *tab = alloc_zero((size_t)q->d_in_pad * 4);
	float *half_a = alloc_zero(ng * sizeof(float)), *xsum = alloc_zero(ng * sizeof(float));
	if (!tab || !half_a || !xsum) {
		free(tab), free(half_a), free(xsum);
		return err_set(err, ERR_NOMEM, "gemv: no memory for tables");
	}
	struct gemv_lut_act a = {tab, half_a, xsum};
	prep_lut(q, xp, tab, half_a, xsum, 0, ng, avx2);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
	for (int t = 0; t < q->n_tiles; t += LUT_CHUNK_TILES) {
		int hi = t + LUT_CHUNK_TILES < q->n_tiles ? t + LUT_CHUNK_TILES : q->n_tiles;
		if (avx2)
			gemv_lut_tiles_avx2(q, &a, y, t, hi);
		else
			gemv_lut_tiles_scalar(q, &a, y, t, hi);
	}
	free(tab), free(half_a), free(xsum);
	return 0;
}

/* Rows per fp16 conversion block: about 256 KiB of fp32, so it stays in L2. */
static int dense_block_rows(int d_in)
{
	int r = (256 << 10) / (4 * d_in);
	return r < 1 ? 1 : r;
}

static int run_dense(const struct gemv_qmat *q, const float *x, float *y, int threads, int avx2,
		     struct lif_err *err)
{
	int fail = 0, br = dense_block_rows(q->d_in), chunk = br < 64 ? 64 / br * br : br;
	openblas_set_num_threads(1);
#pragma omp parallel num_threads(threads) reduction(| : fail)
	{
		float *buf = q->w16 ? malloc((size_t)br * q->d_in * sizeof(float)) : NULL;
		fail = q->w16 && !buf;
#pragma omp for schedule(dynamic, 1)
		for (int lo = 0; lo < q->d_out; lo += chunk) {
			int hi = lo + chunk < q->d_out ? lo + chunk : q->d_out;
			if (q->w32) {
				cblas_sgemv(CblasRowMajor, CblasNoTrans, hi - lo, q->d_in, 1.0f,
					    q->w32 + (size_t)lo * q->d_in, q->d_in, x, 1, 0.0f, y + lo, 1);
				continue;
			}
			for (int r = lo; buf && r < hi; r += br) {
				int m = hi - r < br ? hi - r : br;
				const uint16_t *src = q->w16 + (size_t)r * q->d_in;
				if (avx2)
					gemv_h2f_row_avx2(src, buf, (size_t)m * q->d_in);
				else
					for (size_t k = 0; k < (size_t)m * q->d_in; k++)
						buf[k] = gemv_h2f(src[k]);
				cblas_sgemv(CblasRowMajor, CblasNoTrans, m, q->d_in, 1.0f, buf, q->d_in,
					    x, 1, 0.0f, y + r, 1);
			}
		}
		free(buf);
	}
	return fail ? err_set(err, ERR_NOMEM, "gemv: no memory for the fp16 block") : 0;
}

int gemv_run(enum gemv_kernel k, const struct gemv_qmat *q, const float *x, float *y, int threads,
	     int force_scalar, struct lif_err *err)
{
	int dense = q->bits >= 16, avx2 = !force_scalar && gemv_have_avx2();
	if (threads < 1)
		return err_set(err, ERR_INVAL, "gemv: %d threads", threads);
	if ((k == GEMV_DENSE) != dense || (unsigned)k > GEMV_DENSE)
		return err_set(err, ERR_INVAL, "gemv: kernel %s does not run on %d-bit weights",
			       gemv_kernel_name(k), q->bits);
	if (k == GEMV_DENSE)
		return run_dense(q, x, y, threads, avx2, err);
	float *xp = alloc_zero((size_t)q->d_in_pad * sizeof(float));
	if (!xp)
		return err_set(err, ERR_NOMEM, "gemv: no memory for activations");
	memcpy(xp, x, (size_t)q->d_in * sizeof(float));
	int rc = k == GEMV_LUT ? run_lut(q, xp, y, threads, avx2, err)
			       : run_dequant(q, xp, y, threads, avx2, err);
	free(xp);
	return rc;
}

/* ---- error bounds ---- */

int gemv_error_bound(enum gemv_kernel k, const struct gemv_qmat *q, const float *x, float *bound,
		     struct lif_err *err)
{
	if ((k == GEMV_DENSE) != (q->bits >= 16))
		return err_set(err, ERR_INVAL, "gemv: kernel %s does not run on %d-bit weights",
			       gemv_kernel_name(k), q->bits);
	if (k == GEMV_DENSE) {
		memset(bound, 0, (size_t)q->d_out * sizeof(float));
		return 0;
	}
	int G = q->group, qmax = (1 << q->bits) - 1;
	for (int r = 0; r < q->d_out; r++) {
		double e = 0;
		for (int g = 0; g < q->n_groups; g++) {
			int i0 = g * G, i1 = i0 + G < q->d_in ? i0 + G : q->d_in;
			float s = gemv_h2f(q->dq_sz[((size_t)r * q->n_groups + g) * 2]);
			float z = gemv_h2f(q->dq_sz[((size_t)r * q->n_groups + g) * 2 + 1]);
			double amax = 0;
			for (int i = i0; i < i1; i += 4) {
				double m = 0;
				for (int u = i; u < i + 4 && u < i1; u++)
					m += fabs(x[u]);
				amax = m > amax ? m : amax;
			}
			if (k == GEMV_LUT) {
				e += (double)s * qmax * G * (amax / 127) / 16;
				continue;
			}
			for (int i = i0; i < i1; i += 32) {
				double xm = 0, wsum = 0;
				for (int u = i; u < i + 32 && u < i1; u++) {
					xm = fabs(x[u]) > xm ? fabs(x[u]) : xm;
					wsum += fabs(s * (dq_code(q, r, u) - 0.5 * qmax) + z);
				}
				e += wsum * xm / 127 / 2;
			}
		}
		bound[r] = (float)e;
	}
	return 0;
}

/* ---- bandwidth probe ---- */

double gemv_stream_sum(const float *buf, size_t n, int threads, int force_scalar)
{
	int avx2 = !force_scalar && gemv_have_avx2();
	double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
	{
		int p = omp_get_num_threads(), i = omp_get_thread_num();
		size_t lo = n * i / p, hi = n * (i + 1) / p;
		if (avx2) {
			total += gemv_sum_avx2(buf + lo, hi - lo);
		} else {
			float acc[8] = {0};
			size_t k = lo;
			for (; k + 8 <= hi; k += 8)
				for (int u = 0; u < 8; u++)
					acc[u] += buf[k + u];
			for (; k < hi; k++)
				acc[0] += buf[k];
			for (int u = 0; u < 8; u++)
				total += acc[u];
		}
	}
	return total;
}
