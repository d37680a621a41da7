#include "traces/trace.h"

#include "traces/h5attr.h"

#include "sim/base/claim.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <sys/mman.h>

#ifdef HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#define CHUNK_TOKENS_BITS 64
#define CHUNK_TOKENS_BAND 64
#define CHUNK_TOKENS_INPUTS 16
#define DEFLATE_LEVEL 1
/* Streaming (the recorder): flushed every FLUSH_TOKENS tokens, in chunks of
 * as many tokens, so a flush writes new chunks and never rewrites one an
 * earlier flush wrote: a write failing in a flush leaves the previous one's
 * trace whole (with metadata written only at flushes, h5attr_create) */
#define FLUSH_TOKENS 16
#define READ_BATCH ((hsize_t)64 << 20) /* stored chunk bytes read before inflating them */

void trace_init(void)
{
	/* no exit handler: it would close the files abandoned after a failed
	 * write, and libhdf5 1.10 crashes there (traces/h5attr.c) */
	H5dont_atexit();
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

uint8_t trace_mag_encode(double z, double margin)
{
	if (z > 0) {
		double q = 128 + floor(128.0 * z / margin);
		return (uint8_t)(q > 255 ? 255 : q);
	}
	if (!(z > -margin))
		return 0;
	double q = 1 + floor(127.0 * (z + margin) / margin);
	return (uint8_t)(q > 127 ? 127 : q < 1 ? 1 : q);
}

int trace_level_of_code(uint8_t q)
{
	if (q == 0 || q == 255)
		return 0;
	if (q >= TRACE_MAG_ZERO) /* z = (q - 128 + [0,1)) margin / 128 */
		return q < 171 ? 3 : q < 214 ? 2 : 1;
	return q > 85 ? 3 : q > 43 ? 2 : 1; /* z + margin = (q - 1 + [0,1)) margin / 127 */
}

double trace_mag_decode(uint8_t q, double margin)
{
	if (q == 0)
		return -margin;
	if (q >= TRACE_MAG_ZERO)
		return (q - 128 + 0.5) * margin / 128.0;
	return (q - 1 + 0.5) * margin / 127.0 - margin;
}

/* ---------------------------------------------------------------- writer */

struct trace_writer {
	char path[4096];
	char tmp[4100];
	int flags;
	struct trace_meta meta;
	int row_bytes;
	hid_t file;
	hid_t d_tokens, d_active, d_mags, d_inputs;
	int64_t since_flush;
	int64_t flushed;    /* tokens in the file at its last successful flush */
	int failed;         /* a write failed: nothing more is written */
	int threads;
};

/* What each dataset holds, as attributes on it (traces/FORMAT.md). */
static const struct {
	const char *name, *description, *axes, *encoding;
} ds_docs[] = {
	{"tokens", "token id of each generated token (0 for synthetic traces)", "token", "int32"},
	{"active", "active FFN neurons of each token and layer", "token, layer, neuron byte",
	 "bit-packed, LSB first: bit i % 8 of byte i / 8 is neuron i "
	 "(numpy.unpackbits(x, axis=-1, bitorder='little')[..., :d_ffn])"},
	{"band", "near-threshold band of each neuron: two bit planes (level bit 0, bit 1), "
		 "level 3 nearest (traces/FORMAT.md, The band)",
	 "token, layer, plane * neuron byte", "bit-packed like active, plane 0 then plane 1"},
	{"ffn_inputs", "the FFN input of each token and layer (what a predictor sees)",
	 "token, layer, d_model", "float32"},
};

static int describe_dataset(hid_t d, const char *name)
{
	int rc = 0;
	for (size_t i = 0; i < sizeof ds_docs / sizeof ds_docs[0]; i++)
		if (!strcmp(ds_docs[i].name, name)) {
			rc |= h5attr_put_str(d, "description", ds_docs[i].description);
			rc |= h5attr_put_str(d, "axes", ds_docs[i].axes);
			rc |= h5attr_put_str(d, "encoding", ds_docs[i].encoding);
		}
	return rc;
}

static hid_t make_dataset(hid_t file, const char *name, hid_t type, int rank,
			  const hsize_t *inner, hsize_t chunk_tokens, int compress, int shuffle,
			  size_t elem_bytes)
{
	hsize_t dims[3] = {0}, maxd[3] = {H5S_UNLIMITED}, chunk[3] = {chunk_tokens};
	for (int i = 1; i < rank; i++) {
		dims[i] = maxd[i] = inner[i - 1];
		chunk[i] = i == 1 && rank == 3 ? 1 : inner[i - 1];
	}
	hid_t sp = H5Screate_simple(rank, dims, maxd);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_chunk(dcpl, rank, chunk);
	if (shuffle)
		H5Pset_shuffle(dcpl);
	if (compress)
		H5Pset_deflate(dcpl, DEFLATE_LEVEL);
	H5Pset_fletcher32(dcpl); /* schema v2: every chunk carries a checksum */
	/* a chunk per layer stays cached until it is full, so appends do not
	 * recompress partial chunks over and over */
	size_t chunk_bytes = elem_bytes;
	for (int i = 0; i < rank; i++)
		chunk_bytes *= chunk[i];
	size_t cache = chunk_bytes * (rank == 3 ? dims[1] : 1) * 2 + (1 << 20);
	hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
	H5Pset_chunk_cache(dapl, 12421, cache, 1.0);
	hid_t d = H5Dcreate2(file, name, type, sp, H5P_DEFAULT, dcpl, dapl);
	H5Pclose(dapl);
	H5Pclose(dcpl);
	H5Sclose(sp);
	if (d >= 0 && describe_dataset(d, name)) {
		H5Dclose(d);
		d = H5I_INVALID_HID;
	}
	return d;
}

static int write_root_attrs(struct trace_writer *w)
{
	const struct trace_meta *m = &w->meta;
	int v = TRACE_SCHEMA_VERSION, rc = 0;
	double thr = m->threshold;
	uint64_t seed = m->seed;
	int32_t dims[3] = {m->layers, m->d_ffn, m->d_model};
	rc |= h5attr_put_str(w->file, "schema", TRACE_SCHEMA);
	rc |= h5attr_put(w->file, "schema_version", H5T_NATIVE_INT, 0, &v);
	rc |= h5attr_put_str(w->file, "model", m->model);
	rc |= h5attr_put(w->file, "layers", H5T_NATIVE_INT32, 0, &dims[0]);
	rc |= h5attr_put(w->file, "d_ffn", H5T_NATIVE_INT32, 0, &dims[1]);
	rc |= h5attr_put(w->file, "d_model", H5T_NATIVE_INT32, 0, &dims[2]);
	rc |= h5attr_set_i64(w->file, "tokens", 0);
	rc |= h5attr_put_str(w->file, "source",
			     m->source == TRACE_SOURCE_RECORDED ? "recorded" : "synthetic");
	rc |= h5attr_put_str(w->file, "generator", m->generator);
	rc |= h5attr_put(w->file, "seed", H5T_NATIVE_UINT64, 0, &seed);
	rc |= h5attr_put(w->file, "threshold", H5T_NATIVE_DOUBLE, 0, &thr);
	if (m->has & TRACE_HAS_MAGNITUDES)
		rc |= h5attr_put(w->file, "band_margin", H5T_NATIVE_DOUBLE,
				 (hsize_t)m->layers, m->mag_margin);
	return rc;
}

static int check_meta(const struct trace_meta *m, const char *path, struct lif_err *err)
{
	if (m->layers < 1 || m->layers > TRACE_MAX_LAYERS)
		return err_set(err, ERR_INVAL, "%s: layers %d outside [1, %d]", path, m->layers,
			       TRACE_MAX_LAYERS);
	if (m->d_ffn < 1 || m->d_ffn > TRACE_MAX_DFFN)
		return err_set(err, ERR_INVAL, "%s: d_ffn %d outside [1, %d]", path, m->d_ffn,
			       TRACE_MAX_DFFN);
	if ((m->has & TRACE_HAS_INPUTS) && (m->d_model < 1 || m->d_model > TRACE_MAX_DMODEL))
		return err_set(err, ERR_INVAL, "%s: ffn inputs need d_model >= 1 (got %d)", path,
			       m->d_model);
	for (int l = 0; (m->has & TRACE_HAS_MAGNITUDES) && l < m->layers; l++)
		if (!(m->mag_margin[l] > 0) || !isfinite(m->mag_margin[l]))
			return err_set(err, ERR_INVAL, "%s: band_margin of layer %d must be > 0",
				       path, l);
	return 0;
}

struct trace_writer *trace_writer_open(const char *path, const struct trace_meta *meta,
				       int flags, struct lif_err *err)
{
	if (check_meta(meta, path, err))
		return NULL;
	struct trace_writer *w = calloc(1, sizeof *w);
	if (!w) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	snprintf(w->path, sizeof w->path, "%s", path);
	snprintf(w->tmp, sizeof w->tmp, (flags & TRACE_WRITE_STREAMING) ? "%s" : "%s.tmp", path);
	w->flags = flags;
	w->threads = 1;
	w->meta = *meta;
	w->meta.tokens = 0;
	w->row_bytes = trace_row_bytes(meta->d_ffn);
	w->d_tokens = w->d_active = w->d_mags = w->d_inputs = H5I_INVALID_HID;
	w->file = h5attr_create(w->tmp, flags & TRACE_WRITE_STREAMING);
	if (w->file < 0) {
		err_set(err, ERR_IO, "%s: cannot create trace file: %s", w->tmp, strerror(errno));
		free(w);
		return NULL;
	}
	hsize_t act[2] = {(hsize_t)meta->layers, (hsize_t)w->row_bytes};
	hsize_t mag[2] = {(hsize_t)meta->layers, 2 * (hsize_t)w->row_bytes};
	hsize_t inp[2] = {(hsize_t)meta->layers, (hsize_t)meta->d_model};
	int st = flags & TRACE_WRITE_STREAMING;
	w->d_tokens = make_dataset(w->file, "tokens", H5T_STD_I32LE, 1, NULL,
				   st ? FLUSH_TOKENS : 1024, 1, 0, 4);
	w->d_active = make_dataset(w->file, "active", H5T_STD_U8LE, 3, act,
				   st ? FLUSH_TOKENS : CHUNK_TOKENS_BITS, 1, 0, 1);
	if (meta->has & TRACE_HAS_MAGNITUDES)
		w->d_mags = make_dataset(w->file, "band", H5T_STD_U8LE, 3, mag,
					 st ? FLUSH_TOKENS : CHUNK_TOKENS_BAND, 1, 0, 1);
	if (meta->has & TRACE_HAS_INPUTS)
		w->d_inputs = make_dataset(w->file, "ffn_inputs", H5T_IEEE_F32LE, 3, inp,
					   st ? FLUSH_TOKENS : CHUNK_TOKENS_INPUTS, 1, 1, 4);
	if (w->d_tokens < 0 || w->d_active < 0 ||
	    ((meta->has & TRACE_HAS_MAGNITUDES) && w->d_mags < 0) ||
	    ((meta->has & TRACE_HAS_INPUTS) && w->d_inputs < 0) || write_root_attrs(w)) {
		err_set(err, ERR_IO, "%s: cannot create the trace datasets", w->tmp);
		trace_writer_abort(w);
		return NULL;
	}
	return w;
}

int trace_writer_set_text(struct trace_writer *w, const char *name, const char *value,
			  struct lif_err *err)
{
	if (w->failed)
		return err_set(err, ERR_IO, "%s: an earlier write failed", w->tmp);
	if ((H5Aexists(w->file, name) > 0 && H5Adelete(w->file, name) < 0) ||
	    h5attr_put_str(w->file, name, value)) {
		w->failed = 1;
		return err_set(err, ERR_IO, "%s: cannot write attribute %s: %s", w->tmp, name,
			       h5attr_why(errno));
	}
	return 0;
}

/* Extend dataset d along tokens to t1 and write n token rows at t0. */
static int append_rows(hid_t d, int rank, int64_t t0, int64_t n, hid_t memtype,
		       const void *buf)
{
	hsize_t dims[3];
	hid_t sp = H5Dget_space(d);
	H5Sget_simple_extent_dims(sp, dims, NULL);
	H5Sclose(sp);
	dims[0] = (hsize_t)(t0 + n);
	if (H5Dset_extent(d, dims) < 0)
		return -1;
	hsize_t start[3] = {(hsize_t)t0, 0, 0}, count[3] = {(hsize_t)n, dims[1], dims[2]};
	sp = H5Dget_space(d);
	H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
	hid_t ms = H5Screate_simple(rank, count, NULL);
	herr_t rc = H5Dwrite(d, memtype, ms, sp, H5P_DEFAULT, buf);
	H5Sclose(ms);
	H5Sclose(sp);
	return rc < 0 ? -1 : 0;
}

void trace_writer_set_threads(struct trace_writer *w, int threads)
{
	w->threads = threads > 0 ? threads : 1;
}

/* Compress one layer's rows of a token block into a deflate chunk of
 * chunk_tokens rows (zero-padded). Returns the compressed size, 0 on error. */
static size_t pack_chunk(const uint8_t *src, int n, int layers, int layer, size_t w,
			 int chunk_tokens, uint8_t *raw, uint8_t *out, size_t out_cap)
{
	memset(raw, 0, (size_t)chunk_tokens * w);
	for (int t = 0; t < n; t++)
		memcpy(raw + (size_t)t * w, src + ((size_t)t * layers + layer) * w, w);
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	/* Huffman-only deflate: bit-packed sets have few long matches, and it is
	 * both ~1.5x faster and ~20% smaller than the default strategy here. Any
	 * deflate reader decodes it. */
	if (deflateInit2(&zs, DEFLATE_LEVEL, Z_DEFLATED, 15, 8, Z_HUFFMAN_ONLY) != Z_OK)
		return 0;
	zs.next_in = raw;
	zs.avail_in = (uInt)((size_t)chunk_tokens * w);
	zs.next_out = out;
	zs.avail_out = (uInt)(out_cap - 4);
	int zrc = deflate(&zs, Z_FINISH);
	size_t len = zs.total_out;
	deflateEnd(&zs);
	if (zrc != Z_STREAM_END || len + 4 > out_cap)
		return 0;
	/* the Fletcher32 filter's checksum of the deflated bytes, little endian */
	uint32_t sum = h5attr_fletcher32(out, len);
	for (int i = 0; i < 4; i++)
		out[len + i] = (uint8_t)(sum >> 8 * i);
	return len + 4;
}

/* Fast path for whole, aligned chunks of uint8 datasets (generators): the
 * chunks are deflated in parallel and written directly, bypassing HDF5's
 * single-threaded filter pipeline. The file is identical in format. */
static int append_direct(hid_t d, int64_t t0, int n, int layers, size_t w, int chunk_tokens,
			 const uint8_t *src, int threads)
{
	hsize_t dims[3] = {(hsize_t)(t0 + n), (hsize_t)layers, w};
	if (H5Dset_extent(d, dims) < 0)
		return -1;
	size_t raw_bytes = (size_t)chunk_tokens * w, cap = compressBound(raw_bytes) + 4;
	uint8_t *raw = malloc((size_t)threads * raw_bytes), *out = malloc((size_t)layers * cap);
	size_t *len = calloc(layers, sizeof *len);
	int rc = raw && out && len ? 0 : -1;
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (!rc)
	for (int l = 0; l < layers; l++)
		len[l] = pack_chunk(src, n, layers, l, w, chunk_tokens,
				    raw + (size_t)omp_get_thread_num() * raw_bytes,
				    out + (size_t)l * cap, cap);
	for (int l = 0; !rc && l < layers; l++) {
		hsize_t off[3] = {(hsize_t)t0, (hsize_t)l, 0};
		if (!len[l] || H5Dwrite_chunk(d, H5P_DEFAULT, 0, off, len[l], out + (size_t)l * cap) < 0)
			rc = -1;
	}
	free(raw), free(out), free(len);
	return rc;
}

int trace_writer_append_many(struct trace_writer *w, int64_t n, const int32_t *token_ids,
			     const uint8_t *bits, const uint8_t *band, const float *inputs,
			     struct lif_err *err)
{
	const uint8_t *mags = band;
	const struct trace_meta *m = &w->meta;
	int64_t t0 = w->meta.tokens;
	if ((m->has & TRACE_HAS_MAGNITUDES) && !mags)
		return err_set(err, ERR_INVAL, "%s: band (magnitudes) declared but not given", w->tmp);
	if ((m->has & TRACE_HAS_INPUTS) && !inputs)
		return err_set(err, ERR_INVAL, "%s: ffn inputs declared but not given", w->tmp);
	if (w->failed)
		return err_set(err, ERR_IO, "%s: an earlier write failed", w->tmp);
	int rc = append_rows(w->d_tokens, 1, t0, n, H5T_NATIVE_INT32, token_ids);
	int direct = t0 % CHUNK_TOKENS_BITS == 0 && n <= CHUNK_TOKENS_BITS &&
		     !(w->flags & TRACE_WRITE_STREAMING);
	if (direct)
		rc |= append_direct(w->d_active, t0, (int)n, m->layers, w->row_bytes,
				    CHUNK_TOKENS_BITS, bits, w->threads);
	else
		rc |= append_rows(w->d_active, 3, t0, n, H5T_NATIVE_UINT8, bits);
	if ((m->has & TRACE_HAS_MAGNITUDES) && direct)
		rc |= append_direct(w->d_mags, t0, (int)n, m->layers, 2 * (size_t)w->row_bytes,
				    CHUNK_TOKENS_BAND, mags, w->threads);
	else if (m->has & TRACE_HAS_MAGNITUDES)
		rc |= append_rows(w->d_mags, 3, t0, n, H5T_NATIVE_UINT8, mags);
	if (m->has & TRACE_HAS_INPUTS)
		rc |= append_rows(w->d_inputs, 3, t0, n, H5T_NATIVE_FLOAT, inputs);
	if (rc) {
		w->failed = 1;
		return err_set(err, ERR_IO, "%s: cannot write tokens %lld..%lld: %s", w->tmp,
			       (long long)t0, (long long)(t0 + n - 1), h5attr_why(errno));
	}
	w->meta.tokens += n;
	w->since_flush += n;
	if ((w->flags & TRACE_WRITE_STREAMING) && w->since_flush >= FLUSH_TOKENS) {
		w->since_flush = 0;
		if (h5attr_set_i64(w->file, "tokens", w->meta.tokens) ||
		    H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
			w->failed = 1;
			return err_set(err, ERR_IO, "%s: cannot write tokens up to %lld: %s", w->tmp,
				       (long long)w->meta.tokens - 1, h5attr_why(errno));
		}
		w->flushed = w->meta.tokens;
	}
	return 0;
}

int trace_writer_append(struct trace_writer *w, int32_t token_id, const uint8_t *bits,
			const uint8_t *mags, const float *inputs, struct lif_err *err)
{
	uint8_t *band = NULL;
	const int rb = w->row_bytes, d = w->meta.d_ffn;
	if (mags && (w->meta.has & TRACE_HAS_MAGNITUDES)) {
		band = calloc((size_t)w->meta.layers * 2 * rb, 1);
		if (!band)
			return err_set(err, ERR_NOMEM, "out of memory");
		for (int l = 0; l < w->meta.layers; l++) {
			uint8_t *row = band + (size_t)l * 2 * rb;
			for (int i = 0; i < d; i++) {
				int lvl = trace_level_of_code(mags[(size_t)l * d + i]);
				if (lvl & 1)
					trace_set_bit(row, i);
				if (lvl & 2)
					trace_set_bit(row + rb, i);
			}
		}
	}
	int rc = trace_writer_append_many(w, 1, &token_id, bits, band, inputs, err);
	free(band);
	return rc;
}

/* After a failed write in streaming mode the file holds what its last
 * successful flush wrote, and perhaps some of what followed: keep it if it
 * reads back whole (every chunk's checksum), as after an interrupt; remove it
 * otherwise, so no reader takes it for a trace. Says which in err. */
static void keep_or_remove(const struct trace_writer *w, struct lif_err *err)
{
	struct lif_err e = {0};
	struct trace *t = trace_load(w->path, 0, &e);
	size_t n = strlen(err->msg);
	if (t) {
		snprintf(err->msg + n, sizeof err->msg - n,
			 "; %s keeps the %lld tokens written before the failure", w->path,
			 (long long)t->meta.tokens);
		trace_free(t);
	} else {
		unlink(w->path);
		snprintf(err->msg + n, sizeof err->msg - n,
			 "; %s removed (unreadable after the failure: %s)", w->path, e.msg);
	}
}

/* Close every handle; returns -1 when a write, the flush, the close or the
 * fsync failed (or had failed before). */
static int writer_close_handles(struct trace_writer *w)
{
	hid_t ds[4] = {w->d_tokens, w->d_active, w->d_mags, w->d_inputs};
	int rc = h5attr_close_written(w->file, ds, 4, w->failed, w->tmp);
	w->file = w->d_tokens = w->d_active = w->d_mags = w->d_inputs = H5I_INVALID_HID;
	return rc;
}

int trace_writer_close(struct trace_writer *w, struct lif_err *err)
{
	int rc = 0;
	if (w->failed)
		rc = err_set(err, ERR_IO, "%s: an earlier write failed", w->tmp);
	else if (h5attr_set_i64(w->file, "tokens", w->meta.tokens)) {
		w->failed = 1;
		rc = err_set(err, ERR_IO, "%s: cannot write the tokens attribute", w->tmp);
	}
	if (writer_close_handles(w) && !rc)
		rc = err_set(err, ERR_IO, "%s: write failed: %s", w->tmp, h5attr_why(errno));
	if (!rc && !(w->flags & TRACE_WRITE_STREAMING) && rename(w->tmp, w->path))
		rc = err_set(err, ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(errno));
	if (rc && !(w->flags & TRACE_WRITE_STREAMING))
		unlink(w->tmp);
	if (rc && (w->flags & TRACE_WRITE_STREAMING))
		keep_or_remove(w, err);
	free(w);
	return rc;
}

int64_t trace_writer_flushed(const struct trace_writer *w)
{
	return w->flushed;
}

void trace_writer_abort(struct trace_writer *w)
{
	if (!w)
		return;
	w->failed = 1;
	writer_close_handles(w);
	if (!(w->flags & TRACE_WRITE_STREAMING))
		unlink(w->tmp);
	free(w);
}

/* ---------------------------------------------------------------- reader */

static int read_meta(hid_t f, const char *path, struct trace_meta *m, int *version,
		     struct lif_err *err)
{
	char schema[64], source[32];
	int64_t v, layers, d_ffn, d_model;
	memset(m, 0, sizeof *m);
	if (h5attr_get_str(f, "schema", schema, sizeof schema) || strcmp(schema, TRACE_SCHEMA))
		return err_set(err, ERR_FORMAT, "%s: not a lifsim trace (schema attribute is not '%s')",
			       path, TRACE_SCHEMA);
	if (h5attr_get(f, "schema_version", H5T_NATIVE_INT64, 0, &v))
		return err_set(err, ERR_FORMAT, "%s: missing schema_version attribute", path);
	if (v < TRACE_SCHEMA_VERSION_MIN || v > TRACE_SCHEMA_VERSION)
		return err_set(err, ERR_FORMAT, "%s: trace schema version %lld, this lifsim reads %d..%d",
			       path, (long long)v, TRACE_SCHEMA_VERSION_MIN, TRACE_SCHEMA_VERSION);
	*version = (int)v;
	if (H5Lexists(f, "router_experts", H5P_DEFAULT) > 0 &&
	    H5Lexists(f, "active", H5P_DEFAULT) <= 0)
		return err_set(err, ERR_FORMAT, "%s: a router trace (MoE expert choices, no neuron "
			       "active sets): use it with `lifsim stats` or a sweep of kind moe", path);
	if (h5attr_get_int(f, path, "layers", 1, TRACE_MAX_LAYERS, &layers, err) ||
	    h5attr_get_int(f, path, "d_ffn", 1, TRACE_MAX_DFFN, &d_ffn, err) ||
	    h5attr_get_int(f, path, "d_model", 0, TRACE_MAX_DMODEL, &d_model, err) ||
	    h5attr_get_int(f, path, "tokens", 0, TRACE_MAX_TOKENS, &m->tokens, err))
		return ERR_FORMAT;
	if (h5attr_get(f, "seed", H5T_NATIVE_UINT64, 0, &m->seed) ||
	    h5attr_get(f, "threshold", H5T_NATIVE_DOUBLE, 0, &m->threshold) ||
	    h5attr_get_str(f, "source", source, sizeof source) ||
	    h5attr_get_str(f, "model", m->model, sizeof m->model))
		return err_set(err, ERR_FORMAT, "%s: a required root attribute is missing or malformed "
			       "(seed, threshold, source, model)", path);
	if (!isfinite(m->threshold))
		return err_set(err, ERR_FORMAT, "%s: threshold is not a finite number", path);
	h5attr_get_str(f, "generator", m->generator, sizeof m->generator);
	m->layers = (int)layers, m->d_ffn = (int)d_ffn, m->d_model = (int)d_model;
	m->source = !strcmp(source, "recorded") ? TRACE_SOURCE_RECORDED : TRACE_SOURCE_SYNTHETIC;
	if (strcmp(source, "recorded") && strcmp(source, "synthetic"))
		return err_set(err, ERR_FORMAT, "%s: source '%s' is neither recorded nor synthetic", path,
			       source);
	m->has = (H5Lexists(f, "band", H5P_DEFAULT) > 0 ? TRACE_HAS_MAGNITUDES : 0) |
		 (H5Lexists(f, "ffn_inputs", H5P_DEFAULT) > 0 ? TRACE_HAS_INPUTS : 0);
	int has = m->has;
	m->has &= ~TRACE_HAS_MAGNITUDES; /* margins are checked once read */
	if (check_meta(m, path, err))
		return ERR_FORMAT;
	m->has = has;
	if ((m->has & TRACE_HAS_MAGNITUDES) &&
	    h5attr_get(f, "band_margin", H5T_NATIVE_DOUBLE, (hsize_t)m->layers, m->mag_margin))
		return err_set(err, ERR_FORMAT, "%s: band present but band_margin is "
			       "missing or not one value per layer", path);
	return check_meta(m, path, err) ? ERR_FORMAT : 0;
}

/* One dataset a trace holds: its name, the shape and element it must have. */
struct dset {
	const char *name;
	int rank;
	hsize_t want[3]; /* (tokens, layers, inner) or (tokens) */
	H5T_class_t cls;
	size_t elem;     /* bytes of one element in the file and in memory */
	hid_t d;
};

/* "uint8 [4,2,8]": the type and extent dataset d has. */
static void shape_text(hid_t d, char *buf, size_t cap)
{
	hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
	hsize_t dims[8];
	int r = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
	H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
	size_t o = (size_t)snprintf(buf, cap, "%s%zu [", c == H5T_FLOAT ? "float" : c != H5T_INTEGER ? "other" : H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int",
				    t >= 0 ? 8 * H5Tget_size(t) : 0);
	for (int i = 0; i < r && i < 8 && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
	if (o < cap)
		snprintf(buf + o, cap - o, "]");
	if (t >= 0)
		H5Tclose(t);
	if (sp >= 0)
		H5Sclose(sp);
}

/* Open dataset s->name and check it: type and shape (tokens, inner...) as the
 * attributes claim, every chunk stored and, from schema v2, a checksum. */
static int open_checked(hid_t f, const char *path, int version, struct dset *s,
			struct lif_err *err)
{
	hsize_t dims[4];
	s->d = H5Dopen2(f, s->name, H5P_DEFAULT);
	if (s->d < 0)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' is missing or unreadable", path,
			       s->name);
	hid_t sp = H5Dget_space(s->d), t = H5Dget_type(s->d);
	int ok = sp >= 0 && t >= 0 && H5Sget_simple_extent_ndims(sp) == s->rank &&
		 H5Tget_class(t) == s->cls && H5Tget_size(t) == s->elem &&
		 H5Sget_simple_extent_dims(sp, dims, NULL) == s->rank;
	/* along tokens a dataset may hold more rows than the file claims: a
	 * recorder's write that failed after extending it (only the claimed
	 * rows are read) */
	for (int i = 0; ok && i < s->rank; i++)
		ok = i ? dims[i] == s->want[i] : dims[i] >= s->want[i];
	if (t >= 0)
		H5Tclose(t);
	if (sp >= 0)
		H5Sclose(sp);
	if (!ok) {
		char shape[128] = "", has[128] = "";
		for (int i = 0, o = 0; i < s->rank; i++)
			o += snprintf(shape + o, sizeof shape - o, "%s%llu", i ? "," : "",
				      (unsigned long long)s->want[i]);
		shape_text(s->d, has, sizeof has);
		return err_set(err, ERR_FORMAT,
			       "%s: dataset '%s' is %s, the attributes claim %s [%s]", path,
			       s->name, has, s->cls == H5T_FLOAT ? "float32" : s->elem == 4 ? "int32" : "uint8",
			       shape);
	}
	if (dims[0] > s->want[0])
		return h5attr_check_stored_rows(s->d, path, s->name, s->want[0], err);
	return h5attr_check_stored(s->d, path, s->name, err);
}

/* The filters lifsim writes, in order: deflate, then (schema v2) Fletcher32.
 * Returns the filter count (1 or 2), or 0 when the pipeline is another. */
static int lifsim_filters(hid_t dcpl)
{
	int n = H5Pget_nfilters(dcpl);
	unsigned flags, cd[8];
	size_t ncd = 8;
	if (n < 1 || n > 2 ||
	    H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL) != H5Z_FILTER_DEFLATE)
		return 0;
	ncd = 8;
	if (n == 2 && H5Pget_filter2(dcpl, 1, &flags, &ncd, cd, 0, NULL, NULL) != H5Z_FILTER_FLETCHER32)
		return 0;
	return n;
}

/* Strip and verify the Fletcher32 checksum at the end of a raw chunk. */
static int chunk_checksum_ok(const uint8_t *c, hsize_t *size)
{
	if (*size < 4)
		return 0;
	*size -= 4;
	const uint8_t *p = c + *size;
	uint32_t stored = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			  (uint32_t)p[3] << 24;
	return stored == h5attr_fletcher32(c, *size);
}

/* malloc, asking for huge pages when large: the bits are written once
 * from end to end, and 4 KiB pages cost a fault each. */
static void *big_alloc(size_t n);

void *trace_alloc(size_t n)
{
	return big_alloc(n);
}

static void *big_alloc(size_t n)
{
	void *p = malloc(n);
	const size_t huge = (size_t)2 << 20;
	if (p && n >= 4 * huge) {
		uintptr_t a = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
		uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(huge - 1);
		if (b > a)
			madvise((void *)a, b - a, MADV_HUGEPAGE); /* advice only: failure is harmless */
	}
	return p;
}

/* Inflate one deflate-filtered chunk (a zlib stream, Adler-32 checked) into
 * dst (*len bytes free; the bytes written on return). libdeflate when built
 * with it (whole-buffer, about twice zlib's speed), else zlib. */
static int inflate_chunk(uint8_t *dst, uLongf *len, const uint8_t *src, size_t n)
{
#ifdef HAVE_LIBDEFLATE
	struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
	size_t out = 0;
	int bad = !d || libdeflate_zlib_decompress(d, src, n, dst, *len, &out) != LIBDEFLATE_SUCCESS;
	libdeflate_free_decompressor(d);
	*len = bad ? 0 : (uLongf)out;
	return bad;
#else
	return uncompress(dst, len, src, n) != Z_OK;
#endif
}

/* Fast path for uint8 datasets chunked [C, 1, inner] with deflate (and
 * Fletcher32), what lifsim writes: read the raw chunks of tokens [t0, t0 + n)
 * of every layer, check their checksums, inflate them in parallel straight
 * into the layer-major buffer out (layers, n, inner). Returns 1 if the layout
 * does not qualify (use the generic path), 0 on success, -1 on a corrupt
 * chunk. */
/* Where a range read's chunks come from and go: chunks of C tokens, the
 * first chunk row cb0, tokens [t0, t0 + n), rows of inner bytes, the
 * layers, the dataset's lifsim filters (2: with Fletcher-32). */
struct chunk_span {
	int64_t C, cb0, t0, n;
	hsize_t inner;
	int layers, nf;
};

/* Chunk c (its stored bytes comp, size and filter mask): checked, inflated
 * and its rows inside [t0, t0 + n) put in place in out (layers, n, inner).
 * 0, or -1 when it is corrupt or memory runs out. */
static int unpack_chunk(const struct chunk_span *sp, size_t c, const uint8_t *comp, hsize_t *size,
			uint32_t mask, uint8_t *out)
{
	const int64_t C = sp->C, T = sp->t0 + sp->n;
	const size_t raw = (size_t)C * sp->inner;
	if (sp->nf == 2 && !(mask & 2) && !chunk_checksum_ok(comp, size))
		return -1;
	const int64_t tb = sp->cb0 + (int64_t)(c / sp->layers), l = (int64_t)(c % sp->layers);
	/* the chunk's rows [r0, r1) that fall in [t0, T) */
	const int64_t r0 = sp->t0 > tb * C ? sp->t0 - tb * C : 0;
	const int64_t r1 = T - tb * C < C ? T - tb * C : C;
	uint8_t *dst = out + ((size_t)l * sp->n + (size_t)(tb * C + r0 - sp->t0)) * sp->inner, *tmp = NULL;
	uLongf len = raw;
	if ((r0 > 0 || r1 < C) && !(tmp = malloc(raw)))
		return -1;
	if (mask & 1) /* the filter was skipped for this chunk */
		memcpy(tmp ? tmp : dst, comp, *size < raw ? *size : raw), len = *size;
	else if (inflate_chunk(tmp ? tmp : dst, &len, comp, *size))
		len = 0;
	int rc = len != raw ? -1 : 0;
	if (!rc && tmp)
		memcpy(dst, tmp + (size_t)r0 * sp->inner, (size_t)(r1 - r0) * sp->inner);
	free(tmp);
	return rc;
}

static int read_chunks_range(hid_t d, const struct trace_meta *m, hsize_t inner, int64_t t0,
			     int64_t n, uint8_t *out, int threads, uint8_t **keep, hsize_t *keep_cap)
{
	hid_t dcpl = H5Dget_create_plist(d), file = H5Iget_file_id(d);
	hsize_t chunk[3] = {0}, fsize = 0;
	int nf = dcpl < 0 ? 0 : lifsim_filters(dcpl);
	int ok = nf && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 3, chunk) == 3 &&
		 chunk[0] >= 1 && chunk[0] <= 4096 && chunk[1] == 1 && chunk[2] == inner &&
		 file >= 0 && H5Fget_filesize(file, &fsize) >= 0;
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (file >= 0)
		H5Fclose(file);
	if (!ok)
		return 1;
	const int64_t T = t0 + n, C = (int64_t)chunk[0], cb0 = t0 / C, nb = (T + C - 1) / C - cb0;
	const size_t nchunks = (size_t)nb * m->layers;
	uint8_t **comp = calloc(nchunks, sizeof *comp), *all = NULL;
	hsize_t *size = calloc(nchunks, sizeof *size), most = 0, total = 0;
	uint32_t *mask = calloc(nchunks, sizeof *mask);
	int rc = comp && size && mask ? 0 : -1;
	for (size_t c = 0; !rc && c < nchunks; c++) { /* HDF5 calls stay on one thread */
		hsize_t off[3] = {(hsize_t)(cb0 + (int64_t)(c / m->layers)) * C, c % m->layers, 0};
		if (H5Dget_chunk_storage_size(d, off, &size[c]) < 0 || size[c] > fsize)
			rc = -1; /* every chunk is stored (check_stored), inside the file */
		most = size[c] > most ? size[c] : most;
		total += total < READ_BATCH ? size[c] + 1 : 0; /* each <= fsize: no overflow */
	}
	/* the stored chunks go through one buffer (huge pages) of at most
	 * READ_BATCH bytes, or one chunk: a batch is read, then checked and
	 * inflated on the threads, so memory is the output and one batch. A
	 * range whose chunks store less than READ_BATCH gets a buffer of what
	 * they store (same batches), not READ_BATCH bytes */
	const hsize_t batch = total < READ_BATCH ? total : READ_BATCH;
	const hsize_t cap = most + 1 > batch ? most + 1 : batch;
	if (!rc && keep && *keep && *keep_cap >= cap)
		all = *keep; /* a block reader's batch buffer, kept from block to block */
	else if (!rc && !(all = big_alloc(cap)))
		rc = -1;
	int bad = rc;
	for (size_t c0 = 0, c1; !bad && c0 < nchunks; c0 = c1) {
		hsize_t at = 0;
		for (c1 = c0; c1 < nchunks && at + size[c1] + 1 <= cap; at += size[c1] + 1, c1++) {
			hsize_t off[3] = {(hsize_t)(cb0 + (int64_t)(c1 / m->layers)) * C, c1 % m->layers, 0};
			comp[c1] = all + at;
			if (H5Dread_chunk(d, H5P_DEFAULT, off, &mask[c1], comp[c1]) < 0)
				bad = -1;
		}
		const struct chunk_span sp = {C, cb0, t0, n, inner, m->layers, nf};
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad)
		for (size_t c = c0; c < c1; c++)
			bad |= unpack_chunk(&sp, c, comp[c], &size[c], mask[c], out);
	}
	if (keep && all && all != *keep) {
		free(*keep);
		*keep = all, *keep_cap = cap;
	} else if (!keep)
		free(all);
	free(comp), free(size), free(mask);
	return bad ? -1 : 0;
}

/* Read the (tokens [t0, t0 + n), layer, inner) slab of one layer into out (n, inner). */
static int read_layer_range(hid_t d, int64_t t0, int64_t n, int layer, hsize_t inner,
			    hid_t memtype, void *out)
{
	hid_t sp = H5Dget_space(d);
	hsize_t start[3] = {(hsize_t)t0, (hsize_t)layer, 0}, count[3] = {(hsize_t)n, 1, inner};
	H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
	hsize_t mc[2] = {(hsize_t)n, inner};
	hid_t ms = H5Screate_simple(2, mc, NULL);
	herr_t rc = n ? H5Dread(d, memtype, ms, sp, H5P_DEFAULT, out) : 0;
	H5Sclose(ms);
	H5Sclose(sp);
	return rc < 0 ? -1 : 0;
}

static int read_all_layers(hid_t d, const struct trace_meta *m, hsize_t inner, hid_t memtype,
			   size_t elem, void *out)
{
	int fast = memtype == H5T_NATIVE_UINT8 && m->tokens > 0
			   ? read_chunks_range(d, m, inner, 0, m->tokens, out, m->read_threads, NULL, NULL)
			   : 1;
	if (fast <= 0)
		return fast;
	for (int l = 0; l < m->layers; l++)
		if (read_layer_range(d, 0, m->tokens, l, inner, memtype,
			       (char *)out + (size_t)l * m->tokens * inner * elem))
			return -1;
	return 0;
}

/* Padding bits past d_ffn must be zero: a cheap check that bits are what they claim. */
static int check_padding(const struct trace *t, const char *path, struct lif_err *err)
{
	int rem = t->meta.d_ffn & 7;
	if (!rem)
		return 0;
	uint8_t mask = (uint8_t)(0xFFu << rem);
	size_t rows = (size_t)t->meta.layers * t->meta.tokens;
	for (size_t r = 0; r < rows; r++)
		if (t->bits[r * t->row_bytes + t->row_bytes - 1] & mask)
			return err_set(err, ERR_FORMAT, "%s: active set of row %zu has bits set past d_ffn=%d",
				       path, r, t->meta.d_ffn);
	return 0;
}

enum { DS_TOKENS, DS_ACTIVE, DS_BAND, DS_INPUTS, DS_N };

/* The datasets this load reads, with the shapes the attributes claim. */
static void dsets_describe(const struct trace *t, int flags, struct dset ds[DS_N])
{
	const struct trace_meta *m = &t->meta;
	hsize_t T = (hsize_t)m->tokens, L = (hsize_t)m->layers, rb = (hsize_t)t->row_bytes;
	int band = (flags & TRACE_LOAD_MAGNITUDES) && (m->has & TRACE_HAS_MAGNITUDES);
	int inputs = (flags & TRACE_LOAD_INPUTS) && (m->has & TRACE_HAS_INPUTS);
	ds[DS_TOKENS] = (struct dset){"tokens", 1, {T}, H5T_INTEGER, 4, H5I_INVALID_HID};
	ds[DS_ACTIVE] = (struct dset){"active", 3, {T, L, rb}, H5T_INTEGER, 1, H5I_INVALID_HID};
	ds[DS_BAND] = (struct dset){band ? "band" : NULL, 3, {T, L, 2 * rb}, H5T_INTEGER, 1,
				    H5I_INVALID_HID};
	ds[DS_INPUTS] = (struct dset){inputs ? "ffn_inputs" : NULL, 3, {T, L, (hsize_t)m->d_model},
				      H5T_FLOAT, 4, H5I_INVALID_HID};
}

/* Bytes each dataset takes in memory (+1: never malloc(0)); -1 on overflow. */
static int dsets_bytes(const struct dset ds[DS_N], size_t bytes[DS_N], size_t *total)
{
	*total = 0;
	for (int i = 0; i < DS_N; i++) {
		size_t b = 0;
		if (ds[i].name &&
		    (claim_mul3(&b, ds[i].want[0], ds[i].rank == 3 ? ds[i].want[1] : 1,
				ds[i].rank == 3 ? ds[i].want[2] : 1) ||
		     claim_mul(&b, b, ds[i].elem) || claim_add(&b, 1) || claim_add(total, b)))
			return -1;
		bytes[i] = b;
	}
	return 0;
}

/* Check the datasets against the claims, then the memory they need, then
 * allocate. */
static int load_prepare(hid_t f, const char *path, int version, struct trace *t,
			struct dset ds[DS_N], struct lif_err *err)
{
	const struct trace_meta *m = &t->meta;
	size_t bytes[DS_N], total;
	for (int i = 0; i < DS_N; i++)
		if (ds[i].name && open_checked(f, path, version, &ds[i], err))
			return ERR_FORMAT;
	char what[160];
	snprintf(what, sizeof what, "loading %lld tokens x %d layers x %d neurons",
		 (long long)m->tokens, m->layers, m->d_ffn);
	if (dsets_bytes(ds, bytes, &total))
		return err_set(err, ERR_NOMEM, "%s: %s overflows the address space", path, what);
	if (claim_memory(path, what, total, err))
		return ERR_NOMEM;
	t->token_ids = malloc(bytes[DS_TOKENS]);
	t->bits = big_alloc(bytes[DS_ACTIVE]);
	if (ds[DS_BAND].name)
		t->band = big_alloc(bytes[DS_BAND]);
	if (ds[DS_INPUTS].name)
		t->inputs = malloc(bytes[DS_INPUTS]);
	if (!t->token_ids || !t->bits || (ds[DS_BAND].name && !t->band) ||
	    (ds[DS_INPUTS].name && !t->inputs))
		return err_set(err, ERR_NOMEM, "%s: out of memory %s", path, what);
	return 0;
}

static int load_datasets(const char *path, struct trace *t, const struct dset ds[DS_N],
			 struct lif_err *err)
{
	const struct trace_meta *m = &t->meta;
	void *dst[DS_N] = {t->token_ids, t->bits, t->band, t->inputs};
	hid_t memtype[DS_N] = {H5T_NATIVE_INT32, H5T_NATIVE_UINT8, H5T_NATIVE_UINT8,
			       H5T_NATIVE_FLOAT};
	/* the first m->tokens rows: the dataset may hold more (open_checked) */
	hid_t sp = H5Dget_space(ds[DS_TOKENS].d);
	hsize_t start = 0, count = (hsize_t)m->tokens;
	hid_t ms = H5Screate_simple(1, &count, NULL);
	herr_t rrc = sp < 0 || ms < 0 ||
			     H5Sselect_hyperslab(sp, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0
		     ? -1
		     : m->tokens ? H5Dread(ds[DS_TOKENS].d, H5T_NATIVE_INT32, ms, sp, H5P_DEFAULT,
					   t->token_ids)
				 : 0;
	if (ms >= 0)
		H5Sclose(ms);
	if (sp >= 0)
		H5Sclose(sp);
	if (rrc < 0)
		return err_set(err, ERR_FORMAT, "%s: dataset 'tokens' is corrupt (a checksum "
			       "mismatch or an unreadable chunk)", path);
	for (int i = DS_ACTIVE; i < DS_N; i++)
		if (ds[i].name && read_all_layers(ds[i].d, m, ds[i].want[2], memtype[i], ds[i].elem,
						  dst[i]))
			return err_set(err, ERR_FORMAT, "%s: dataset '%s' is corrupt (a checksum "
				       "mismatch or a chunk that does not decompress)", path, ds[i].name);
	for (int64_t i = 0; i < m->tokens; i++)
		if (t->token_ids[i] < 0)
			return err_set(err, ERR_FORMAT, "%s: token %lld has a negative id", path,
				       (long long)i);
	return 0;
}

struct trace *trace_load(const char *path, int flags, struct lif_err *err)
{
	return trace_load_threads(path, flags, 1, err);
}

static struct trace *load_in_process(const char *path, int flags, int threads,
				     struct lif_err *err);

static int load_probe(const char *path, void *flags, struct lif_err *err)
{
	struct trace *t = load_in_process(path, *(int *)flags, 1, err);
	trace_free(t);
	return t ? 0 : ERR_FORMAT;
}


struct trace *trace_load_threads(const char *path, int flags, int threads, struct lif_err *err)
{
	/* a file in HDF5's old format (v1 traces) has no metadata checksums:
	 * read it in a child process first, so that corrupt metadata that
	 * crashes libhdf5 is an error here */
	int sb = h5attr_superblock_version(path);
	if (sb >= 0 && sb < 2 && h5attr_isolate(path, load_probe, &flags, sizeof flags, err))
		return NULL;
	return load_in_process(path, flags, threads, err);
}

static struct trace *load_in_process(const char *path, int flags, int threads,
				     struct lif_err *err)
{
	struct trace *t = calloc(1, sizeof *t);
	struct dset ds[DS_N] = {{0}};
	int version = 0;
	hid_t f = h5attr_open_readonly(path, err);
	int rc = t ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && f < 0)
		rc = ERR_FORMAT;
	if (!rc)
		rc = read_meta(f, path, &t->meta, &version, err);
	if (!rc) {
		t->meta.read_threads = threads > 0 ? threads : 1;
		t->row_bytes = trace_row_bytes(t->meta.d_ffn);
		dsets_describe(t, flags, ds);
		rc = load_prepare(f, path, version, t, ds, err);
	}
	if (!rc)
		rc = load_datasets(path, t, ds, err);
	if (!rc)
		rc = check_padding(t, path, err);
	for (int i = 0; i < DS_N; i++)
		if (ds[i].d > 0)
			H5Dclose(ds[i].d);
	if (f >= 0)
		H5Fclose(f);
	if (rc) {
		trace_free(t);
		return NULL;
	}
	return t;
}

int trace_validate(const char *path, struct trace_meta *meta_out, struct lif_err *err)
{
	struct trace *t = trace_load(path, TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, err);
	if (!t)
		return err->code ? err->code : ERR_FORMAT;
	if (meta_out)
		*meta_out = t->meta;
	trace_free(t);
	return 0;
}

void trace_free(struct trace *t)
{
	if (!t)
		return;
	free(t->token_ids);
	free(t->bits);
	free(t->band);
	free(t->inputs);
	free(t);
}

int trace_read_text(const char *path, const char *name, char *buf, size_t cap,
		    struct lif_err *err)
{
	hid_t f = h5attr_open_readonly(path, err);
	if (f < 0)
		return ERR_FORMAT;
	h5attr_get_str(f, name, buf, cap);
	H5Fclose(f);
	return 0;
}

/* ---------------------------------------------------------------- block reader */

struct trace_reader {
	char path[4096];
	hid_t f;
	struct dset ds[DS_N];
	struct trace meta; /* meta and row_bytes; no data */
	int threads;
	uint8_t *batch; /* read_chunks_range's buffer of stored chunks, kept */
	hsize_t batch_cap;
	pthread_mutex_t lock;
};

void trace_reader_close(struct trace_reader *r)
{
	if (!r)
		return;
	for (int i = 0; i < DS_N; i++)
		if (r->ds[i].d > 0)
			H5Dclose(r->ds[i].d);
	if (r->f >= 0)
		H5Fclose(r->f);
	pthread_mutex_destroy(&r->lock);
	free(r->batch);
	free(r);
}

/* The token ids (read once, checked, dropped: the simulator uses none). */
static int reader_check_ids(struct trace_reader *r, struct lif_err *err)
{
	const int64_t T = r->meta.meta.tokens;
	int32_t *ids = malloc((size_t)(T > 0 ? T : 1) * sizeof *ids);
	hid_t sp = H5Dget_space(r->ds[DS_TOKENS].d);
	hsize_t start = 0, count = (hsize_t)T;
	hid_t ms = H5Screate_simple(1, &count, NULL);
	herr_t rrc = !ids || sp < 0 || ms < 0 ||
			     H5Sselect_hyperslab(sp, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0
		     ? -1
		     : T ? H5Dread(r->ds[DS_TOKENS].d, H5T_NATIVE_INT32, ms, sp, H5P_DEFAULT, ids) : 0;
	if (ms >= 0)
		H5Sclose(ms);
	if (sp >= 0)
		H5Sclose(sp);
	int rc = rrc < 0 ? err_set(err, ERR_FORMAT, "%s: dataset 'tokens' is corrupt (a checksum "
				   "mismatch or an unreadable chunk)", r->path) : 0;
	for (int64_t i = 0; !rc && i < T; i++)
		if (ids[i] < 0)
			rc = err_set(err, ERR_FORMAT, "%s: token %lld has a negative id", r->path,
				     (long long)i);
	free(ids);
	return rc;
}

struct trace_reader *trace_reader_open(const char *path, int flags, int threads,
				       struct lif_err *err)
{
	int sb = h5attr_superblock_version(path);
	int lflags = flags & TRACE_LOAD_MAGNITUDES;
	if (sb >= 0 && sb < 2 && h5attr_isolate(path, load_probe, &lflags, sizeof lflags, err))
		return NULL;
	struct trace_reader *r = calloc(1, sizeof *r);
	if (!r) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	snprintf(r->path, sizeof r->path, "%s", path);
	r->threads = threads > 0 ? threads : 1;
	int version = 0;
	r->f = h5attr_open_readonly(path, err);
	int rc = r->f < 0 ? ERR_FORMAT : read_meta(r->f, path, &r->meta.meta, &version, err);
	if (!rc) {
		r->meta.meta.read_threads = r->threads;
		r->meta.row_bytes = trace_row_bytes(r->meta.meta.d_ffn);
		dsets_describe(&r->meta, lflags, r->ds);
		for (int i = 0; !rc && i < DS_N; i++)
			if (r->ds[i].name && open_checked(r->f, path, version, &r->ds[i], err))
				rc = ERR_FORMAT;
	}
	if (!rc)
		rc = reader_check_ids(r, err);
	if (!r->ds[DS_BAND].name) /* a band not read is not there */
		r->meta.meta.has &= ~TRACE_HAS_MAGNITUDES;
	r->meta.meta.has &= ~TRACE_HAS_INPUTS;
	if (rc) {
		trace_reader_close(r);
		return NULL;
	}
	return r;
}

const struct trace *trace_reader_meta(const struct trace_reader *r)
{
	return &r->meta;
}

int trace_reader_read(struct trace_reader *r, int64_t t0, int64_t n, uint8_t *bits,
		      uint8_t *band, struct lif_err *err)
{
	const struct trace_meta *m = &r->meta.meta;
	const int rb = r->meta.row_bytes;
	if (t0 < 0 || n < 0 || t0 + n > m->tokens)
		return err_set(err, ERR_RANGE, "%s: tokens %lld..%lld are past the trace's %lld",
			       r->path, (long long)t0, (long long)(t0 + n), (long long)m->tokens);
	if (band && !r->ds[DS_BAND].name)
		return err_set(err, ERR_INVAL, "%s: the trace's band was not opened", r->path);
	int rc = 0;
	pthread_mutex_lock(&r->lock); /* HDF5 calls stay on one thread at a time */
	uint8_t *dst[2] = {bits, band};
	for (int i = 0; !rc && i < 2; i++) {
		const struct dset *s = &r->ds[DS_ACTIVE + i];
		if (!dst[i] || !n)
			continue;
		const int whole = t0 == 0 && n == m->tokens; /* read once: keep no buffer */
		int fast = read_chunks_range(s->d, m, s->want[2], t0, n, dst[i], r->threads,
					     whole ? NULL : &r->batch, whole ? NULL : &r->batch_cap);
		for (int l = 0; fast > 0 && l < m->layers; l++)
			if (read_layer_range(s->d, t0, n, l, s->want[2], H5T_NATIVE_UINT8,
					     dst[i] + (size_t)l * n * s->want[2]))
				fast = -1;
		if (fast)
			rc = err_set(err, ERR_FORMAT, "%s: dataset '%s' is corrupt (a checksum "
				     "mismatch or a chunk that does not decompress)", r->path, s->name);
	}
	pthread_mutex_unlock(&r->lock);
	const int rem = m->d_ffn & 7;
	const uint8_t mask = (uint8_t)(0xFFu << rem);
	for (int l = 0; !rc && rem && l < m->layers; l++)
		for (int64_t k = 0; !rc && k < n; k++)
			if (bits[((size_t)l * n + k) * rb + rb - 1] & mask)
				rc = err_set(err, ERR_FORMAT, "%s: active set of row %zu has bits set past d_ffn=%d",
					     r->path, (size_t)l * m->tokens + t0 + k, m->d_ffn);
	return rc;
}
