#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"
#include "models/llm.h"
#include "traces/synth.h"
#include "traces/trace.h"

TestSuite(trace, .init = tu_init);

enum { L = 3, D = 203, DM = 5, T = 100 };

/* Deterministic content for token t, layer l. */
static int active_at(int t, int l, int i) { return (i * 7 + t * 3 + l) % 11 == 0; }
static uint8_t code_at(int t, int l, int i) { return (uint8_t)((i * 13 + t + l * 5) % 256); }

static void meta_for(struct trace_meta *m, int has)
{
	memset(m, 0, sizeof *m);
	snprintf(m->model, sizeof m->model, "unit");
	m->layers = L, m->d_ffn = D, m->d_model = DM;
	m->source = TRACE_SOURCE_RECORDED;
	snprintf(m->generator, sizeof m->generator, "test");
	m->threshold = 0.25;
	m->has = has;
	for (int l = 0; l < L; l++)
		m->mag_margin[l] = 0.5 + l;
}

static void write_trace(const char *path, int ntok, int flags, int has)
{
	struct trace_meta m;
	struct lif_err e = {0};
	meta_for(&m, has);
	struct trace_writer *w = trace_writer_open(path, &m, flags, &e);
	cr_assert(w, "%s", e.msg);
	int rb = trace_row_bytes(D);
	uint8_t bits[L * 26], mags[L * D];
	float in[L * DM];
	for (int t = 0; t < ntok; t++) {
		memset(bits, 0, sizeof bits);
		for (int l = 0; l < L; l++)
			for (int i = 0; i < D; i++) {
				if (active_at(t, l, i))
					trace_set_bit(bits + l * rb, i);
				mags[l * D + i] = code_at(t, l, i);
			}
		for (int k = 0; k < L * DM; k++)
			in[k] = (float)(t * 100 + k);
		cr_assert_eq(trace_writer_append(w, 1000 + t, bits, mags, in, &e), 0, "%s", e.msg);
	}
	cr_assert_eq(trace_writer_set_text(w, "prompt", "hello", &e), 0);
	cr_assert_eq(trace_writer_close(w, &e), 0, "%s", e.msg);
}

Test(trace, round_trip_keeps_every_dataset_and_attribute)
{
	const char *p = tu_path("rt.h5");
	write_trace(p, T, 0, TRACE_HAS_MAGNITUDES | TRACE_HAS_INPUTS);
	struct lif_err e = {0};
	struct trace *t = trace_load(p, TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, &e);
	cr_assert(t, "%s", e.msg);
	cr_expect_eq(t->meta.tokens, T);
	cr_expect_eq(t->meta.layers, L);
	cr_expect_eq(t->meta.d_ffn, D);
	cr_expect_str_eq(t->meta.model, "unit");
	cr_expect_eq(t->meta.source, TRACE_SOURCE_RECORDED);
	cr_expect_float_eq(t->meta.threshold, 0.25, 1e-12);
	cr_expect_float_eq(t->meta.mag_margin[2], 2.5, 1e-12);
	int bad = 0;
	for (int l = 0; l < L; l++)
		for (int k = 0; k < T; k++) {
			const uint8_t *row = trace_active(t, l, k), *band = trace_band_row(t, l, k);
			for (int i = 0; i < D; i++) {
				bad += trace_bit(row, i) != active_at(k, l, i);
				bad += trace_band_level(band, t->row_bytes, i) !=
				       trace_level_of_code(code_at(k, l, i));
			}
			bad += t->inputs[((size_t)l * T + k) * DM + 3] != (float)(k * 100 + l * DM + 3);
		}
	cr_expect_eq(bad, 0, "%d mismatches", bad);
	cr_expect_eq(t->token_ids[7], 1007);
	char buf[32];
	cr_assert_eq(trace_read_text(p, "prompt", buf, sizeof buf, &e), 0);
	cr_expect_str_eq(buf, "hello");
	trace_free(t);
}

Test(trace, streaming_writer_leaves_a_valid_shorter_trace_when_interrupted)
{
	const char *p = tu_path("stream.h5");
	struct trace_meta m;
	struct lif_err e = {0};
	meta_for(&m, 0);
	struct trace_writer *w = trace_writer_open(p, &m, TRACE_WRITE_STREAMING, &e);
	cr_assert(w);
	uint8_t bits[L * 26] = {0};
	for (int t = 0; t < 40; t++)
		cr_assert_eq(trace_writer_append(w, t, bits, NULL, NULL, &e), 0, "%s", e.msg);
	/* simulate a crash: copy the file as it is on disk before close */
	char cmd[512];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, tu_path("crashed.h5"));
	cr_assert_eq(system(cmd), 0);
	trace_writer_abort(w);
	struct trace_meta got;
	cr_assert_eq(trace_validate(tu_path("crashed.h5"), &got, &e), 0, "%s", e.msg);
	cr_expect(got.tokens >= 32 && got.tokens <= 40, "tokens %lld", (long long)got.tokens);
}

Test(trace, failed_write_leaves_no_output_file)
{
	const char *p = tu_path("aborted.h5");
	struct trace_meta m;
	struct lif_err e = {0};
	meta_for(&m, TRACE_HAS_MAGNITUDES);
	struct trace_writer *w = trace_writer_open(p, &m, 0, &e);
	cr_assert(w);
	uint8_t bits[L * 26] = {0};
	cr_expect_neq(trace_writer_append(w, 0, bits, NULL, NULL, &e), 0); /* band missing */
	cr_expect(strstr(e.msg, "band (magnitudes) declared but not given") != NULL, "%s", e.msg);
	trace_writer_abort(w);
	cr_expect_neq(access(p, F_OK), 0);
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	cr_expect_neq(access(tmp, F_OK), 0);
}

/* Overwrite an int attribute of an existing trace. */
static void poke_attr_int(const char *path, const char *name, long long v)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	cr_assert(f >= 0);
	hid_t a = H5Aopen(f, name, H5P_DEFAULT);
	cr_assert(a >= 0);
	cr_assert(H5Awrite(a, H5T_NATIVE_LLONG, &v) >= 0);
	H5Aclose(a);
	H5Fclose(f);
}

static void copy_prefix(const char *src, const char *dst, double frac)
{
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	cr_assert(in && out);
	fseek(in, 0, SEEK_END);
	long n = ftell(in);
	fseek(in, 0, SEEK_SET);
	char *buf = malloc(n);
	cr_assert_eq(fread(buf, 1, n, in), (size_t)n);
	fwrite(buf, 1, (size_t)(n * frac), out);
	free(buf);
	fclose(in);
	fclose(out);
}

static void expect_load_error(const char *path, const char *want)
{
	struct lif_err e = {0};
	struct trace *t = trace_load(path, TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, &e);
	cr_expect_null(t);
	cr_expect(strstr(e.msg, want) != NULL, "message '%s' lacks '%s'", e.msg, want);
	cr_expect(strstr(e.msg, path) != NULL, "message '%s' does not name the file", e.msg);
	trace_free(t);
}

Test(trace, missing_file_is_a_clear_error)
{
	expect_load_error(tu_path("nope.h5"), "cannot open");
}

Test(trace, non_hdf5_file_is_rejected)
{
	expect_load_error(tu_write("text.h5", "this is not hdf5\n"), "not an HDF5 file, or truncated");
}

Test(trace, truncated_file_is_rejected)
{
	const char *p = tu_path("full.h5"), *q = tu_path("trunc.h5");
	write_trace(p, T, 0, TRACE_HAS_MAGNITUDES | TRACE_HAS_INPUTS);
	copy_prefix(p, q, 0.5);
	struct lif_err e = {0};
	cr_expect_null(trace_load(q, 0, &e));
	cr_expect(strstr(e.msg, q) && (strstr(e.msg, "truncated") || strstr(e.msg, "corrupt")),
		  "%s", e.msg);
}

Test(trace, corrupt_chunk_is_rejected)
{
	const char *p = tu_path("corrupt.h5");
	write_trace(p, T, 0, 0);
	hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t d = H5Dopen2(f, "active", H5P_DEFAULT);
	hsize_t off[3] = {0, 1, 0};
	haddr_t addr;
	hsize_t size;
	unsigned mask;
	cr_assert(H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) >= 0);
	H5Dclose(d);
	H5Fclose(f);
	FILE *fp = fopen(p, "r+b");
	fseek(fp, (long)addr + 2, SEEK_SET);
	for (hsize_t i = 2; i < size; i++)
		fputc(0xA5, fp);
	fclose(fp);
	expect_load_error(p, "dataset 'active' is corrupt");
}

Test(trace, newer_schema_version_is_rejected)
{
	const char *p = tu_path("v3.h5");
	write_trace(p, 10, 0, 0);
	poke_attr_int(p, "schema_version", 3);
	expect_load_error(p, "trace schema version 3, this lifsim reads 1..2");
}

Test(trace, version_1_traces_are_still_read)
{
	const char *p = tu_path("v1.h5");
	write_trace(p, 10, 0, 0);
	poke_attr_int(p, "schema_version", 1);
	struct lif_err e = {0};
	struct trace *t = trace_load(p, 0, &e);
	cr_assert_not_null(t, "%s", e.msg);
	cr_expect_eq(t->meta.tokens, 10);
	trace_free(t);
}

Test(trace, token_count_mismatch_is_rejected)
{
	const char *p = tu_path("mismatch.h5");
	write_trace(p, 10, 0, 0);
	poke_attr_int(p, "tokens", 11);
	expect_load_error(p, "dataset 'tokens' is int32 [10], the attributes claim int32 [11]");
}

Test(trace, layer_count_mismatch_is_rejected)
{
	const char *p = tu_path("layers.h5");
	write_trace(p, 10, 0, 0);
	poke_attr_int(p, "layers", 4);
	expect_load_error(p, "dataset 'active' is uint8 [10,3,26], the attributes claim uint8 [10,4,26]");
}

Test(trace, absurd_dimensions_are_rejected)
{
	const char *p = tu_path("absurd.h5");
	write_trace(p, 10, 0, 0);
	poke_attr_int(p, "d_ffn", -5);
	expect_load_error(p, "d_ffn -5 outside");
}

Test(trace, wrong_schema_is_rejected)
{
	const char *p = tu_path("other.h5");
	hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	H5Fclose(f);
	expect_load_error(p, "not a lifsim trace");
}

Test(trace, bits_past_d_ffn_are_rejected)
{
	const char *p = tu_path("pad.h5");
	struct trace_meta m;
	struct lif_err e = {0};
	meta_for(&m, 0);
	struct trace_writer *w = trace_writer_open(p, &m, 0, &e);
	uint8_t bits[L * 26] = {0};
	bits[25] = 0x80; /* neuron 207 of layer 0 does not exist */
	cr_assert_eq(trace_writer_append(w, 0, bits, NULL, NULL, &e), 0);
	cr_assert_eq(trace_writer_close(w, &e), 0);
	expect_load_error(p, "bits set past d_ffn=203");
}

Test(trace, band_codes_map_to_levels_by_distance_from_threshold)
{
	const double m = 1.0;
	cr_expect_eq(trace_level_of_code(trace_mag_encode(-2.0, m)), 0);
	cr_expect_eq(trace_level_of_code(trace_mag_encode(-0.9, m)), 1);
	cr_expect_eq(trace_level_of_code(trace_mag_encode(-0.5, m)), 2);
	cr_expect_eq(trace_level_of_code(trace_mag_encode(-0.1, m)), 3);
	cr_expect_eq(trace_level_of_code(trace_mag_encode(0.1, m)), 3);
	cr_expect_eq(trace_level_of_code(trace_mag_encode(0.5, m)), 2);
	cr_expect_eq(trace_level_of_code(trace_mag_encode(0.9, m)), 1);
	cr_expect_eq(trace_level_of_code(trace_mag_encode(5.0, m)), 0);
	cr_expect_geq(trace_mag_encode(1e-6, m), TRACE_MAG_ZERO);
	cr_expect_lt(trace_mag_encode(0.0, m), TRACE_MAG_ZERO);
	for (double z = -0.95; z < 0.95; z += 0.1)
		cr_expect_eq(trace_level_of_code(trace_mag_encode(z, m)), trace_level_of_z((float)z, (float)m),
			     "z=%g", z);
}

Test(trace, null_padded_strings_as_h5py_writes_them_keep_their_last_character)
{
	const char *p = tu_path("nullpad.h5");
	write_trace(p, 5, 0, 0);
	hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
	cr_assert(H5Adelete(f, "model") >= 0);
	hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
	H5Tset_size(t, 4);
	H5Tset_strpad(t, H5T_STR_NULLPAD);
	hid_t a = H5Acreate2(f, "model", t, sp, H5P_DEFAULT, H5P_DEFAULT);
	cr_assert(H5Awrite(a, t, "abcd") >= 0);
	H5Aclose(a), H5Sclose(sp), H5Tclose(t), H5Fclose(f);
	struct lif_err e = {0};
	struct trace *tr = trace_load(p, 0, &e);
	cr_assert(tr, "%s", e.msg);
	cr_expect_str_eq(tr->meta.model, "abcd");
	trace_free(tr);
}

/* The block reader gives the bits and band trace_load gives, for blocks of
 * 1, 5, 64 (one chunk), 100 (across chunks) and the whole trace, and refuses
 * a range past the end. */
Test(trace, the_block_reader_reads_what_trace_load_reads)
{
	struct lif_err e = {0};
	struct llm_desc m;
	cr_assert_eq(llm_load(tu_src("models/llms/opt-125m.ini"), &m, &e), 0, "%s", e.msg);
	m.layers = 3, m.d_ffn = 77; /* a width with padding bits */
	struct synth_params sp;
	synth_defaults(&sp);
	sp.tokens = 203, sp.seed = 5;
	char path[512];
	snprintf(path, sizeof path, "%s/blocks.h5", tu_tmpdir());
	cr_assert_eq(synth_write(&m, &sp, path, 1, NULL, NULL, &e), 0, "%s", e.msg);
	struct trace *t = trace_load(path, TRACE_LOAD_MAGNITUDES, &e);
	cr_assert(t && t->band, "%s", e.msg);
	struct trace_reader *r = trace_reader_open(path, TRACE_LOAD_MAGNITUDES, 2, &e);
	cr_assert(r, "%s", e.msg);
	const struct trace *meta = trace_reader_meta(r);
	cr_assert_eq(meta->meta.tokens, 203);
	cr_assert(meta->bits == NULL && (meta->meta.has & TRACE_HAS_MAGNITUDES));
	const int rb = t->row_bytes, L = t->meta.layers;
	const int64_t blocks[] = {1, 5, 64, 100, 203};
	uint8_t *bits = malloc((size_t)L * 203 * rb), *band = malloc((size_t)L * 203 * 2 * rb);
	for (int b = 0; b < 5; b++)
		for (int64_t t0 = 0; t0 < 203; t0 += blocks[b]) {
			const int64_t n = 203 - t0 < blocks[b] ? 203 - t0 : blocks[b];
			cr_assert_eq(trace_reader_read(r, t0, n, bits, band, &e), 0, "%s", e.msg);
			for (int l = 0; l < L; l++) {
				cr_assert_eq(memcmp(bits + (size_t)l * n * rb, trace_active(t, l, t0), (size_t)n * rb), 0,
					     "block %lld at %lld layer %d: bits differ", (long long)n, (long long)t0, l);
				cr_assert_eq(memcmp(band + (size_t)l * n * 2 * rb, trace_band_row(t, l, t0),
						    (size_t)n * 2 * rb), 0, "block %lld at %lld layer %d: band differs",
					     (long long)n, (long long)t0, l);
			}
		}
	cr_assert_neq(trace_reader_read(r, 200, 4, bits, NULL, &e), 0);
	cr_assert(strstr(e.msg, "blocks.h5"), "%s", e.msg);
	free(bits), free(band);
	trace_reader_close(r);
	trace_free(t);
}
