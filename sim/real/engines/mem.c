/* io_mem: the in-memory engine (sim/real/io.h): the file is read once at open;
 * every request is a memcpy. Exact and deterministic, for tests. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/real/io.h"
#include "sim/base/util.h"

static int mem_open(struct io_engine *e, struct lif_err *err)
{
	char *data = malloc(e->file_bytes ? (size_t)e->file_bytes : 1);
	if (!data)
		return err_set(err, ERR_NOMEM, "%s: out of memory for %lld bytes", e->path,
			       (long long)e->file_bytes);
	for (int64_t done = 0; done < e->file_bytes;) {
		ssize_t k = pread(e->fd, data + done, (size_t)(e->file_bytes - done), done);
		if (k <= 0) {
			free(data);
			return err_set(err, ERR_IO, "%s: cannot read: %s", e->path,
				       k ? strerror(errno) : "file shrank while reading");
		}
		done += k;
	}
	e->priv = data;
	return 0;
}

static void mem_close(struct io_engine *e) { free(e->priv); }

static int mem_read(struct io_engine *e, const struct io_req *r, size_t n, double *lat_ns,
		    struct lif_err *err)
{
	const char *data = e->priv;
	for (size_t i = 0; i < n; i++) {
		double t0 = lat_ns ? util_now_ns() : 0;
		memcpy(r[i].buf, data + r[i].offset, (size_t)r[i].bytes);
		if (lat_ns)
			lat_ns[i] = util_now_ns() - t0;
	}
	return 0;
}

const struct io_ops io_mem_ops = {
	.name = "mem",
	.direct = 0,
	.open = mem_open,
	.close = mem_close,
	.read = mem_read,
};
