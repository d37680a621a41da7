/*
 * faultinj: an LD_PRELOAD library for the tests that makes writes fail the
 * way a full or failing disk does, in any verb, below lifsim and libhdf5.
 *
 *   LIFSIM_FAULT=KIND:N      KIND is enospc, eio, short or fsync; N bytes
 *                            are written before the failure
 *   LIFSIM_FAULT_MATCH=TEXT  only files whose path contains TEXT fail
 *                            (the test's output directory)
 *
 * enospc and eio: once N bytes have gone to matching files, every further
 * write fails with that errno. short: the write that crosses N writes only
 * what fits and returns the short count; the next one fails with ENOSPC (a
 * disk filling up). fsync: writes succeed, fsync and fdatasync fail with EIO
 * (a write-back error reported late, as on NFS or a dying disk).
 *
 * Writes go through write, pwrite, writev and, for streams, fopen: a
 * matching file opened for writing with fopen is a fopencookie stream over
 * these functions, since glibc's own stdio calls the system call directly.
 */
#ifndef _GNU_SOURCE /* (configure may have defined it) */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXFD 4096

static unsigned char tracked[MAXFD];
static long long budget = -1;
static int kind; /* 0 none, 'n' enospc, 'e' eio, 's' short, 'f' fsync */
static const char *match;
static int ready;

static void setup(void)
{
	if (ready)
		return;
	ready = 1;
	const char *f = getenv("LIFSIM_FAULT");
	match = getenv("LIFSIM_FAULT_MATCH");
	if (!f || !match || !*match)
		return;
	const char *colon = strchr(f, ':');
	budget = colon ? atoll(colon + 1) : 0;
	if (!strncmp(f, "enospc", 6))
		kind = 'n';
	else if (!strncmp(f, "eio", 3))
		kind = 'e';
	else if (!strncmp(f, "short", 5))
		kind = 's';
	else if (!strncmp(f, "fsync", 5))
		kind = 'f';
}

#define REAL(name) \
	static __typeof__(name) *real_##name; \
	if (!real_##name) \
		real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static void track(int fd, const char *path, int flags)
{
	setup();
	if (fd >= 0 && fd < MAXFD)
		tracked[fd] = kind && path && strstr(path, match) &&
			     (kind == 'f' || (flags & (O_WRONLY | O_RDWR)));
}

/* How many of n bytes may be written to fd now; -1 with errno set to fail. */
static ssize_t allow(int fd, size_t n)
{
	setup();
	if (!kind || kind == 'f' || fd < 0 || fd >= MAXFD || !tracked[fd])
		return (ssize_t)n;
	if (budget >= (long long)n) {
		budget -= (long long)n;
		return (ssize_t)n;
	}
	if (kind == 's' && budget > 0) {
		ssize_t part = (ssize_t)budget;
		budget = 0;
		return part;
	}
	errno = kind == 'e' ? EIO : ENOSPC;
	return -1;
}

int open(const char *path, int flags, ...)
{
	REAL(open);
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (flags & O_CREAT) ? va_arg(ap, mode_t) : 0;
	va_end(ap);
	int fd = real_open(path, flags, mode);
	track(fd, path, flags);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	REAL(open64);
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (flags & O_CREAT) ? va_arg(ap, mode_t) : 0;
	va_end(ap);
	int fd = real_open64(path, flags, mode);
	track(fd, path, flags);
	return fd;
}

int openat(int dir, const char *path, int flags, ...)
{
	REAL(openat);
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (flags & O_CREAT) ? va_arg(ap, mode_t) : 0;
	va_end(ap);
	int fd = real_openat(dir, path, flags, mode);
	track(fd, path, flags);
	return fd;
}

int creat(const char *path, mode_t mode)
{
	return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int close(int fd)
{
	REAL(close);
	if (fd >= 0 && fd < MAXFD)
		tracked[fd] = 0;
	return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	REAL(write);
	ssize_t k = allow(fd, n);
	return k < 0 ? -1 : real_write(fd, buf, (size_t)k);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite);
	ssize_t k = allow(fd, n);
	return k < 0 ? -1 : real_pwrite(fd, buf, (size_t)k, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite64);
	ssize_t k = allow(fd, n);
	return k < 0 ? -1 : real_pwrite64(fd, buf, (size_t)k, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	/* through write: a short count is the caller's to handle */
	ssize_t done = 0;
	for (int i = 0; i < cnt; i++) {
		ssize_t k = write(fd, iov[i].iov_base, iov[i].iov_len);
		if (k < 0)
			return done ? done : -1;
		done += k;
		if ((size_t)k < iov[i].iov_len)
			break;
	}
	return done;
}

int fsync(int fd)
{
	REAL(fsync);
	setup();
	if (kind == 'f' && fd >= 0 && fd < MAXFD && tracked[fd]) {
		errno = EIO;
		return -1;
	}
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(fdatasync);
	setup();
	if (kind == 'f' && fd >= 0 && fd < MAXFD && tracked[fd]) {
		errno = EIO;
		return -1;
	}
	return real_fdatasync(fd);
}

/* streams over a tracked descriptor */
#define MAXSTREAMS 64
static struct {
	FILE *f;
	int fd;
} streams[MAXSTREAMS];

static ssize_t ck_read(void *c, char *buf, size_t n)
{
	return read((int)(long)c, buf, n);
}

static ssize_t ck_write(void *c, const char *buf, size_t n)
{
	/* fopencookie wants n, or 0 / -1 for an error */
	size_t done = 0;
	while (done < n) {
		ssize_t k = write((int)(long)c, buf + done, n - done);
		if (k <= 0)
			return done ? (ssize_t)done : -1;
		done += (size_t)k;
	}
	return (ssize_t)done;
}

static int ck_seek(void *c, off64_t *off, int whence)
{
	off_t r = lseek((int)(long)c, *off, whence);
	if (r < 0)
		return -1;
	*off = r;
	return 0;
}

static int ck_close(void *c)
{
	return close((int)(long)c);
}

static FILE *stream(const char *path, const char *mode, FILE *(*real)(const char *, const char *))
{
	setup();
	int wr = strpbrk(mode, "wa+") != NULL;
	if (!kind || !path || !strstr(path, match) || !wr)
		return real(path, mode);
	int flags = strchr(mode, '+') ? O_RDWR : O_WRONLY;
	if (mode[0] == 'w')
		flags |= O_CREAT | O_TRUNC;
	else if (mode[0] == 'a')
		flags |= O_CREAT | O_APPEND;
	if (strchr(mode, 'e'))
		flags |= O_CLOEXEC;
	int fd = open(path, flags, 0666);
	if (fd < 0)
		return NULL;
	cookie_io_functions_t io = {ck_read, ck_write, ck_seek, ck_close};
	FILE *f = fopencookie((void *)(long)fd, mode, io);
	if (!f) {
		close(fd);
		return NULL;
	}
	for (int i = 0; i < MAXSTREAMS; i++)
		if (!streams[i].f) {
			streams[i].f = f;
			streams[i].fd = fd;
			break;
		}
	return f;
}

/* fileno of a cookie stream is -1: give the descriptor (atomic.c fsyncs it) */
int fileno(FILE *f)
{
	REAL(fileno);
	for (int i = 0; i < MAXSTREAMS; i++)
		if (f && streams[i].f == f)
			return streams[i].fd;
	return real_fileno(f);
}

int fclose(FILE *f)
{
	REAL(fclose);
	for (int i = 0; i < MAXSTREAMS; i++)
		if (f && streams[i].f == f)
			streams[i].f = NULL;
	return real_fclose(f);
}

FILE *fopen(const char *path, const char *mode)
{
	REAL(fopen);
	return stream(path, mode, real_fopen);
}

FILE *fopen64(const char *path, const char *mode)
{
	REAL(fopen64);
	return stream(path, mode, real_fopen64);
}
