/*
 * io: the real path's io engines, one const vtable each (after fio's
 * ioengine_ops), found by name in io_engines[]:
 *   psync     a pool of `parallelism` threads (the caller's included), each
 *             taking the next request of the batch and doing pread(2);
 *   io_uring  liburing, one ring whose queue depth is `parallelism`: the
 *             batch is kept `parallelism` deep until it drains;
 *   mem       the whole file read into memory once at open, every read a
 *             memcpy: exact and deterministic, for tests (after sqlite's
 *             memdb VFS). Its latencies are the memcpy times.
 * psync and io_uring open the file with O_DIRECT, so every request's
 * buffer address, offset and length must be multiples of the file's direct
 * I/O block (io_block_bytes: statx STATX_DIOALIGN, else 4096); a misaligned
 * request fails the whole batch before anything is read, with a message
 * naming the request and the block. mem checks the same alignment when
 * opened with IO_CHECK_ALIGN, so tests see the same errors.
 *
 * A batch is a list of requests (offset, bytes, destination); io_read
 * returns when all are done, with every byte read (short reads are retried;
 * reading past the end of the file is an error). lat_ns (optional) receives
 * each request's latency: submit to completion, in ns.
 */
#ifndef LIFSIM_IO_H
#define LIFSIM_IO_H

#include <stddef.h>
#include <stdint.h>

#include "sim/base/err.h"

#define IO_DEFAULT_BLOCK 4096
#define IO_MAX_PARALLELISM 1024
#define IO_CHECK_ALIGN 1 /* flag: mem engine checks O_DIRECT alignment too */

struct io_req {
	int64_t offset; /* in the file */
	int64_t bytes;  /* > 0 */
	void *buf;      /* destination, bytes long */
};

struct io_engine; /* an open file with its engine's state */

struct io_ops {
	const char *name;
	int direct; /* opens with O_DIRECT */
	/* Set up e's private state for e->fd / e->path at e->parallelism. */
	int (*open)(struct io_engine *e, struct lif_err *err);
	void (*close)(struct io_engine *e);
	/* Serve n checked requests; fill lat_ns (may be NULL). */
	int (*read)(struct io_engine *e, const struct io_req *r, size_t n, double *lat_ns,
		    struct lif_err *err);
};

/* The engines ("psync", "io_uring", "mem") and lookup by name. */
extern const struct io_ops *const io_engines[];
const struct io_ops *io_find(const char *name);
/* The name of io_engines[i], or NULL past the last (a conf_names_fn). */
const char *io_engine_choice(int i);

/* Open path for reading with engine `name` and `parallelism` (1 to
 * IO_MAX_PARALLELISM) outstanding requests. flags: IO_CHECK_ALIGN. */
struct io_engine *io_open(const char *name, const char *path, int parallelism, int flags,
			  struct lif_err *err);
void io_close(struct io_engine *e);

/* Read a batch (see the top of this header). */
int io_read(struct io_engine *e, const struct io_req *r, size_t n, double *lat_ns,
	    struct lif_err *err);

int64_t io_block_bytes(const struct io_engine *e); /* alignment required (1: none) */
int64_t io_file_bytes(const struct io_engine *e);
const char *io_engine_name(const struct io_engine *e);

/* Check that every request is aligned to block (> 0) for O_DIRECT; the
 * message names the first bad request and what is misaligned. */
int io_check_aligned(const struct io_req *r, size_t n, int64_t block, struct lif_err *err);

/* Allocate bytes aligned to `align` (a power of two >= sizeof(void *));
 * free with free(). NULL when out of memory. */
void *io_alloc(size_t bytes, size_t align);

/* An arena: a ring of DRAM that reads land in, slice after slice, so that
 * memory is a read's target again only after the whole ring has gone by.
 * On this host's virtual disk a read into memory that was a read's target
 * a few milliseconds before runs up to 2x slower (64 KiB x 32 random reads:
 * about 1000 MiB/s into an 8-64 MiB pool, 1500-1800 into 1 GiB;
 * experiments/README.md, "host-validate.ini"), and a model runs with its
 * reads landing in gigabytes of preallocated matrices. So calibrate, the
 * drift probes and the replay read through one arena of the same size. */
#define IO_ARENA_DEFAULT (1LL << 30)
struct io_arena {
	char *base;
	size_t bytes, next;
};

/* A ring of `bytes` (> 0, rounded up to 4 KiB), its pages touched now so
 * that no read pays their first fault. NULL (err set) when out of memory. */
struct io_arena *io_arena_new(int64_t bytes, struct lif_err *err);
void io_arena_free(struct io_arena *a);

/* The next `bytes` of the ring, contiguous and 4 KiB-aligned (back to the
 * start when the end has no room); NULL when bytes exceeds the ring. */
void *io_arena_take(struct io_arena *a, int64_t bytes);

/* ---- for engine implementations (sim/io_*.c) ---- */
struct io_engine {
	const struct io_ops *ops;
	char path[4096];
	int fd;
	int parallelism;
	int flags;
	int64_t block;      /* required alignment */
	int64_t file_bytes;
	void *priv;         /* the engine's state */
};

extern const struct io_ops io_psync_ops, io_uring_ops, io_mem_ops;

#endif
