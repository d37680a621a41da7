/*
 * gemv: matrix-vector kernels y = W·x for low-bit and dense weights, the
 * measured compute side of lifsim's cost model.
 *
 * A struct gemv_qmat holds W (d_out, d_in) in one storage format:
 *   - bits 1..4: groups of `group` (32 or 64) consecutive weights of a row
 *     share an fp16 scale s and an fp16 centre z; a weight is the b-bit code
 *     q in [0, 2^b - 1] and stands for  w = s·(q - c) + z,  c = (2^b - 1)/2
 *     (an asymmetric min/max quantizer written around its centre). The
 *     matrix is packed twice, offline: row-major blocks for the dequantize
 *     kernel, bit-serial permuted planes for the LUT kernel;
 *   - bits 32 / 16: a dense fp32 / fp16 copy for the OpenBLAS reference.
 *
 * Kernels (enum gemv_kernel):
 *   GEMV_DEQUANT  the baseline, as llama.cpp's Q4_1 x Q8_1 dot products do
 *                 it: x is quantized to int8 per block of 32 once per call,
 *                 codes are unpacked to bytes, multiplied with maddubs and
 *                 summed in int32, then FMA'd with the block scales.
 *                 Result: exactly ŵ·x̂ with x̂ the int8-rounded x.
 *   GEMV_LUT      T-MAC (arXiv 2407.00088): for every 4 activations a
 *                 16-entry table of all signed sums ±x0±x1±x2±x3, built once
 *                 per call (half by mirror symmetry), quantized to int8 with
 *                 one scale per weight group; bit-plane nibbles index it with
 *                 byte shuffles. The weights are permuted offline so a tile
 *                 of 32 rows streams contiguously and each pair of tables is
 *                 loaded into registers once for all bit planes (layout in
 *                 models/gemv/gemv_impl.h). int16 partials are flushed to fp32 after
 *                 every group (at most (2^b-1)·(group/4)·127 <= 30480, so they
 *                 cannot overflow).
 *   GEMV_DENSE    cblas_sgemv on fp32 rows, or on fp16 rows converted to
 *                 fp32 one L2-sized block at a time.
 * Error against ŵ·x (ŵ the dequantized weights) is bounded per row by
 * gemv_error_bound (derivation there); dense kernels are exact up to fp32
 * rounding.
 *
 * Threads split the output rows: chunks of rows handed out dynamically to
 * exactly `threads` OpenMP workers (no environment or globals read). The
 * dense kernel sets OpenBLAS's process-wide thread count to 1, because it
 * splits rows itself.
 * `force_scalar` selects the portable C path even where AVX2+FMA+F16C is
 * present; otherwise that path is picked at run time. Both paths do the same
 * integer arithmetic and agree up to fp32 summation order.
 * Objects are immutable after gemv_quantize: concurrent gemv_run calls on one
 * qmat are safe.
 */
#ifndef LIFSIM_GEMV_H
#define LIFSIM_GEMV_H

#include <stddef.h>
#include <stdint.h>

#include "sim/base/err.h"

enum gemv_kernel { GEMV_DEQUANT, GEMV_LUT, GEMV_DENSE };

struct gemv_qmat;

/* Quantize (bits 1..4, group 32 or 64) or copy (bits 32 or 16, group
 * ignored) w (d_out, d_in), row-major. Any d_out, d_in >= 1. Returns a new
 * matrix, or NULL with err filled (bad shape, bits, group, non-finite w, no
 * memory). w is not retained. */
struct gemv_qmat *gemv_quantize(const float *w /* (d_out, d_in) */, int d_out, int d_in,
				int bits, int group, struct lif_err *err);
void gemv_qmat_free(struct gemv_qmat *q);

int gemv_qmat_bits(const struct gemv_qmat *q);
int gemv_qmat_group(const struct gemv_qmat *q);
int gemv_qmat_d_out(const struct gemv_qmat *q);
int gemv_qmat_d_in(const struct gemv_qmat *q);

/* Bytes of weights one kernel reads per call: codes plus fp16 scales and
 * centres (or the dense array). Padding of the packed layouts is not
 * counted. This is what a neuron costs on flash and in DRAM. */
int64_t gemv_qmat_bytes(const struct gemv_qmat *q);

/* The same count for a shape and format without building the matrix (what
 * the simulator sizes bundles with); -1 for an unsupported bits / group. */
int64_t gemv_bytes(int d_out, int d_in, int bits, int group);

/* Write the weights the kernels multiply by, ŵ (d_out, d_in) as fp32. */
int gemv_qmat_dequantize(const struct gemv_qmat *q, float *w_hat /* (d_out, d_in) */,
			 struct lif_err *err);

/* y = W·x with kernel k. GEMV_DEQUANT and GEMV_LUT need bits 1..4,
 * GEMV_DENSE needs bits 32 or 16. threads >= 1. Returns 0, ERR_INVAL (kernel
 * and format do not match, threads < 1) or ERR_NOMEM (per-call workspace). */
int gemv_run(enum gemv_kernel k, const struct gemv_qmat *q, const float *x /* (d_in) */,
	     float *y /* (d_out) */, int threads, int force_scalar, struct lif_err *err);

/* Per-row bound on |y_k - ŵ·x| from the kernel's activation or table
 * quantization, excluding fp32 rounding (which the caller adds):
 *   GEMV_DEQUANT: x̂ = d·round(x/d), d = max|x_block|/127 per block of 32,
 *     so |ŵ·x̂ - ŵ·x| <= sum_i |ŵ_i|·d_blk(i)/2;
 *   GEMV_LUT: table entries of group g are off by at most a_g/2,
 *     a_g = max over the group's quads of (|x0|+|x1|+|x2|+|x3|)/127; a row
 *     adds s/2 · sum_j 2^j · (group/4) entries per group, so
 *     |err| <= sum_g s_g·(2^b - 1)·group·a_g/16;
 *   GEMV_DENSE: 0. */
int gemv_error_bound(enum gemv_kernel k, const struct gemv_qmat *q, const float *x /* (d_in) */,
		     float *bound /* (d_out) */, struct lif_err *err);

/* 1 when the AVX2+FMA+F16C path can run on this CPU. */
int gemv_have_avx2(void);

/* Sum n floats with `threads` workers, streaming: the bandwidth probe the
 * benchmark times (the caller owns the clock). */
double gemv_stream_sum(const float *buf, size_t n, int threads, int force_scalar);

/* Kernel name ("dequant", "lut", "dense") and lookup by name (-1 if none). */
const char *gemv_kernel_name(enum gemv_kernel k);
int gemv_kernel_by_name(const char *name);

#endif
