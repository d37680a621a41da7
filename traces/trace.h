/*
 * trace: the lifsim activation trace, HDF5 schema "lifsim-trace" v2 (reads v1).
 *
 * traces/FORMAT.md is the normative description; this module is its only
 * reader and writer. A trace holds, for every (token, layer), the set of FFN
 * neurons that were active, bit-packed; optionally a quantized near-threshold
 * band of the pre-activation ("band", what a modeled predictor errs on)
 * and the FFN inputs (what a low-rank predictor is trained on).
 *
 * Writing: trace_writer_open() creates the file under a temporary name
 * ("PATH.tmp") unless TRACE_WRITE_STREAMING is given; tokens are appended one
 * at a time; trace_writer_close() flushes and renames, so a failed write never
 * leaves a half-written PATH. In streaming mode (the recorder) PATH itself is
 * written and flushed every `flush_every` tokens with the `tokens` attribute
 * updated, so an interrupted run leaves a valid, shorter trace.
 *
 * Reading: trace_load() opens, validates (schema, version, shapes, bounds,
 * agreement of attributes and dataset extents) and loads the whole trace into
 * memory, layer-major, which is what every consumer (stats, the simulator)
 * iterates over. Any failure is a clear message naming the file.
 */
#ifndef LIFSIM_TRACE_H
#define LIFSIM_TRACE_H

#include <stdint.h>
#include <stdio.h>

#include "sim/base/err.h"

#define TRACE_SCHEMA "lifsim-trace"
/* Version 2 added router traces (traces/router.h): the router datasets and
 * attributes, `active` absent in a router-only trace. Readers take 1..2.
 * Traces this lifsim writes carry HDF5's Fletcher32 checksum on every dataset
 * in HDF5's 1.10 format (checksummed metadata); readers verify any checksum
 * present. */
#define TRACE_SCHEMA_VERSION 2
#define TRACE_SCHEMA_VERSION_ROUTER 2
#define TRACE_SCHEMA_VERSION_MIN 1
#define TRACE_MAX_LAYERS 256
#define TRACE_MAX_DFFN (1 << 22)
#define TRACE_MAX_DMODEL (1 << 20)
#define TRACE_MAX_TOKENS ((int64_t)1 << 32)

enum trace_source { TRACE_SOURCE_SYNTHETIC = 0, TRACE_SOURCE_RECORDED = 1 };

/* Which optional datasets a trace carries. */
enum trace_has { TRACE_HAS_MAGNITUDES = 1, TRACE_HAS_INPUTS = 2 };

enum trace_write_flags { TRACE_WRITE_STREAMING = 1 };

/* Root attributes of a trace: a plain value. */
struct trace_meta {
	char model[64];        /* model name (models/llms/NAME.ini for synthetic) */
	int layers;
	int d_ffn;             /* neurons per layer */
	int d_model;           /* width of an ffn_inputs row; 0 when no inputs */
	int64_t tokens;        /* set by the reader and by the writer as it appends */
	int source;            /* enum trace_source */
	char generator[2048];  /* synthetic: "key=value ..." of every generator parameter;
				  recorded: model path and recorder settings */
	uint64_t seed;         /* generator seed (0 for recorded traces) */
	double threshold;      /* "active" means activation > threshold */
	int has;               /* enum trace_has bits */
	int read_threads;      /* reader: threads that decompress (not stored) */
	double mag_margin[TRACE_MAX_LAYERS]; /* per layer: the band half-width, in the
						pre-activation's units (see FORMAT.md) */
};

/* The near-threshold band. Producers describe a neuron's pre-activation z,
 * measured from the threshold (z > 0 is active), with a per-layer band
 * half-width `margin`, by a byte code (trace_mag_encode):
 *   0                                   z <= -margin (far below threshold)
 *   1 + floor(127 (z + margin) / margin) in 1..127   for -margin < z <= 0
 *   128 + floor(128 z / margin), max 255 in 128..255 for z > 0
 * The file stores it compactly as a 2-bit closeness level per neuron
 * (trace_level_of_code): 3 = |z| < margin/3, 2 = |z| < 2 margin/3,
 * 1 = |z| < margin, 0 = outside the band; together with the active bit this
 * says on which side of the threshold and how near. Levels are packed as two
 * bit planes per row: plane 0 holds bit 0 of the level, plane 1 bit 1. */
#define TRACE_MAG_ZERO 128
uint8_t trace_mag_encode(double z, double margin);
double trace_mag_decode(uint8_t q, double margin); /* centre of a code's interval */
int trace_level_of_code(uint8_t q);
static inline int trace_level_of_z(float z, float margin)
{
	float a = z < 0 ? -z : z;
	return (a < margin) + (a < margin * (2.0f / 3)) + (a < margin * (1.0f / 3));
}

/* Bytes in one packed active-set row: ceil(d_ffn / 8). */
static inline int trace_row_bytes(int d_ffn) { return (d_ffn + 7) / 8; }
static inline int trace_bit(const uint8_t *row, int i) { return (row[i >> 3] >> (i & 7)) & 1; }
static inline void trace_set_bit(uint8_t *row, int i) { row[i >> 3] |= (uint8_t)(1u << (i & 7)); }
/* Band level (0..3) of neuron i in a band row of two planes of rb bytes. */
static inline int trace_band_level(const uint8_t *band, int rb, int i)
{
	return trace_bit(band, i) | trace_bit(band + rb, i) << 1;
}

/* ---- writer ---- */
struct trace_writer;

/* Create a trace. meta->tokens is ignored; meta->has says which optional
 * datasets will be given to every append. */
struct trace_writer *trace_writer_open(const char *path, const struct trace_meta *meta,
				       int flags, struct lif_err *err);

/* Set a free-text root attribute (e.g. "prompt", "generated_text",
 * "model_config"). Call before close. */
int trace_writer_set_text(struct trace_writer *w, const char *name, const char *value,
			  struct lif_err *err);

/* Append one token.
 *   bits:   (layers, row_bytes) packed active sets, bit i of row l = neuron i active
 *   mags:   (layers, d_ffn) codes from trace_mag_encode, or NULL when
 *           TRACE_HAS_MAGNITUDES is unset (stored as band levels)
 *   inputs: (layers, d_model) FFN inputs, or NULL when TRACE_HAS_INPUTS is unset */
int trace_writer_append(struct trace_writer *w, int32_t token_id, const uint8_t *bits,
			const uint8_t *mags, const float *inputs, struct lif_err *err);

/* Threads used to compress whole chunks in trace_writer_append_many. */
void trace_writer_set_threads(struct trace_writer *w, int threads);

/* Append n tokens at once, already packed (generators):
 *   bits: (n, layers, row_bytes); band: (n, layers, 2 * row_bytes) or NULL;
 *   inputs: (n, layers, d_model) or NULL. */
int trace_writer_append_many(struct trace_writer *w, int64_t n, const int32_t *token_ids,
			     const uint8_t *bits, const uint8_t *band, const float *inputs,
			     struct lif_err *err);

/* Finish: flush, close and (non-streaming) rename into place. Frees w even on
 * error. */
int trace_writer_close(struct trace_writer *w, struct lif_err *err);

/* Tokens in the file at its last successful flush (streaming mode): what a
 * reader finds after a failed write. */
int64_t trace_writer_flushed(const struct trace_writer *w);

/* Discard: close and remove the temporary file. Accepts NULL. */
void trace_writer_abort(struct trace_writer *w);

/* ---- reader ---- */

/* A whole trace in memory, layer-major. */
struct trace {
	struct trace_meta meta;
	int row_bytes;
	int32_t *token_ids; /* (tokens) */
	uint8_t *bits;      /* (layers, tokens, row_bytes) */
	uint8_t *band;      /* (layers, tokens, 2 * row_bytes) band level planes, or NULL */
	float *inputs;      /* (layers, tokens, d_model) or NULL */
	int64_t first_token; /* a block's view (sim/core/sim.c): its first token's index in
				the whole trace; 0 for a whole trace */
};

enum trace_load_flags {
	TRACE_LOAD_MAGNITUDES = 1, /* load the band if present */
	TRACE_LOAD_INPUTS = 2      /* load FFN inputs if present */
};

/* Validate and load. Returns NULL with err set on any problem. */
struct trace *trace_load(const char *path, int flags, struct lif_err *err);

/* The same, decompressing on `threads` threads. */
struct trace *trace_load_threads(const char *path, int flags, int threads, struct lif_err *err);

/* Validate only: schema, version, shapes, bounds, and every chunk readable. */
int trace_validate(const char *path, struct trace_meta *meta_out, struct lif_err *err);

void trace_free(struct trace *t);

static inline const uint8_t *trace_active(const struct trace *t, int layer, int64_t token)
{
	return t->bits + ((size_t)layer * t->meta.tokens + token) * t->row_bytes;
}

static inline const uint8_t *trace_band_row(const struct trace *t, int layer, int64_t token)
{
	return t->band + ((size_t)layer * t->meta.tokens + token) * 2 * t->row_bytes;
}

/* malloc for a trace's bits or band (free()d as any): large buffers ask
 * for huge pages, as trace_load's do. */
void *trace_alloc(size_t n);

/* ---- block reader: a trace read a block of tokens at a time ---- */

/* The file stays open; every block read is checked as trace_load checks the
 * whole (chunk checksums, padding bits); the token ids are checked at open.
 * Reads are serialized (one at a time, any thread). */
struct trace_reader;

/* Open and validate path's metadata and datasets; flags: TRACE_LOAD_MAGNITUDES
 * to read the band too (inputs are never read); threads decompress a block. */
struct trace_reader *trace_reader_open(const char *path, int flags, int threads,
				       struct lif_err *err);
void trace_reader_close(struct trace_reader *r);

/* The trace's metadata as a trace without data (bits, band, inputs NULL;
 * meta.has says whether the band is read). */
const struct trace *trace_reader_meta(const struct trace_reader *r);

/* Tokens [t0, t0 + n) of every layer, layer-major: bits (layers, n,
 * row_bytes); band (layers, n, 2 row_bytes) or NULL. */
int trace_reader_read(struct trace_reader *r, int64_t t0, int64_t n, uint8_t *bits,
		      uint8_t *band, struct lif_err *err);

/* Read the free-text attribute `name` into buf (empty if absent). */
int trace_read_text(const char *path, const char *name, char *buf, size_t cap,
		    struct lif_err *err);

/* Turn off HDF5's automatic error printing (call once at start). */
void trace_init(void);

#endif
