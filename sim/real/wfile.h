/*
 * wfile: the weight file of the real path, schema "lifsim-weights"
 * version 2 (1 still reads): a model's FFN weights on disk in one layout (sim/core/layout.h),
 * what `lifsim layout` writes and `replay` reads.
 *
 * On disk (little-endian; every region starts on a 4 KiB boundary so
 * O_DIRECT reads of aligned layout extents stay aligned):
 *   [0, 4096)   header: magic "LIFSIMWF", version, layout, dims, dtype,
 *               seed, model name, and an index of regions (name, offset,
 *               bytes), closed by a checksum of the header itself and
 *               (version 2) a checksum of the pos, friend and sums tables
 *               with a second header checksum over it; the padding between
 *               regions is zero, so every byte of the file is checked;
 *   "ffn"       layers * layer_bytes: the layout's geometry byte for byte;
 *               layout_offset() offsets are relative to this region's start;
 *   "pos"       int32 (layers, d_ffn): each neuron's slot;
 *   "friend"    int32 (layers, d_ffn): friends layout only, the neuron
 *               stored beside each one;
 *   "sums"      uint64 (layers, regions, d_ffn): wfile_hash of every slot,
 *               so a reader can check what it read landed where it should.
 * A neuron's bytes for one FFN matrix (up column, gate column or down row,
 * d_model values) do not depend on the layout: synthetic weights are a pure
 * function of (seed, layer, matrix, neuron) (wfile_piece), finite values of
 * magnitude 2^-7 .. 1 in the stored dtype; `lifsim layout --checkpoint`
 * copies a safetensors checkpoint's instead (wfile_write_from). A bundle (a matrix row in DRAM)
 * is the concatenation of the neuron's pieces in matrix order (up, gate,
 * down for gated FFNs: up, down otherwise); a slot holds one piece
 * (separate), one bundle (rowcol, hot, coact) or the bundle of the slot's
 * neuron followed by its friend's (friends).
 *
 * Version 3 (wfile_write_moe; dense files stay version 2) holds the routed
 * experts of a mixture-of-experts model (sim/core/moe.h): the header gains
 * experts, expert_layout, d_expert, expert_bytes, expert_matrix_bytes and a
 * third checksum over them (zero in older headers); layers counts MoE layers
 * (the dense layers, shared experts and attention are resident, not stored),
 * d_ffn = d_expert, regions = ffn_matrices, piece_bytes =
 * expert_matrix_bytes, slot_bytes = expert_bytes, layer_bytes = experts x
 * expert_bytes (moe_region_bytes). Regions:
 *   "experts"   layers * layer_bytes: layer l's region holds expert e's
 *               matrix k (gate, up, down; or up, down) at
 *               moe_matrix_offset(m, expert_layout, slot[l][e], k) from the
 *               region's start: the byte offsets the simulator costs;
 *   "slot"      int32 (layers, experts): each expert's slot (cosel: the
 *               router trace's co-selection chain; expert, matrix: its id);
 *   "sums"      uint64 (layers, experts x ffn_matrices): wfile_hash of each
 *               expert_matrix_bytes piece in region order (pieces tile a
 *               region in every expert layout).
 * An expert matrix's bytes are wfile_piece(seed, l, k, e) whatever the
 * layout.
 *
 * Writing is atomic (PATH.tmp, fsync, rename) after a free-space check;
 * on failure nothing is left behind.
 */
#ifndef LIFSIM_WFILE_H
#define LIFSIM_WFILE_H

#include <stddef.h>
#include <stdint.h>

#include "models/llm.h"
#include "sim/base/err.h"
#include "sim/core/layout.h"

#define WFILE_MAGIC "LIFSIMWF"
#define WFILE_VERSION 2 /* 2: the tables and the padding are checked too; 1 still reads */
#define WFILE_VERSION_MOE 3 /* MoE expert files */
#define WFILE_ALIGN 4096
#define WFILE_SPARE_BYTES (256LL << 20) /* free space kept on the disk */

struct wfile_region {
	char name[16];
	int64_t offset, bytes;
};

/* What a weight file holds (the header, decoded). */
struct wfile_info {
	int version;
	int layout;          /* enum layout_kind */
	int bundle, layers, d_model, d_ffn, ffn_matrices, dtype, regions;
	int64_t piece_bytes, slot_bytes, layer_bytes;
	uint64_t seed;
	char model[64];
	int nindex;
	struct wfile_region index[4]; /* ffn, pos, friend (friends only), sums */
	int64_t ffn_offset;  /* = index "ffn" (MoE: "experts") offset */
	int64_t file_bytes;  /* expected file size */
	int experts;         /* MoE (version 3): experts per layer; 0: a dense file */
	int expert_layout, d_expert; /* MoE: enum moe_layout */
	int64_t expert_bytes, expert_matrix_bytes;
};

struct wfile;

/* Where a writer's weights come from: piece(src_ctx, layer, matrix,
 * neuron, out, bytes) fills one neuron's piece of one matrix (0 up, 1 gate
 * for gated FFNs, last down) in the model's dtype; called concurrently. */
struct wfile_source {
	void (*piece)(void *src_ctx, int layer, int matrix, int neuron, void *out, int64_t bytes);
	void *src_ctx;
};

/* Write the FFN of model m in layout l with synthetic weights of `seed` to
 * path (atomically; threads generate in parallel). progress (may be NULL) is
 * called after each layer. */
int wfile_write(const char *path, const struct llm_desc *m, const struct layout *l,
		uint64_t seed, int threads, void (*progress)(void *ctx, int done, int total),
		void *ctx, struct lif_err *err);

/* The same with the weights of src (seed is recorded in the header only). */
int wfile_write_from(const char *path, const struct llm_desc *m, const struct layout *l,
		     const struct wfile_source *src, uint64_t seed, int threads,
		     void (*progress)(void *ctx, int done, int total), void *ctx,
		     struct lif_err *err);

/* Open and check a weight file: magic, version, header checksum, size, the
 * tables. Reads the tables; the FFN stays on disk. */
struct wfile *wfile_open(const char *path, struct lif_err *err);
void wfile_close(struct wfile *w);
const struct wfile_info *wfile_info(const struct wfile *w);
const char *wfile_path(const struct wfile *w);

/* Check the file was written for this geometry and neuron order (the
 * simulator's layout of the point): a mismatch would read wrong neurons. */
int wfile_match(const struct wfile *w, const struct layout *l, const struct llm_desc *m,
		struct lif_err *err);

/* Check the checksums of every slot wholly inside buf, which holds the
 * bytes [offset, offset + bytes) of the FFN region. The message names the
 * layer, region, slot and file offset of the first mismatch. */
int wfile_verify(const struct wfile *w, int64_t offset, const void *buf, int64_t bytes,
		 struct lif_err *err);

/* The synthetic piece of (layer, matrix, neuron): bytes (a multiple of 8)
 * of dtype values. */
void wfile_piece(uint64_t seed, int layer, int matrix, int neuron, int dtype, void *out,
		 int64_t bytes);

/* Write the routed experts of MoE model m (its moe_layers x experts) in
 * expert layout `layout` (enum moe_layout), expert e of MoE layer l in slot
 * slot[l * experts + e] (moe_layer_slots), synthetic weights of seed, to
 * path (atomically, after the free-space check): version 3. */
int wfile_write_moe(const char *path, const struct llm_desc *m, int layout, const int *slot,
		    uint64_t seed, void (*progress)(void *ctx, int done, int total), void *ctx,
		    struct lif_err *err);

/* Check an opened file is an MoE expert file for m (its MoE layers,
 * experts, expert sizes and dtype) in `layout` with the same slot table
 * (moe_plan.slot): a dense file, another model or scale, layout or expert
 * order is an error naming the file. */
int wfile_moe_match(const struct wfile *w, const struct llm_desc *m, int layout, const int *slot,
		    struct lif_err *err);

/* Check the checksums of every expert piece wholly inside buf, the bytes
 * [offset, offset + bytes) of MoE layer `layer`'s region. */
int wfile_moe_verify(const struct wfile *w, int layer, int64_t offset, const void *buf,
		     int64_t bytes, struct lif_err *err);

/* MoE: the slot table, (layers, experts). */
const int32_t *wfile_moe_slots(const struct wfile *w);

/* 64-bit hash of bytes (a multiple of 8). */
uint64_t wfile_hash(const void *p, size_t bytes);

/* Free bytes for an unprivileged writer on the file system of path's
 * directory, or -1 with err set. */
int64_t wfile_free_bytes(const char *path, struct lif_err *err);

/* Refuse to write need bytes to path when free_bytes (wfile_free_bytes)
 * minus WFILE_SPARE_BYTES is less: "PATH: needs N GB, the disk has M GB
 * free". */
int wfile_check_room(const char *path, int64_t need, int64_t free_bytes, struct lif_err *err);

/* Write `bytes` of seeded pseudo-random data to path atomically, after
 * wfile_check_room (for calibration files: real data, never a hole). */
int wfile_write_random(const char *path, int64_t bytes, uint64_t seed, struct lif_err *err);

#endif
