/* weight files: round trip with checksums, corruption, room on disk. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/real/wfile.h"
#include "traces/record/safetensors.h"
#include "traces/synth.h"
#include "tests/testutil.h"

/* The tiny model (3 layers x 203 neurons, d_model 64, fp16) and a trace. */
static struct trace *tiny(struct llm_desc *m, int tokens)
{
	struct lif_err e = {0};
	struct synth_params sp;
	cr_assert_eq(llm_load(tu_src("tests/data/tiny.ini"), m, &e), 0, "%s", e.msg);
	synth_defaults(&sp);
	sp.tokens = tokens;
	struct trace *t = synth_generate(m, &sp, 1, &e);
	cr_assert(t, "%s", e.msg);
	return t;
}

/* Arrays, not pointers: each case runs in a new process. */
struct lname {
	char name[16];
};

static struct lname layouts[] = {{"separate"}, {"rowcol"}, {"hot"}, {"coact"}, {"friends"}};

ParameterizedTestParameters(wfile, round_trip_keeps_geometry_order_weights_and_checksums)
{
	return cr_make_param_array(struct lname, layouts, 5);
}

ParameterizedTest(struct lname *name, wfile, round_trip_keeps_geometry_order_weights_and_checksums,
		  .init = tu_init)
{
	struct llm_desc m;
	struct lif_err e = {0};
	struct trace *t = tiny(&m, 40);
	struct layout *l = layout_new(layout_find(name->name)->kind, &m, t, 2, 30, 1, &e);
	cr_assert(l, "%s", e.msg);
	const char *path = tu_path("w.lsw");
	cr_assert_eq(wfile_write(path, &m, l, 5, 2, NULL, NULL, &e), 0, "%s", e.msg);
	cr_expect_neq(access(tu_path("w.lsw.tmp"), F_OK), 0, "no temporary file left");
	struct wfile *w = wfile_open(path, &e);
	cr_assert(w, "%s", e.msg);
	const struct wfile_info *i = wfile_info(w);
	cr_expect_eq(i->layout, l->kind);
	cr_expect_eq(i->layers, 3);
	cr_expect_eq(i->d_ffn, 203);
	cr_expect_eq(i->d_model, 64);
	cr_expect_eq(i->dtype, LLM_FP16);
	cr_expect_eq(i->seed, 5);
	cr_expect_eq(i->ffn_offset % 4096, 0);
	cr_expect_eq(wfile_match(w, l, &m, &e), 0, "%s", e.msg);
	/* the FFN region, byte for byte */
	const int64_t ffn = l->layer_bytes * m.layers;
	char *buf = malloc((size_t)ffn), piece[128];
	FILE *f = fopen(path, "rb");
	cr_assert(f && !fseek(f, i->ffn_offset, SEEK_SET) && fread(buf, 1, (size_t)ffn, f) == (size_t)ffn);
	fclose(f);
	cr_expect_eq(wfile_verify(w, 0, buf, ffn, &e), 0, "%s", e.msg);
	for (int layer = 0; layer < 3; layer++)
		for (int n = 0; n < 203; n += 17)
			for (int k = 0; k < 2; k++) { /* up column, down row */
				wfile_piece(5, layer, k, n, LLM_FP16, piece, 128);
				int r = l->regions > 1 ? k : 0;
				int64_t at = layout_offset(l, layer, r, l->pos[layer * 203 + n]) + (l->regions > 1 ? 0 : k * 128);
				cr_expect(!memcmp(buf + at, piece, 128), "layer %d neuron %d matrix %d", layer, n, k);
			}
	free(buf);
	wfile_close(w);
	layout_free(l);
	trace_free(t);
}

/* Write a rowcol file of the tiny model; returns its path. */
static const char *tiny_file(struct llm_desc *m, struct layout **l)
{
	struct lif_err e = {0};
	struct trace *t = tiny(m, 10);
	*l = layout_new(LAYOUT_ROWCOL, m, NULL, 1, 10, 1, &e);
	cr_assert(*l, "%s", e.msg);
	const char *path = tu_path("r.lsw");
	cr_assert_eq(wfile_write(path, m, *l, 1, 1, NULL, NULL, &e), 0, "%s", e.msg);
	trace_free(t);
	return path;
}

static void poke(const char *path, long off, int delta)
{
	FILE *f = fopen(path, "r+b");
	cr_assert(f && !fseek(f, off, SEEK_SET));
	int c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc((c + delta) & 0xff, f);
	fclose(f);
}

Test(wfile, a_corrupt_byte_is_caught_with_its_place, .init = tu_init)
{
	struct llm_desc m;
	struct layout *l;
	struct lif_err e = {0};
	const char *path = tiny_file(&m, &l);
	struct wfile *w = wfile_open(path, &e);
	cr_assert(w, "%s", e.msg);
	const int64_t ffn_off = wfile_info(w)->ffn_offset, at = layout_offset(l, 1, 0, 7) + 100;
	poke(path, (long)(ffn_off + at), 1);
	char buf[256];
	FILE *f = fopen(path, "rb");
	cr_assert(f && !fseek(f, (long)(ffn_off + layout_offset(l, 1, 0, 7)), SEEK_SET) && fread(buf, 1, 256, f) == 256);
	fclose(f);
	cr_expect_eq(wfile_verify(w, layout_offset(l, 1, 0, 7), buf, 256, &e), ERR_FORMAT);
	cr_expect(strstr(e.msg, "checksum mismatch at layer 1 region 0 slot 7"), "%s", e.msg);
	wfile_close(w);
	layout_free(l);
}

struct damage {
	long off;      /* < 0: truncate by -off bytes */
	char want[64];
};

static struct damage damages[] = {
	{0, "not a lifsim weight file"},
	{20, "corrupt header (checksum mismatch)"},
	{-4096, "truncated or not completely written"},
};

ParameterizedTestParameters(wfile, a_damaged_file_is_refused_with_a_clear_message)
{
	return cr_make_param_array(struct damage, damages, 3);
}

ParameterizedTest(struct damage *d, wfile, a_damaged_file_is_refused_with_a_clear_message, .init = tu_init)
{
	struct llm_desc m;
	struct layout *l;
	struct lif_err e = {0};
	const char *path = tiny_file(&m, &l);
	if (d->off >= 0) {
		poke(path, d->off, 1);
	} else {
		FILE *f = fopen(path, "rb");
		fseek(f, 0, SEEK_END);
		long size = ftell(f);
		fclose(f);
		cr_assert_eq(truncate(path, size + d->off), 0);
	}
	cr_expect_null(wfile_open(path, &e));
	cr_expect(strstr(e.msg, d->want) && strstr(e.msg, "r.lsw"), "%s", e.msg);
	layout_free(l);
}

Test(wfile, no_room_on_disk_is_refused_before_writing)
{
	struct lif_err e = {0};
	cr_expect_eq(wfile_check_room("/data/w.lsw", 8600000000LL, 2000000000LL, &e), ERR_NOSPACE);
	cr_expect(strstr(e.msg, "/data/w.lsw: not enough room on disk: needs 8.600 GB, the disk has "
			 "2.000 GB free"), "%s", e.msg);
	err_clear(&e);
	cr_expect_eq(wfile_check_room("/data/w.lsw", 1000, WFILE_SPARE_BYTES + 1000, &e), 0);
	cr_expect_eq(wfile_check_room("/data/w.lsw", 1001, WFILE_SPARE_BYTES + 1000, &e), ERR_NOSPACE);
	err_clear(&e);
	cr_expect_gt(wfile_free_bytes(tu_path("x"), &e), 0, "%s", e.msg);
}

Test(wfile, a_file_of_another_layout_or_order_is_refused, .init = tu_init)
{
	struct llm_desc m;
	struct layout *l;
	struct lif_err e = {0};
	const char *path = tiny_file(&m, &l);
	struct trace *t = tiny(&m, 40);
	struct layout *hot = layout_new(LAYOUT_HOT, &m, t, 1, 40, 1, &e);
	struct wfile *w = wfile_open(path, &e);
	cr_assert(w && hot, "%s", e.msg);
	cr_expect_neq(wfile_match(w, hot, &m, &e), 0);
	cr_expect(strstr(e.msg, "written in layout rowcol; the point uses hot"), "%s", e.msg);
	m.d_model = 128, err_clear(&e);
	cr_expect_neq(wfile_match(w, l, &m, &e), 0);
	cr_expect(strstr(e.msg, "d_model 64"), "%s", e.msg);
	wfile_close(w);
	layout_free(l), layout_free(hot);
	trace_free(t);
}

Test(wfile, layout_command_writes_a_file_and_explains_errors, .init = tu_init)
{
	char out[4096], model[4096];
	snprintf(model, sizeof model, "%s", tu_src("tests/data/tiny.ini"));
	cr_expect_eq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol -o %s", model, tu_path("c.lsw")), 0, "%s", out);
	cr_expect(strstr(out, "layout rowcol, 3 layers x 203 neurons"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "layout %s --layout hot -o %s", model, tu_path("h.lsw")), 0);
	cr_expect(strstr(out, "give --trace"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "layout %s --layout zigzag -o %s", model, tu_path("h.lsw")), 0);
	cr_expect(strstr(out, "--layout: 'zigzag' is not one of separate|rowcol|hot|coact|friends"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol --checkpoint /x -o %s", model, tu_path("h.lsw")), 0);
	cr_expect(strstr(out, "/x"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol -o /nonexistent/dir/h.lsw", model), 0);
	cr_expect(strstr(out, "/nonexistent/dir"), "%s", out);
}

Test(wfile, a_checkpoints_ffn_lands_where_the_layout_says, .init = tu_init)
{
	char out[4096], model[4096], ckpt[4096];
	struct lif_err e = {0};
	snprintf(model, sizeof model, "%s", tu_src("models/llms/tinylm.ini"));
	snprintf(ckpt, sizeof ckpt, "%s", tu_src("traces/tinylm"));
	const char *path = tu_path("ck.lsw");
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol --checkpoint %s -o %s", model,
			       ckpt, path), 0, "%s", out);
	struct wfile *w = wfile_open(path, &e);
	struct st_file *st = st_open(ckpt, &e);
	cr_assert(w && st, "%s", e.msg);
	const struct wfile_info *i = wfile_info(w);
	const int64_t ffn = i->layer_bytes * i->layers;
	char *buf = malloc((size_t)ffn);
	FILE *f = fopen(path, "rb");
	cr_assert(f && !fseek(f, i->ffn_offset, SEEK_SET) && fread(buf, 1, (size_t)ffn, f) == (size_t)ffn);
	fclose(f);
	cr_expect_eq(wfile_verify(w, 0, buf, ffn, &e), 0, "%s", e.msg);
	const uint16_t *fc1 = st_find(st, "model.decoder.layers.1.fc1.weight")->data;
	const uint16_t *fc2 = st_find(st, "model.decoder.layers.1.fc2.weight")->data;
	const uint16_t *row = (const uint16_t *)(buf + i->layer_bytes + 5 * i->slot_bytes); /* rowcol: slot = neuron */
	for (int k = 0; k < 256; k++) {
		cr_expect_eq(row[k], fc1[5 * 256 + k], "up %d", k);
		cr_expect_eq(row[256 + k], fc2[k * 1024 + 5], "down %d", k);
	}
	free(buf);
	st_close(st);
	wfile_close(w);
	cr_expect_neq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol --checkpoint %s --dtype bf16 -o %s",
				model, ckpt, path), 0);
	cr_expect(strstr(out, "fc1.weight is F16 but the model stores bf16"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol --checkpoint %s -o %s",
				tu_src("tests/data/tiny.ini"), ckpt, path), 0);
	cr_expect(strstr(out, "traces/tinylm"), "%s", out);
}

/* Version 2 checks every byte (issue 13: the last bytes were not covered):
 * the last byte (in the sums table), a byte of the pos table, a byte of the
 * padding after the header and the one between the slots and the tables. */
Test(wfile, every_byte_is_covered_the_last_one_too, .init = tu_init)
{
	struct llm_desc m;
	struct layout *l;
	struct lif_err e = {0};
	const char *path = tiny_file(&m, &l);
	struct wfile *w = wfile_open(path, &e);
	cr_assert(w, "%s", e.msg);
	const struct wfile_info *in = wfile_info(w);
	cr_expect_eq(in->version, 2);
	const long last = (long)in->file_bytes - 1, pos = (long)in->index[1].offset + 5,
		   pad_hdr = 4000, pad_ffn = (long)(in->index[0].offset + in->index[0].bytes);
	const char *want[4] = {"corrupt tables", "corrupt tables", "corrupt padding", "corrupt padding"};
	const long at[4] = {last, pos, pad_hdr, pad_ffn};
	wfile_close(w);
	cr_assert_lt(pad_ffn, (long)in->index[1].offset, "the tiny file has padding after its slots");
	for (int i = 0; i < 4; i++) {
		poke(path, at[i], 1);
		e = (struct lif_err){0};
		cr_expect_null(wfile_open(path, &e), "byte %ld flipped", at[i]);
		cr_expect(strstr(e.msg, want[i]), "byte %ld: %s", at[i], e.msg);
		poke(path, at[i], -1); /* put it back */
		e = (struct lif_err){0};
		w = wfile_open(path, &e);
		cr_expect(w, "restored: %s", e.msg);
		wfile_close(w);
	}
	layout_free(l);
}
