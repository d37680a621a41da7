/*
 * gemv_impl: what models/gemv/gemv.c (formats, quantizer, dispatch, portable
 * kernels) and models/gemv/gemv_avx2.c (AVX2 kernels) share. Not a public header:
 * only the gemv module includes it.
 *
 * Packed layouts (b = bits, G = group, c = (2^b - 1)/2):
 *   dq_codes  (d_out, n_groups, G/32, 4b bytes): per block of 32 codes q_0..31
 *     b=4: byte k = q_k | q_{k+16} << 4                      (16 bytes)
 *     b=2: byte k = sum_t q_{k+8t} << 2t, k < 8               (8 bytes)
 *     b=1: bit i of the little-endian u32 = q_i               (4 bytes)
 *     b=3: the b=2 block of q & 3, then the b=1 block of q >> 2 (12 bytes)
 *   dq_sz     (d_out, n_groups, 2) fp16: s, z
 *   lut_codes (n_tiles, n_groups, G/8, b, 32 bytes): for a tile of 32 rows,
 *     a group and a pair p of quads (weights 8p..8p+3 and 8p+4..8p+7 of the
 *     group), b vectors of 32 bytes; byte k of vector v holds
 *     idx(row, quad 2p) | idx(row, quad 2p+1) << 4 for bit plane j, with
 *     idx = sum_u bit_j(q_{4·quad+u}) << u and (row, j) = gemv_lut_slot(b, v,
 *     k): planes go in pairs (vectors 2i, 2i+1 hold planes 2i and 2i+1 of
 *     rows 0-15 and 16-31, alternating bytes), so one maddubs weights and
 *     widens them; an odd last plane holds 32 rows in the order that
 *     unpacklo/unpackhi restore to rows 0-15 and 16-31. One 32-byte load
 *     feeds two shuffles; the pair's two tables stay in registers over all
 *     vectors.
 *   lut_sz    (n_tiles, n_groups, 2, 32) fp16: s of the 32 rows, then z.
 *   Rows past d_out (tile padding) and columns past d_in (group padding)
 *   hold code 0 with s = z = 0 and x = 0, so they add nothing.
 */
#ifndef LIFSIM_GEMV_IMPL_H
#define LIFSIM_GEMV_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "models/gemv/gemv.h"

#define GEMV_TILE 32   /* LUT kernel rows per tile */
#define GEMV_BLOCK 32  /* dequant block (activation quantization too) */

struct gemv_qmat {
	int d_out, d_in, bits, group;
	int n_groups;          /* ceil(d_in / group) */
	int d_in_pad;          /* n_groups * group */
	int n_tiles;           /* ceil(d_out / GEMV_TILE) */
	uint8_t *dq_codes;     /* see above */
	uint16_t *dq_sz;       /* (d_out, n_groups, 2) */
	uint8_t *lut_codes;    /* see above */
	uint16_t *lut_sz;      /* (n_tiles, n_groups, 2, 32) */
	float *w32;            /* (d_out, d_in), bits 32 */
	uint16_t *w16;         /* (d_out, d_in), bits 16 */
};

/* Per-call activation side of the dequant kernel. */
struct gemv_dq_act {
	const int8_t *qx;      /* (d_in_pad) x / d rounded */
	const float *d;        /* (d_in_pad / 32) block scales */
	const float *dsum;     /* (d_in_pad / 32) d · sum(qx) */
};

/* Per-call activation side of the LUT kernel. */
struct gemv_lut_act {
	const int8_t *tab;     /* (d_in_pad / 4, 16) quantized signed sums */
	const float *half_a;   /* (n_groups) table scale / 2 */
	const float *xsum;     /* (n_groups) sum of x over the group */
};

float gemv_h2f(uint16_t h);
/* Row in the tile and bit plane of byte k of LUT vector v (layout above). */
void gemv_lut_slot(int bits, int v, int k, int *row, int *plane);
uint16_t gemv_f2h(float f);

/* Rows [r0, r1) of the dequant kernel / tiles [t0, t1) of the LUT kernel. */
void gemv_dq_rows_scalar(const struct gemv_qmat *q, const struct gemv_dq_act *a, float *y,
			 int r0, int r1);
void gemv_dq_rows_avx2(const struct gemv_qmat *q, const struct gemv_dq_act *a, float *y,
		       int r0, int r1);
void gemv_lut_tiles_scalar(const struct gemv_qmat *q, const struct gemv_lut_act *a, float *y,
			   int t0, int t1);
void gemv_lut_tiles_avx2(const struct gemv_qmat *q, const struct gemv_lut_act *a, float *y,
			 int t0, int t1);
void gemv_dq_prep_avx2(const float *x, int8_t *qx, float *d, float *dsum, int b0, int b1);
void gemv_lut_tables_avx2(const float *v, int n, float ia, int8_t *tab);
void gemv_h2f_row_avx2(const uint16_t *h, float *f, size_t n);
double gemv_sum_avx2(const float *buf, size_t n);

#endif
