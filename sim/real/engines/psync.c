/* io_psync: a pool of threads doing pread(2) (sim/real/io.h). parallelism - 1
 * pool threads plus the caller take requests from a shared counter, so a
 * batch keeps `parallelism` reads outstanding; parallelism 1 uses no
 * thread at all. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/real/io.h"
#include "sim/base/util.h"

struct pool {
	struct io_engine *e;
	pthread_t *th;
	int nth;
	pthread_mutex_t lock;
	pthread_cond_t go, done;
	unsigned long gen;      /* batch generation; workers wait for a new one */
	int quit, busy;         /* busy: workers still on the batch */
	const struct io_req *r; /* the batch */
	size_t n;
	double *lat_ns;
	atomic_size_t next;
	atomic_int failed;
	int err_errno;
	size_t err_req;
};

/* Read one request fully; 0 or an errno (EIO for a short read at EOF). */
static int read_one(int fd, const struct io_req *q)
{
	for (int64_t done = 0; done < q->bytes;) {
		ssize_t k = pread(fd, (char *)q->buf + done, (size_t)(q->bytes - done), q->offset + done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		done += k;
	}
	return 0;
}

/* Take requests until the batch is exhausted. */
static void drain(struct pool *p)
{
	for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->n;) {
		double t0 = util_now_ns();
		int rc = read_one(p->e->fd, &p->r[i]);
		if (p->lat_ns)
			p->lat_ns[i] = util_now_ns() - t0;
		if (rc && !atomic_exchange(&p->failed, 1))
			p->err_errno = rc, p->err_req = i;
	}
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	unsigned long seen = 0;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->quit && p->gen == seen)
			pthread_cond_wait(&p->go, &p->lock);
		if (p->quit) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		seen = p->gen;
		pthread_mutex_unlock(&p->lock);
		drain(p);
		pthread_mutex_lock(&p->lock);
		if (--p->busy == 0)
			pthread_cond_signal(&p->done);
		pthread_mutex_unlock(&p->lock);
	}
}

static void psync_close(struct io_engine *e)
{
	struct pool *p = e->priv;
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->quit = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	free(p->th);
	free(p);
	e->priv = NULL;
}

static int psync_open(struct io_engine *e, struct lif_err *err)
{
	struct pool *p = calloc(1, sizeof *p);
	if (!p || !(p->th = calloc((size_t)e->parallelism, sizeof *p->th))) {
		free(p);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	p->e = e;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	e->priv = p;
	for (int i = 0; i < e->parallelism - 1; i++, p->nth++)
		if (pthread_create(&p->th[i], NULL, worker, p)) {
			psync_close(e);
			return err_set(err, ERR_NOMEM, "cannot start io thread %d of %d", i + 1,
				       e->parallelism - 1);
		}
	return 0;
}

static int psync_read(struct io_engine *e, const struct io_req *r, size_t n, double *lat_ns,
		      struct lif_err *err)
{
	struct pool *p = e->priv;
	p->r = r, p->n = n, p->lat_ns = lat_ns;
	atomic_store(&p->next, 0);
	atomic_store(&p->failed, 0);
	int helpers = n - 1 < (size_t)p->nth ? (int)(n - 1) : p->nth;
	if (helpers > 0) {
		pthread_mutex_lock(&p->lock);
		p->busy = p->nth;
		p->gen++;
		pthread_cond_broadcast(&p->go);
		pthread_mutex_unlock(&p->lock);
	}
	drain(p);
	if (helpers > 0) {
		pthread_mutex_lock(&p->lock);
		while (p->busy)
			pthread_cond_wait(&p->done, &p->lock);
		pthread_mutex_unlock(&p->lock);
	}
	if (atomic_load(&p->failed))
		return err_set(err, ERR_IO, "%s: read %zu (offset %lld, %lld bytes): %s", e->path,
			       p->err_req, (long long)r[p->err_req].offset,
			       (long long)r[p->err_req].bytes, strerror(p->err_errno));
	return 0;
}

const struct io_ops io_psync_ops = {
	.name = "psync",
	.direct = 1,
	.open = psync_open,
	.close = psync_close,
	.read = psync_read,
};
