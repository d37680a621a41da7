/* io engines: same bytes as the file, O_DIRECT alignment errors. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/real/io.h"
#include "sim/real/wfile.h"
#include "tests/testutil.h"

/* A 1 MiB file of seeded random bytes, and its contents. */
static const char *random_file(char **data)
{
	struct lif_err e = {0};
	const char *path = tu_path("io.bin");
	cr_assert_eq(wfile_write_random(path, 1 << 20, 7, &e), 0, "%s", e.msg);
	FILE *f = fopen(path, "rb");
	*data = malloc(1 << 20);
	cr_assert(f && fread(*data, 1, 1 << 20, f) == 1 << 20);
	fclose(f);
	return path;
}

/* Parameters hold arrays, not pointers: Criterion runs each case in a new
 * process, where the parent's pointers mean nothing. */
struct eng {
	char name[16];
};

static struct eng engine_names[] = {{"psync"}, {"io_uring"}, {"mem"}};

ParameterizedTestParameters(io, engines_read_the_bytes_of_the_file)
{
	return cr_make_param_array(struct eng, engine_names, 3);
}

ParameterizedTest(struct eng *name, io, engines_read_the_bytes_of_the_file, .init = tu_init)
{
	char *data;
	struct lif_err e = {0};
	const char *path = random_file(&data);
	struct io_engine *io = io_open(name->name, path, 4, IO_CHECK_ALIGN, &e);
	cr_assert(io, "%s", e.msg);
	cr_expect_eq(io_file_bytes(io), 1 << 20);
	enum { N = 64 };
	struct io_req r[N];
	double lat[N];
	char *buf = io_alloc(N * 16384, 4096);
	uint64_t s = 3;
	for (int i = 0; i < N; i++) {
		s = s * 6364136223846793005ULL + 1;
		int64_t bytes = 4096 * (1 + (int64_t)(s >> 40) % 4);
		int64_t off = (int64_t)((s >> 20) % 200) * 4096;
		r[i] = (struct io_req){off, bytes, buf + i * 16384};
	}
	cr_assert_eq(io_read(io, r, N, lat, &e), 0, "%s", e.msg);
	for (int i = 0; i < N; i++) {
		cr_expect(!memcmp(r[i].buf, data + r[i].offset, (size_t)r[i].bytes), "request %d", i);
		cr_expect(lat[i] >= 0);
	}
	io_close(io);
	free(buf), free(data);
}

struct misalign {
	int64_t offset, bytes;
	int buf_shift;
	char want[96];
};

static struct misalign misaligned[] = {
	{100, 4096, 0, "offset is not a multiple of the 4096-byte block"},
	{4096, 1000, 0, "length is not a multiple of the 4096-byte block"},
	{4096, 4096, 8, "buffer address is not a multiple of the 4096-byte block"},
};

ParameterizedTestParameters(io, misaligned_direct_reads_are_refused_with_the_reason)
{
	return cr_make_param_array(struct misalign, misaligned, 3);
}

ParameterizedTest(struct misalign *m, io, misaligned_direct_reads_are_refused_with_the_reason,
		  .init = tu_init)
{
	char *data;
	struct lif_err e = {0};
	const char *path = random_file(&data);
	char *buf = io_alloc(3 * 4096, 4096);
	for (int k = 0; k < 3; k++) {
		err_clear(&e);
		struct io_engine *io = io_open(engine_names[k].name, path, 2, IO_CHECK_ALIGN, &e);
		cr_assert(io, "%s", e.msg);
		if (io_block_bytes(io) != 4096) { /* the file system asks less: check it anyway */
			io_close(io);
			cr_expect_neq(io_check_aligned(&(struct io_req){m->offset, m->bytes, buf + m->buf_shift},
						       1, 4096, &e), 0);
			cr_expect(strstr(e.msg, m->want), "%s", e.msg);
			continue;
		}
		struct io_req r[2] = {{0, 4096, buf}, {m->offset, m->bytes, buf + 4096 + m->buf_shift}};
		cr_expect_eq(io_read(io, r, 2, NULL, &e), ERR_INVAL, "%s", engine_names[k].name);
		cr_expect(strstr(e.msg, m->want) && strstr(e.msg, "read 1"), "%s", e.msg);
		io_close(io);
	}
	free(buf), free(data);
}

Test(io, reads_past_the_end_and_unknown_engines_are_refused, .init = tu_init)
{
	char *data;
	struct lif_err e = {0};
	const char *path = random_file(&data);
	struct io_engine *io = io_open("mem", path, 1, 0, &e);
	char buf[8192];
	cr_assert(io);
	cr_expect_eq(io_read(io, &(struct io_req){(1 << 20) - 4096, 8192, buf}, 1, NULL, &e), ERR_RANGE);
	cr_expect(strstr(e.msg, "outside the file"), "%s", e.msg);
	io_close(io);
	err_clear(&e);
	cr_expect_null(io_open("aio", path, 1, 0, &e));
	cr_expect(strstr(e.msg, "unknown io engine 'aio'"), "%s", e.msg);
	err_clear(&e);
	cr_expect_null(io_open("psync", tu_path("missing.bin"), 1, 0, &e));
	cr_expect(strstr(e.msg, "missing.bin: cannot open"), "%s", e.msg);
	free(data);
}

Test(io, the_arena_hands_out_aligned_slices_in_turn_and_wraps)
{
	struct lif_err e = {0};
	struct io_arena *a = io_arena_new(40000, &e); /* rounded up to 40960 */
	cr_assert(a, "%s", e.msg);
	cr_expect_eq(a->bytes, 40960);
	char *p0 = io_arena_take(a, 16384), *p1 = io_arena_take(a, 5000), *p2 = io_arena_take(a, 16384);
	cr_expect_eq(p0, a->base);
	cr_expect_eq(p1, a->base + 16384);
	cr_expect_eq(p2, a->base + 16384 + 8192); /* 5000 took two 4 KiB pages */
	cr_expect_eq(io_arena_take(a, 16384), a->base); /* no room at the end: back to the start */
	cr_expect_eq((uintptr_t)p1 % 4096, 0);
	cr_expect_null(io_arena_take(a, 40961));
	io_arena_free(a);
	cr_expect_null(io_arena_new(0, &e));
	cr_expect(strstr(e.msg, "must be > 0"), "%s", e.msg);
}
