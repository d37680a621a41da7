/*
 * dram: the cost of the memory manager's work per token.
 *
 * The simulator counts what the paper's preallocated per-layer matrix does
 * (see ARCHITECTURE.md, "The cost model"): bytes moved by row copies
 * (a delete copies the last used row into the hole), the number of
 * operations (inserts and deletes, each with fixed bookkeeping: pointer,
 * bias, num_used, last_k_active), and for a GPU backend the bytes sent from
 * host to GPU. This module turns those counts into time:
 *
 *   t = bytes_copied / copy_bytes_per_s + ops * per_op_ns
 *       + h2d_bytes / h2d_bytes_per_s            (GPU backend only)
 *
 * A CPU backend has h2d_bytes_per_s = 0 and its h2d bytes cost nothing.
 *
 * When the rows are stored on flash in one dtype and held (computed) in
 * another (fp16 on flash, fp32 in DRAM: the paper's CPU runs), placing each
 * loaded row converts it: convert_bytes_per_s is the rate of that
 * conversion in bytes of the stored rows per second (issue 14; measured by
 * `lifsim calibrate --compute`, fp16 -> fp32 with the replay's own
 * conversion, sim/real/replay.h). The conversion then costs
 *   loaded_rows * stored_bundle_bytes / convert_bytes_per_s
 * (dram_convert_ns), part of the memory manager's work. 0 (the default)
 * means no measured rate: nothing is charged, as when stored = held dtype
 * (the rows are read into their slots as they are).
 *
 * A GPU backend also has a VRAM capacity, vram_bytes: the memory the GPU
 * computes from. What lives there (sim/core/sim.h, struct sim_result's vram_*
 * fields) is what DRAM holds on a CPU backend (embeddings and head,
 * attention, predictors, the pinned FFN part, the preallocated matrix of
 * loaded rows) plus the KV cache, plus, in the naive row, the weights moved
 * in for the token; a point that needs more is refused. Host DRAM is the
 * staging path (flash -> host -> GPU): what moves each token is charged at
 * h2d_bytes_per_s.
 */
#ifndef LIFSIM_DRAM_H
#define LIFSIM_DRAM_H

#include <stdint.h>

#include "sim/base/err.h"

/* DRAM-side costs of a device: a plain value. */
struct dram_model {
	double copy_bytes_per_s; /* > 0: memcpy bandwidth for row copies */
	double per_op_ns;        /* >= 0: bookkeeping per insert or delete */
	double h2d_bytes_per_s;  /* host-to-GPU bandwidth; 0 = CPU backend */
	int64_t vram_bytes;      /* GPU memory capacity; required (> 0) with a GPU backend,
				  * 0 on a CPU backend */
	double convert_bytes_per_s; /* >= 0: stored-to-held dtype conversion of loaded
				     * rows, bytes of the stored rows per second; 0 = none */
};

/* Check the fields; on failure err reads "[dram] KEY: problem" and *key is
 * the offending INI key. */
int dram_check(const struct dram_model *m, const char **key, struct lif_err *err);

/* Time in ns of the memory manager's work (counts as described above; a
 * negative count is treated as 0). */
double dram_time_ns(const struct dram_model *m, double bytes_copied, double ops, double h2d_bytes);

/* Time in ns of converting stored_bytes of loaded rows to the held dtype
 * (0 when the dtypes agree, the rate is 0 or stored_bytes <= 0). */
double dram_convert_ns(const struct dram_model *m, double stored_bytes, int converts);

/* 1 when the device has a GPU backend (h2d_bytes_per_s > 0). */
int dram_is_gpu(const struct dram_model *m);

#endif
