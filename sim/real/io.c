/* io: engine lookup, open/close, alignment checks (see sim/real/io.h). */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "sim/real/io.h"

#include "sim/base/conf.h"

const struct io_ops *const io_engines[] = {&io_psync_ops, &io_uring_ops, &io_mem_ops, NULL};

const char *io_engine_choice(int i)
{
	int n = (int)(sizeof io_engines / sizeof *io_engines) - 1;
	return i >= 0 && i < n ? io_engines[i]->name : NULL;
}

const struct io_ops *io_find(const char *name)
{
	for (int i = 0; io_engines[i]; i++)
		if (!strcmp(io_engines[i]->name, name))
			return io_engines[i];
	return NULL;
}

void *io_alloc(size_t bytes, size_t align)
{
	void *p = NULL;
	if (posix_memalign(&p, align, bytes ? bytes : align))
		return NULL;
	return p;
}

struct io_arena *io_arena_new(int64_t bytes, struct lif_err *err)
{
	struct io_arena *a = calloc(1, sizeof *a);
	size_t n = bytes > 0 ? ((size_t)bytes + 4095) / 4096 * 4096 : 0;
	if (!n) {
		free(a);
		err_set(err, ERR_RANGE, "io arena of %lld bytes: must be > 0", (long long)bytes);
		return NULL;
	}
	if (!a || !(a->base = io_alloc(n, 4096))) {
		free(a);
		err_set(err, ERR_NOMEM, "out of memory for a %.3g GB io arena", n / 1e9);
		return NULL;
	}
	memset(a->base, 0, n);
	a->bytes = n;
	return a;
}

void io_arena_free(struct io_arena *a)
{
	if (a)
		free(a->base);
	free(a);
}

void *io_arena_take(struct io_arena *a, int64_t bytes)
{
	size_t n = bytes > 0 ? ((size_t)bytes + 4095) / 4096 * 4096 : 4096;
	if (n > a->bytes)
		return NULL;
	if (a->next + n > a->bytes)
		a->next = 0;
	void *p = a->base + a->next;
	a->next += n;
	return p;
}

/* The direct I/O alignment of fd: statx's STATX_DIOALIGN where the kernel
 * and file system report it, else IO_DEFAULT_BLOCK. */
static int64_t dio_block(int fd)
{
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (!statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) && (sx.stx_mask & STATX_DIOALIGN) &&
	    sx.stx_dio_offset_align > 0) {
		int64_t b = sx.stx_dio_offset_align;
		return b > (int64_t)sx.stx_dio_mem_align ? b : (int64_t)sx.stx_dio_mem_align;
	}
#endif
	return IO_DEFAULT_BLOCK;
}

struct io_engine *io_open(const char *name, const char *path, int parallelism, int flags,
			  struct lif_err *err)
{
	const struct io_ops *ops = io_find(name);
	if (!ops) {
		char choices[128];
		err_set(err, ERR_INVAL, "unknown io engine '%s' (choices: %s)", name,
			conf_names_join(io_engine_choice, choices, sizeof choices));
		return NULL;
	}
	if (parallelism < 1 || parallelism > IO_MAX_PARALLELISM) {
		err_set(err, ERR_RANGE, "parallelism %d is outside [1, %d]", parallelism,
			IO_MAX_PARALLELISM);
		return NULL;
	}
	struct io_engine *e = calloc(1, sizeof *e);
	if (!e) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	e->ops = ops, e->parallelism = parallelism, e->flags = flags;
	snprintf(e->path, sizeof e->path, "%s", path);
	e->fd = open(path, O_RDONLY | O_CLOEXEC | (ops->direct ? O_DIRECT : 0));
	struct stat st;
	if (e->fd < 0 || fstat(e->fd, &st)) {
		err_set(err, ERR_IO, "%s: cannot open%s: %s", path,
			ops->direct ? " with O_DIRECT" : "", strerror(errno));
		goto fail;
	}
	e->file_bytes = st.st_size;
	e->block = ops->direct || (flags & IO_CHECK_ALIGN) ? dio_block(e->fd) : 1;
	if (ops->open(e, err))
		goto fail;
	return e;
fail:
	if (e->fd >= 0)
		close(e->fd);
	free(e);
	return NULL;
}

void io_close(struct io_engine *e)
{
	if (!e)
		return;
	e->ops->close(e);
	close(e->fd);
	free(e);
}

int io_check_aligned(const struct io_req *r, size_t n, int64_t block, struct lif_err *err)
{
	for (size_t i = 0; block > 1 && i < n; i++) {
		const char *what = (uintptr_t)r[i].buf % (uintptr_t)block ? "buffer address"
				   : r[i].offset % block			  ? "offset"
				   : r[i].bytes % block				  ? "length"
										  : NULL;
		if (what)
			return err_set(err, ERR_INVAL,
				       "O_DIRECT read %zu (offset %lld, %lld bytes, buffer %p): %s is "
				       "not a multiple of the %lld-byte block",
				       i, (long long)r[i].offset, (long long)r[i].bytes, r[i].buf, what,
				       (long long)block);
	}
	return 0;
}

int io_read(struct io_engine *e, const struct io_req *r, size_t n, double *lat_ns,
	    struct lif_err *err)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].bytes <= 0 || r[i].offset < 0 || r[i].offset + r[i].bytes > e->file_bytes)
			return err_set(err, ERR_RANGE,
				       "%s: read %zu (offset %lld, %lld bytes) is outside the file "
				       "(%lld bytes)",
				       e->path, i, (long long)r[i].offset, (long long)r[i].bytes,
				       (long long)e->file_bytes);
	if (io_check_aligned(r, n, e->block, err)) {
		err_prefix(err, "%s", e->path);
		return ERR_INVAL;
	}
	return n ? e->ops->read(e, r, n, lat_ns, err) : 0;
}

int64_t io_block_bytes(const struct io_engine *e) { return e->block; }
int64_t io_file_bytes(const struct io_engine *e) { return e->file_bytes; }
const char *io_engine_name(const struct io_engine *e) { return e->ops->name; }
