/* gemv_avx2: the AVX2 kernels of models/gemv/gemv.h. Every function here carries
 * target("avx2,fma,f16c") so the rest of the binary stays baseline x86-64;
 * models/gemv/gemv.c calls them only when gemv_have_avx2() says the CPU has them.
 * Layouts are described in models/gemv/gemv_impl.h. */
#include <immintrin.h>
#include <string.h>

#include "models/gemv/gemv_impl.h"

/* Software prefetch distance in bytes of codes (scales: PF_BYTES / bits, the
 * same distance in time). Both kernels stream their weights once; without it
 * the LUT kernel outruns the hardware prefetcher (measured: 2 bits, 4096 x
 * 16384, cold cache: 0.91 -> 0.70 ms median; dequant 2.96 -> 2.10 ms min). */
#define PF_BYTES 8192

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

/* ---- dequantize baseline (llama.cpp style) ---- */

/* 32 bits of p -> 32 bytes 0/0xFF (llama.cpp's bytes_from_bits_32). */
AVX2_INLINE __m256i bits_to_mask(const uint8_t *p)
{
	uint32_t u;
	memcpy(&u, p, 4);
	const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
					       0x0101010101010101, 0x0000000000000000);
	__m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u), shuf);
	v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
	return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

/* 2-bit codes of 8 bytes -> 32 bytes (byte k of the block at shift 2t). */
AVX2_INLINE __m256i crumbs_to_bytes(const uint8_t *p)
{
	long long u;
	memcpy(&u, p, 8);
	__m256i v = _mm256_srlv_epi64(_mm256_set1_epi64x(u), _mm256_set_epi64x(6, 4, 2, 0));
	return _mm256_and_si256(v, _mm256_set1_epi8(3));
}

/* One block of 32 codes as unsigned bytes. */
AVX2_INLINE __m256i unpack_block(const uint8_t *p, int bits)
{
	if (bits == 4) {
		__m128i t = _mm_loadu_si128((const __m128i *)p);
		return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t),
					_mm256_set1_epi8(15));
	}
	if (bits == 2)
		return crumbs_to_bytes(p);
	if (bits == 1)
		return _mm256_and_si256(bits_to_mask(p), _mm256_set1_epi8(1));
	return _mm256_or_si256(crumbs_to_bytes(p),
			       _mm256_and_si256(bits_to_mask(p + 8), _mm256_set1_epi8(4)));
}

AVX2_INLINE float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* s·d·(q·qx) of one block of 32 as 8 fp32 lanes, FMA'd into acc. */
AVX2_INLINE __m256 dq_block(const uint8_t *w, const int8_t *qx, float sd, __m256 acc,
			    const int bits)
{
	__m256i p = _mm256_maddubs_epi16(unpack_block(w, bits),
					 _mm256_load_si256((const __m256i *)qx));
	__m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
	return _mm256_fmadd_ps(_mm256_set1_ps(sd), f, acc);
}

/* Rows [r0, r1): per block y += s·d·(q·qx) + (z - s·c)·d·sum(qx). Two
 * accumulator chains (even and odd blocks) so the loop is bound by
 * throughput, not by FMA latency; with group 32 a step covers two groups,
 * with group 64 the two blocks of one group. */
AVX2_INLINE void dq_rows(const struct gemv_qmat *q, const struct gemv_dq_act *a, float *y, int r0,
			 int r1, const int bits)
{
	const int nblk = q->n_groups * (q->group / 32), bb = 4 * bits, g64 = q->group == 64;
	const float c = 0.5f * (float)((1 << bits) - 1);
	for (int r = r0; r < r1; r++) {
		const uint8_t *w = q->dq_codes + (size_t)r * nblk * bb;
		const uint16_t *sz = q->dq_sz + (size_t)r * q->n_groups * 2;
		__m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
		float z0 = 0, z1 = 0;
		int blk = 0;
		const char *pfw = (const char *)w + PF_BYTES, *pfs = (const char *)sz + PF_BYTES / bits;
		for (; blk + 1 < nblk; blk += 2, w += 2 * bb, sz += g64 ? 2 : 4) {
			if ((const char *)w + PF_BYTES >= pfw) { /* one prefetch per line */
				_mm_prefetch(pfw, _MM_HINT_T0);
				pfw += 64;
			}
			if ((const char *)sz + PF_BYTES / bits >= pfs) {
				_mm_prefetch(pfs, _MM_HINT_T0);
				pfs += 64;
			}
			float s0 = _cvtsh_ss(sz[0]), s1 = g64 ? s0 : _cvtsh_ss(sz[2]);
			float zc0 = _cvtsh_ss(sz[1]) - s0 * c, zc1 = g64 ? zc0 : _cvtsh_ss(sz[3]) - s1 * c;
			acc0 = dq_block(w, a->qx + blk * 32, s0 * a->d[blk], acc0, bits);
			acc1 = dq_block(w + bb, a->qx + (blk + 1) * 32, s1 * a->d[blk + 1], acc1, bits);
			z0 += zc0 * a->dsum[blk];
			z1 += zc1 * a->dsum[blk + 1];
		}
		if (blk < nblk) { /* group 32, odd number of groups */
			float s0 = _cvtsh_ss(sz[0]);
			acc0 = dq_block(w, a->qx + blk * 32, s0 * a->d[blk], acc0, bits);
			z0 += (_cvtsh_ss(sz[1]) - s0 * c) * a->dsum[blk];
		}
		y[r] = hsum(_mm256_add_ps(acc0, acc1)) + (z0 + z1);
	}
}

AVX2 void gemv_dq_rows_avx2(const struct gemv_qmat *q, const struct gemv_dq_act *a, float *y,
			    int r0, int r1)
{
	switch (q->bits) {
	case 1: dq_rows(q, a, y, r0, r1, 1); break;
	case 2: dq_rows(q, a, y, r0, r1, 2); break;
	case 3: dq_rows(q, a, y, r0, r1, 3); break;
	default: dq_rows(q, a, y, r0, r1, 4); break;
	}
}

/* ---- LUT kernel (T-MAC) ---- */

/* One tile of 32 rows. Per group, per pair of quads: the two tables are
 * loaded into registers once and serve all bit planes; each 32-byte load
 * holds the nibble indices of both quads. Paired planes sit in adjacent
 * bytes, so maddubs with weights (2^j, 2^{j+1}) widens and weights them in
 * one step; an odd plane interleaves the two lookups (unpack) instead. The
 * int16 sums acc0, acc1 hold rows 0-15 and 16-31; they are flushed to fp32
 * after every group, before they can overflow. */
AVX2_INLINE void lut_tile(const struct gemv_qmat *q, const struct gemv_lut_act *a, float *yt,
			  const uint8_t *w, const uint16_t *sz, const int bits)
{
	const int npairs = q->group / 8;
	const __m256i lo4 = _mm256_set1_epi8(15);
	const int8_t *tb = a->tab;
	__m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
	for (int g = 0; g < q->n_groups; g++, sz += 2 * GEMV_TILE) {
		__m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
		const char *pw = (const char *)w + PF_BYTES, *ps = (const char *)sz + PF_BYTES / bits;
		for (int i = 0; i < npairs * bits / 2; i++) /* the group's lines, PF_BYTES ahead */
			_mm_prefetch(pw + 64 * i, _MM_HINT_T0);
		_mm_prefetch(ps, _MM_HINT_T0);
		_mm_prefetch(ps + 64, _MM_HINT_T0);
		for (int p = 0; p < npairs; p++, tb += 32) {
			__m256i ta = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)tb));
			__m256i tb2 = _mm256_broadcastsi128_si256(
				_mm_load_si128((const __m128i *)(tb + 16)));
#define LOOKUP(A, B)                                                                          \
	__m256i v = _mm256_load_si256((const __m256i *)w);                                    \
	__m256i A = _mm256_shuffle_epi8(ta, _mm256_and_si256(v, lo4));                        \
	__m256i B = _mm256_shuffle_epi8(tb2, _mm256_and_si256(_mm256_srli_epi16(v, 4), lo4)); \
	w += 32
#pragma GCC unroll 2
			for (int jp = 0; jp + 1 < bits; jp += 2) {
				const __m256i m = _mm256_set1_epi16((short)((1 << jp) | (2 << jp) << 8));
				{
					LOOKUP(A, B);
					acc0 = _mm256_add_epi16(acc0, _mm256_maddubs_epi16(m, A));
					acc0 = _mm256_add_epi16(acc0, _mm256_maddubs_epi16(m, B));
				}
				{
					LOOKUP(A, B);
					acc1 = _mm256_add_epi16(acc1, _mm256_maddubs_epi16(m, A));
					acc1 = _mm256_add_epi16(acc1, _mm256_maddubs_epi16(m, B));
				}
			}
			if (bits & 1) {
				const __m256i m = _mm256_set1_epi8((char)(1 << (bits - 1)));
				LOOKUP(A, B);
				acc0 = _mm256_add_epi16(acc0,
							_mm256_maddubs_epi16(m, _mm256_unpacklo_epi8(A, B)));
				acc1 = _mm256_add_epi16(acc1,
							_mm256_maddubs_epi16(m, _mm256_unpackhi_epi8(A, B)));
			}
#undef LOOKUP
		}
		/* flush: octets of rows, int16 -> fp32, times s·a/2, plus z·sum(x) */
		const __m256 ha = _mm256_set1_ps(a->half_a[g]), xs = _mm256_set1_ps(a->xsum[g]);
#define FLUSH(f, k, src)                                                                      \
	f = _mm256_fmadd_ps(                                                                  \
		_mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(sz + 8 * k))), ha), \
		_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(src)), f);                            \
	f = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(sz + GEMV_TILE + 8 * k))), \
			    xs, f)
		FLUSH(f0, 0, _mm256_castsi256_si128(acc0));
		FLUSH(f1, 1, _mm256_extracti128_si256(acc0, 1));
		FLUSH(f2, 2, _mm256_castsi256_si128(acc1));
		FLUSH(f3, 3, _mm256_extracti128_si256(acc1, 1));
#undef FLUSH
	}
	_mm256_storeu_ps(yt, f0);
	_mm256_storeu_ps(yt + 8, f1);
	_mm256_storeu_ps(yt + 16, f2);
	_mm256_storeu_ps(yt + 24, f3);
}

AVX2_INLINE void lut_tiles(const struct gemv_qmat *q, const struct gemv_lut_act *a, float *y,
			   int t0, int t1, const int bits)
{
	size_t tile_bytes = (size_t)q->n_groups * q->group / 8 * bits * GEMV_TILE;
	for (int t = t0; t < t1; t++) {
		float yt[GEMV_TILE];
		lut_tile(q, a, yt, q->lut_codes + t * tile_bytes,
			 q->lut_sz + (size_t)t * q->n_groups * 2 * GEMV_TILE, bits);
		int n = q->d_out - t * GEMV_TILE < GEMV_TILE ? q->d_out - t * GEMV_TILE : GEMV_TILE;
		memcpy(y + t * GEMV_TILE, yt, n * sizeof(float));
	}
}

AVX2 void gemv_lut_tiles_avx2(const struct gemv_qmat *q, const struct gemv_lut_act *a, float *y,
			      int t0, int t1)
{
	switch (q->bits) {
	case 1: lut_tiles(q, a, y, t0, t1, 1); break;
	case 2: lut_tiles(q, a, y, t0, t1, 2); break;
	case 3: lut_tiles(q, a, y, t0, t1, 3); break;
	default: lut_tiles(q, a, y, t0, t1, 4); break;
	}
}

/* ---- per-call activation preparation (same rounding as models/gemv/gemv.c) ---- */

/* Blocks of 32: d = max|x|/127, qx = round(x/d), dsum = d·sum(qx). */
AVX2 void gemv_dq_prep_avx2(const float *x, int8_t *qx, float *d, float *dsum, int b0, int b1)
{
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	for (int blk = b0; blk < b1; blk++) {
		const float *v = x + (size_t)blk * 32;
		__m256 x0 = _mm256_load_ps(v), x1 = _mm256_load_ps(v + 8);
		__m256 x2 = _mm256_load_ps(v + 16), x3 = _mm256_load_ps(v + 24);
		__m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(x0, absmask), _mm256_and_ps(x1, absmask)),
					 _mm256_max_ps(_mm256_and_ps(x2, absmask), _mm256_and_ps(x3, absmask)));
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_movehdup_ps(h));
		float amax = _mm_cvtss_f32(h), id = amax > 0 ? 127.0f / amax : 0;
		const __m256 idv = _mm256_set1_ps(id);
		__m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(x0, idv));
		__m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(x1, idv));
		__m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(x2, idv));
		__m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(x3, idv));
		__m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
		__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
		s4 = _mm_hadd_epi32(s4, s4);
		s4 = _mm_hadd_epi32(s4, s4);
		/* packs interleave the 128-bit lanes: undo with a dword permute */
		__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
		p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		_mm256_store_si256((__m256i *)(qx + (size_t)blk * 32), p);
		d[blk] = amax / 127.0f;
		dsum[blk] = d[blk] * (float)_mm_cvtsi128_si32(s4);
	}
}

/* Tables of n quads of v with scale 1/ia: entries 0..7 as
 * ((±x0 ± x1) ± x2) - x3 (the order models/gemv/gemv.c uses), 8..15 mirrored. */
AVX2 void gemv_lut_tables_avx2(const float *v, int n, float ia, int8_t *tab)
{
	const __m256 s0 = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);
	const __m256 s1 = _mm256_setr_ps(-1, -1, 1, 1, -1, -1, 1, 1);
	const __m256 s2 = _mm256_setr_ps(-1, -1, -1, -1, 1, 1, 1, 1);
	const __m128i rev = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0);
	const __m128i neg = _mm_setr_epi8(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1);
	const __m256 iav = _mm256_set1_ps(ia);
	for (int i = 0; i < n; i++, v += 4, tab += 16) {
		__m256 e = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(v[0]), s0),
					 _mm256_mul_ps(_mm256_set1_ps(v[1]), s1));
		e = _mm256_add_ps(e, _mm256_mul_ps(_mm256_set1_ps(v[2]), s2));
		e = _mm256_sub_ps(e, _mm256_set1_ps(v[3]));
		__m256i t = _mm256_cvtps_epi32(_mm256_mul_ps(e, iav));
		__m128i w = _mm_packs_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
		w = _mm_packs_epi16(w, w);
		w = _mm_max_epi8(w, _mm_set1_epi8(-127));
		_mm_store_si128((__m128i *)tab, _mm_sign_epi8(_mm_shuffle_epi8(w, rev), neg));
	}
}

/* ---- helpers ---- */

AVX2 void gemv_h2f_row_avx2(const uint16_t *h, float *f, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
	for (; i < n; i++)
		f[i] = _cvtsh_ss(h[i]);
}

AVX2 double gemv_sum_avx2(const float *buf, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_add_ps(s0, _mm256_loadu_ps(buf + i));
		s1 = _mm256_add_ps(s1, _mm256_loadu_ps(buf + i + 8));
		s2 = _mm256_add_ps(s2, _mm256_loadu_ps(buf + i + 16));
		s3 = _mm256_add_ps(s3, _mm256_loadu_ps(buf + i + 24));
	}
	double t = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		t += buf[i];
	return t;
}
