/*
 * safetensors: read-only access to a Hugging Face checkpoint's tensors.
 *
 * Format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON {"name": {"dtype": "F16", "shape": [..],
 * "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data; offsets
 * are relative to the end of the header. A checkpoint directory holds either
 * one model.safetensors or shards listed in model.safetensors.index.json
 * ({"weight_map": {"tensor name": "shard file"}}).
 *
 * st_open() mmaps every file read-only (populated: it reads the files) and validates each header: its length
 * against the file size, the JSON, every dtype (F32, F16, BF16 are supported;
 * others are rejected when a tensor of that dtype is read), every shape, and
 * that each tensor's byte range matches its shape and lies inside the file.
 * Errors name the file and the tensor or key.
 */
#ifndef LIFSIM_SAFETENSORS_H
#define LIFSIM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "sim/base/err.h"

#define ST_MAX_DIMS 8

enum st_dtype { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2, ST_OTHER = 3 };

/* One tensor as described by its header; data points into the mmap. */
struct st_tensor {
	const char *name;
	int dtype;           /* enum st_dtype */
	char dtype_name[16]; /* as written in the header */
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	int64_t numel;
	const void *data;    /* borrowed; valid until st_close */
	const char *file;    /* shard it lives in */
};

struct st_file;

/* Open a checkpoint directory (model.safetensors.index.json if present,
 * else every *.safetensors in it). NULL with err set on failure. */
struct st_file *st_open(const char *dir, struct lif_err *err);
void st_close(struct st_file *st);

/* Look a tensor up by name; NULL if absent. */
const struct st_tensor *st_find(const struct st_file *st, const char *name);

/* Elements of all tensors across the checkpoint. */
int64_t st_numel(const struct st_file *st);

/* Total bytes of tensor data across the checkpoint. */
int64_t st_data_bytes(const struct st_file *st);

/* Tensor `name` after checking it exists, has a supported dtype and exactly
 * the given shape (ndim dims in `shape`); NULL with an error naming the
 * tensor otherwise. Its data stay in the mmap. */
const struct st_tensor *st_get(const struct st_file *st, const char *name, int ndim,
			       const int64_t *shape, struct lif_err *err);

/* Convert tensor `name` to float32 into a new buffer (caller frees), after
 * checking it exists, has a supported dtype and exactly the given shape
 * (ndim dims in `shape`). Errors name the tensor. */
float *st_load_f32(const struct st_file *st, const char *name, int ndim, const int64_t *shape,
		   struct lif_err *err);

/* Drop t's pages from this process's mapping once its data have been copied
 * (the page cache keeps them, reclaimable); t->data must not be read after,
 * except that a read faults the pages in again. */
void st_release(const struct st_tensor *t);

/* Half-precision conversions (exposed for tests). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);

/* A whole text file (config.json, an index) as a NUL-terminated string the
 * caller frees; refuses files over max_bytes. NULL with err set on failure. */
char *st_read_text(const char *path, size_t max_bytes, struct lif_err *err);

#endif
