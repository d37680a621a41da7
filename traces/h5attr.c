#include "traces/h5attr.h"

#include "sim/base/envvar.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/base/claim.h"

int h5attr_put(hid_t obj, const char *name, hid_t type, hsize_t n, const void *v)
{
	hid_t sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
	hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
	herr_t rc = a < 0 ? -1 : H5Awrite(a, type, v);
	if (a >= 0)
		H5Aclose(a);
	H5Sclose(sp);
	return rc < 0 ? -1 : 0;
}

int h5attr_put_str(hid_t obj, const char *name, const char *s)
{
	hid_t t = H5Tcopy(H5T_C_S1);
	H5Tset_size(t, H5T_VARIABLE);
	H5Tset_cset(t, H5T_CSET_UTF8);
	int rc = h5attr_put(obj, name, t, 0, &s);
	H5Tclose(t);
	return rc;
}

int h5attr_set_i64(hid_t obj, const char *name, int64_t v)
{
	if (H5Aexists(obj, name) > 0) {
		hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
		herr_t rc = H5Awrite(a, H5T_NATIVE_INT64, &v);
		H5Aclose(a);
		return rc < 0 ? -1 : 0;
	}
	return h5attr_put(obj, name, H5T_NATIVE_INT64, 0, &v);
}

int h5attr_get(hid_t obj, const char *name, hid_t memtype, hsize_t n, void *v)
{
	if (H5Aexists(obj, name) <= 0)
		return -1;
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
	hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
	hssize_t np = H5Sget_simple_extent_npoints(sp);
	H5T_class_t cls = H5Tget_class(t);
	herr_t rc = -1;
	/* an integer is asked for: a float in the file (10.5 tokens) is refused */
	int want_int = H5Tget_class(memtype) == H5T_INTEGER;
	if ((hsize_t)np == (n ? n : 1) && (cls == H5T_INTEGER || (cls == H5T_FLOAT && !want_int)))
		rc = H5Aread(a, memtype, v);
	H5Tclose(t);
	H5Sclose(sp);
	H5Aclose(a);
	return rc < 0 ? -1 : 0;
}

double h5attr_time_limit(void)
{
	return envvar_hdf5_time_limit(); /* main() has refused a bad value before a verb runs */
}

/* SIGALRM after s seconds (a child's time limit; fork does not pass timers
 * on, so the parent's own are untouched). */
static void alarm_after(double s)
{
	struct itimerval it = {{0, 0}, {0, 0}};
	it.it_value.tv_sec = (time_t)s;
	it.it_value.tv_usec = (suseconds_t)((s - (double)(time_t)s) * 1e6);
	if (!it.it_value.tv_sec && !it.it_value.tv_usec)
		it.it_value.tv_usec = 1;
	setitimer(ITIMER_REAL, &it, NULL);
}

/* Set in h5attr_isolate's child: the whole read is already isolated, so a
 * string attribute is read directly (a crash or a loop there is the
 * child's, and its parent's verdict). */
static int isolated_child;

static int image_verified(hid_t a);
static int vlen_read_kept(hid_t obj, const char *name, hid_t a, char *buf, size_t cap);

/* fork() with this thread holding libhdf5's global lock. A thread-safe
 * libhdf5 (Debian's is) takes one recursive lock for each API call; forked
 * while another thread holds it, the child's copy stays locked and the
 * child's first libhdf5 call waits until its time limit (a string read
 * beside a thread opening files: 197 of 200 reads timed out, tests/
 * test_hostile.c). Inside the callback of a property-list iteration the
 * lock is this thread's, so no other thread holds it, and the child, a copy
 * of this thread, takes it again freely (it is recursive). The child runs
 * child(arg), which must not return; the parent gets the child's pid, or -1
 * when fork failed. */
struct h5fork {
	void (*child)(void *arg); /* does not return */
	void *arg;
	pid_t pid;
	int forked;
};

static herr_t h5fork_cb(hid_t id, const char *name, void *data)
{
	struct h5fork *h = data;
	(void)id, (void)name;
	h->forked = 1;
	h->pid = fork();
	if (h->pid == 0) {
		h->child(h->arg);
		_exit(1);
	}
	return 1; /* one property is enough: stop */
}

static pid_t fork_h5(void (*child)(void *arg), void *arg)
{
	struct h5fork h = {.child = child, .arg = arg, .pid = -1};
	hid_t pl = H5Pcreate(H5P_FILE_ACCESS);
	int idx = 0;
	fflush(NULL);
	if (pl >= 0) {
		H5Piterate(pl, &idx, h5fork_cb, &h);
		H5Pclose(pl);
	}
	if (!h.forked) { /* no list to iterate (out of memory): fork as it is */
		h.pid = fork();
		if (h.pid == 0) {
			child(arg);
			_exit(1);
		}
	}
	return h.pid;
}

/* A variable-length string attribute read in this process. */
static int vlen_read_direct(hid_t a, hid_t ft, char *buf, size_t cap)
{
	hid_t mt = H5Tcopy(H5T_C_S1);
	char *s = NULL;
	H5Tset_size(mt, H5T_VARIABLE);
	H5Tset_cset(mt, H5Tget_cset(ft));
	int ok = mt >= 0 && H5Aread(a, mt, &s) >= 0 && s;
	if (ok)
		snprintf(buf, cap, "%s", s);
	else
		buf[0] = '\0';
	H5free_memory(s);
	if (mt >= 0)
		H5Tclose(mt);
	return ok ? 0 : -1;
}

/* A variable-length string lives in the file's global heap, which carries
 * no checksum in any HDF5 format: libhdf5 1.10 copies out of bounds on a
 * corrupt one (tests/data/hostile/predictor-crash-297b6076.h5). So it is
 * read in a child process, which hands the string back through a pipe (or
 * by the kept reader: vlen_read_kept); a child that crashes, is stopped by
 * a sanitizer or does not end within h5attr_time_limit() seconds means a
 * corrupt attribute (-1). */
/* vlen_read_isolated's child: reads attribute a, writes the string to the
 * pipe fd[1] and exits (0, or 3 when the read or the write failed). */
struct vlen_child {
	hid_t a, ft;
	int *fd;
};

static _Noreturn void vlen_child_read(void *arg)
{
	struct vlen_child *vc = arg;
	close(vc->fd[0]);
	signal(SIGALRM, SIG_DFL); /* a handler the parent set (libFuzzer's) */
	alarm_after(h5attr_time_limit());
	hid_t mt = H5Tcopy(H5T_C_S1);
	char *s = NULL;
	H5Tset_size(mt, H5T_VARIABLE);
	H5Tset_cset(mt, H5Tget_cset(vc->ft));
	int ok = H5Aread(vc->a, mt, &s) >= 0 && s;
	size_t n = ok ? strlen(s) : 0;
	ok = ok && write(vc->fd[1], s, n) == (ssize_t)n;
	_exit(ok ? 0 : 3);
}

static int vlen_read_isolated(hid_t obj, const char *name, hid_t a, hid_t ft, char *buf,
			      size_t cap)
{
	/* already isolated, or a memory image a child has just read through */
	if (isolated_child || image_verified(a))
		return vlen_read_direct(a, ft, buf, cap);
	int kept_rc = vlen_read_kept(obj, name, a, buf, cap);
	if (kept_rc <= 0)
		return kept_rc;
	int fd[2];
	if (pipe(fd))
		return -1;
	struct vlen_child vc = {.a = a, .ft = ft, .fd = fd};
	pid_t pid = fork_h5(vlen_child_read, &vc);
	if (pid < 0) {
		close(fd[0]), close(fd[1]);
		return -1;
	}
	close(fd[1]);
	size_t n = 0;
	ssize_t r;
	char c;
	while ((r = read(fd[0], n < cap - 1 ? buf + n : &c, n < cap - 1 ? cap - 1 - n : 1)) > 0)
		n += n < cap - 1 ? (size_t)r : 0;
	buf[n] = '\0';
	close(fd[0]);
	int ws;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws)) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

int h5attr_get_str(hid_t obj, const char *name, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (H5Aexists(obj, name) <= 0)
		return -1;
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = H5Aget_type(a);
	int rc = -1;
	if (H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0) {
		rc = vlen_read_isolated(obj, name, a, ft, buf, cap);
	} else if (H5Tget_class(ft) == H5T_STRING) {
		size_t sz = H5Tget_size(ft);
		char *tmp = calloc(1, sz + 2);
		hid_t mt = H5Tcopy(H5T_C_S1);
		/* one more byte than the file's: a NUL-padded string of exactly sz
		 * characters (as h5py writes them) keeps its last character */
		H5Tset_size(mt, sz + 1);
		H5Tset_cset(mt, H5Tget_cset(ft));
		if (tmp && H5Aread(a, mt, tmp) >= 0) {
			snprintf(buf, cap, "%s", tmp);
			rc = 0;
		}
		H5Tclose(mt);
		free(tmp);
	}
	H5Tclose(ft);
	H5Aclose(a);
	return rc;
}

static int abandoned_path(const char *path);

static struct {
	char path[4096];
	const void *buf;
	size_t len;
	int verified; /* a child read it through without failing (h5attr_isolate) */
} image;

void h5attr_image(const char *path, const void *buf, size_t len)
{
	snprintf(image.path, sizeof image.path, "%s", path && buf ? path : "");
	image.buf = path ? buf : NULL;
	image.len = path && buf ? len : 0;
	image.verified = 0;
}

/* Attribute a is in the registered image, which h5attr_isolate's child has
 * read through without failing: its bytes cannot have changed since (they
 * are in memory, registered as they were), so the same reads in this
 * process meet the same metadata. A file on disk gets no such pass: it can
 * be rewritten or replaced between the child's read and this one. */
static int image_verified(hid_t a)
{
	char name[4096];
	if (!image.verified || !image.buf)
		return 0;
	ssize_t n = H5Fget_name(a, name, sizeof name);
	return n > 0 && (size_t)n < sizeof name && !strcmp(name, image.path);
}

const void *h5attr_image_of(const char *path, size_t *len)
{
	if (!image.buf || strcmp(image.path, path))
		return NULL;
	*len = image.len;
	return image.buf;
}

static int signature_version(const unsigned char *b, size_t len);

/* The image: no file to check; the core driver reads the bytes. */
static hid_t open_image(const char *path, const void *buf, size_t len, struct lif_err *err)
{
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	if (signature_version(buf, len) < 0) {
		err_set(err, ERR_FORMAT, "%s: not an HDF5 file, or truncated", path);
		return H5I_INVALID_HID;
	}
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = H5I_INVALID_HID;
	if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 &&
	    H5Pset_file_image(fapl, (void *)buf, len) >= 0)
		f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
	if (fapl >= 0)
		H5Pclose(fapl);
	if (f < 0)
		err_set(err, ERR_FORMAT, "%s: cannot open as HDF5 (truncated or corrupt)", path);
	return f;
}

hid_t h5attr_open_readonly(const char *path, struct lif_err *err)
{
	size_t ilen;
	const void *ibuf = h5attr_image_of(path, &ilen);
	if (ibuf)
		return open_image(path, ibuf, ilen, err);
	if (access(path, R_OK)) {
		err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
		return H5I_INVALID_HID;
	}
	if (claim_regular_file(path, err))
		return H5I_INVALID_HID;
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* per thread in a threadsafe libhdf5 */
	if (H5Fis_hdf5(path) <= 0) {
		err_set(err, ERR_FORMAT, "%s: not an HDF5 file, or truncated", path);
		return H5I_INVALID_HID;
	}
	hid_t fapl = H5P_DEFAULT;
	if (abandoned_path(path) && (fapl = H5Pcreate(H5P_FILE_ACCESS)) >= 0)
		H5Pset_fapl_core(fapl, 1 << 20, 0);
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
	if (fapl != H5P_DEFAULT)
		H5Pclose(fapl);
	if (f < 0)
		err_set(err, ERR_FORMAT, "%s: cannot open as HDF5 (truncated or corrupt)", path);
	return f;
}

static hid_t remember(hid_t f, const char *path);

hid_t h5attr_create(const char *path, int streaming)
{
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	/* the 1.10 format: superblock, object headers and chunk indexes carry
	 * checksums that HDF5 verifies as it reads them. A streaming file must
	 * open after a crash: the 1.10 superblock marks a file open for writing
	 * until it is closed, so it gets the 1.8 format (checksummed object
	 * headers; chunk data is checksummed by the datasets' filter) */
	H5F_libver_t low = streaming ? H5F_LIBVER_V18 : H5F_LIBVER_V110;
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* per thread in a threadsafe libhdf5 */
	if (fapl < 0 || H5Pset_libver_bounds(fapl, low, H5F_LIBVER_V110) < 0) {
		if (fapl >= 0)
			H5Pclose(fapl);
		return H5I_INVALID_HID;
	}
	if (streaming) {
		/* metadata reaches the file only at a flush (no evictions in
		 * between), so a write failing after one leaves what it wrote */
		H5AC_cache_config_t mdc = {.version = H5AC__CURR_CACHE_CONFIG_VERSION};
		if (H5Pget_mdc_config(fapl, &mdc) >= 0) {
			mdc.evictions_enabled = 0;
			mdc.incr_mode = H5C_incr__off;
			mdc.flash_incr_mode = H5C_flash_incr__off;
			mdc.decr_mode = H5C_decr__off;
			H5Pset_mdc_config(fapl, &mdc);
		}
	}
	hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
	H5Pclose(fapl);
	return remember(f, path);
}

/* The files lifsim writes, with their descriptors taken when each is
 * created: after a failed write libhdf5 1.10's handle can no longer be used
 * (H5Fget_vfd_handle, a second H5Fclose and the library's exit handler
 * crash in it), so such a file is abandoned: its descriptor points at
 * /dev/null, so nothing more reaches the file, and its handles are left
 * open (trace_init turns off libhdf5's exit handler, which would close
 * them). */
#define WRITTEN_MAX 16
static struct {
	hid_t f;
	int fd, abandoned;
	char path[4096];
} written[WRITTEN_MAX];

static hid_t remember(hid_t f, const char *path)
{
	void *h = NULL;
	int e = errno;
	if (f < 0 && (e == ENOSPC || e == EIO || e == EDQUOT || e == EFBIG)) {
		unlink(path); /* created, then not written */
		errno = e;
	}
	/* the default driver (sec2) hands out its descriptor */
	if (f < 0 || H5Fget_vfd_handle(f, H5P_DEFAULT, &h) < 0 || !h)
		return f;
	for (int i = 0; i < WRITTEN_MAX; i++)
		if (!written[i].f) {
			written[i].f = f;
			written[i].fd = *(int *)h;
			snprintf(written[i].path, sizeof written[i].path, "%s", path);
			break;
		}
	return f;
}

const char *h5attr_why(int e)
{
	if (e == ENOSPC || e == EIO || e == EDQUOT || e == EFBIG || e == EROFS)
		return strerror(e);
	return "a write failed (disk full or I/O error)";
}

hid_t h5attr_create_default(const char *path)
{
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* per thread in a threadsafe libhdf5 */
	return remember(H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path);
}

static void abandon(hid_t f)
{
	for (int i = 0; i < WRITTEN_MAX; i++)
		if (written[i].f == f && !written[i].abandoned) {
			int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (nul >= 0) {
				dup2(nul, written[i].fd);
				close(nul);
			}
			written[i].abandoned = 1;
		}
}

static void forget(hid_t f)
{
	for (int i = 0; i < WRITTEN_MAX; i++)
		if (written[i].f == f && !written[i].abandoned)
			written[i].f = 0;
}

/* An abandoned file is read back through the core driver: libhdf5 would
 * match a sec2 open of it with the abandoned handle. */
static int abandoned_path(const char *path)
{
	for (int i = 0; i < WRITTEN_MAX; i++)
		if (written[i].abandoned && !strcmp(written[i].path, path))
			return 1;
	return 0;
}

int h5attr_close_written(hid_t f, const hid_t *objs, int n, int failed, const char *path)
{
	int saved = failed ? errno : 0;
	if (f >= 0 && !failed && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) {
		saved = errno;
		failed = 1;
	}
	if (f >= 0 && failed) {
		abandon(f);
		errno = saved;
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (objs[i] >= 0) {
			H5I_type_t t = H5Iget_type(objs[i]);
			if (t == H5I_ATTR)
				H5Aclose(objs[i]);
			else if (t == H5I_DATASPACE)
				H5Sclose(objs[i]);
			else if (t == H5I_DATASET || t == H5I_GROUP || t == H5I_DATATYPE)
				H5Oclose(objs[i]);
		}
	if (f >= 0 && H5Fclose(f) < 0) {
		/* closing writes too (superblock flags, end of file) */
		abandon(f);
		errno = errno ? errno : EIO;
		return -1;
	}
	forget(f);
	if (path) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd)) {
			saved = errno;
			failed = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	errno = saved;
	return failed ? -1 : 0;
}

int h5attr_has_checksum(hid_t d)
{
	hid_t dcpl = H5Dget_create_plist(d);
	if (dcpl < 0)
		return 0;
	int n = H5Pget_nfilters(dcpl), found = 0;
	for (int i = 0; i < n; i++) {
		unsigned flags, cd[8];
		size_t ncd = 8;
		if (H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL) ==
		    H5Z_FILTER_FLETCHER32)
			found = 1;
	}
	H5Pclose(dcpl);
	return found;
}

uint32_t h5attr_fletcher32(const uint8_t *data, size_t bytes)
{
	uint32_t sum1 = 0, sum2 = 0;
	for (size_t len = bytes / 2; len;) {
		size_t n = len > 360 ? 360 : len;
		len -= n;
		do {
			sum1 += (uint32_t)data[0] << 8 | data[1];
			data += 2;
			sum2 += sum1;
		} while (--n);
		sum1 = (sum1 & 0xffff) + (sum1 >> 16);
		sum2 = (sum2 & 0xffff) + (sum2 >> 16);
	}
	if (bytes % 2) {
		sum1 += (uint32_t)data[0] << 8;
		sum2 += sum1;
		sum1 = (sum1 & 0xffff) + (sum1 >> 16);
		sum2 = (sum2 & 0xffff) + (sum2 >> 16);
	}
	sum1 = (sum1 & 0xffff) + (sum1 >> 16);
	sum2 = (sum2 & 0xffff) + (sum2 >> 16);
	return sum2 << 16 | sum1;
}

int h5attr_get_int(hid_t obj, const char *path, const char *name, int64_t lo, int64_t hi,
		   int64_t *out, struct lif_err *err)
{
	if (h5attr_get(obj, name, H5T_NATIVE_INT64, 0, out))
		return err_set(err, ERR_FORMAT, "%s: attribute '%s' is missing or not an integer",
			       path, name);
	if (*out < lo || *out > hi)
		return err_set(err, ERR_FORMAT, "%s: %s %lld outside [%lld, %lld]", path, name,
			       (long long)*out, (long long)lo, (long long)hi);
	return 0;
}

int h5attr_check_stored(hid_t d, const char *path, const char *name, struct lif_err *err)
{
	hid_t dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d), t = H5Dget_type(d);
	hsize_t dims[8], chunk[8] = {0}, want = 1, have = 0;
	int rank = sp < 0 ? -1 : H5Sget_simple_extent_dims(sp, dims, NULL);
	H5D_layout_t lay = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
	int ok = rank >= 0 && rank <= 8 && t >= 0 &&
		 (lay == H5D_CHUNKED ? H5Pget_chunk(dcpl, rank, chunk) == rank
				     : lay == H5D_CONTIGUOUS || lay == H5D_COMPACT);
	double logical = t >= 0 ? (double)H5Tget_size(t) : 0;
	for (int i = 0; ok && i < rank; i++) {
		logical *= (double)dims[i];
		if (lay == H5D_CHUNKED)
			ok = chunk[i] > 0, want *= ok ? (dims[i] + chunk[i] - 1) / chunk[i] : 0;
	}
	if (ok && logical > 0 && lay != H5D_CHUNKED && (double)H5Dget_storage_size(d) < logical)
		ok = -1;
	if (ok > 0 && logical > 0 && lay == H5D_CHUNKED &&
	    (H5Dget_num_chunks(d, sp, &have) < 0 || have < want))
		ok = -2;
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (sp >= 0)
		H5Sclose(sp);
	if (t >= 0)
		H5Tclose(t);
	if (ok == 0)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' has an unreadable layout", path, name);
	if (ok == -1)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' stores %llu of its %.0f bytes (the "
			       "file claims more than it holds)", path, name,
			       (unsigned long long)H5Dget_storage_size(d), logical);
	if (ok == -2)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' stores %llu of its %llu chunks "
			       "(the file claims more than it holds)", path, name,
			       (unsigned long long)have, (unsigned long long)want);
	return 0;
}

int h5attr_check_stored_rows(hid_t d, const char *path, const char *name, hsize_t rows,
			     struct lif_err *err)
{
	hid_t dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d);
	hsize_t dims[3], chunk[3] = {0}, off[3] = {0}, have = 0, want = 0;
	int rank = sp < 0 ? -1 : H5Sget_simple_extent_dims(sp, dims, NULL);
	int ok = rank >= 1 && rank <= 3 && dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
		 H5Pget_chunk(dcpl, rank, chunk) == rank;
	for (int i = 0; ok && i < rank; i++)
		ok = chunk[i] > 0;
	/* walk the chunk grid over [0, rows) x dims[1] x dims[2] */
	while (ok && rows && off[0] < rows) {
		unsigned mask;
		haddr_t addr = HADDR_UNDEF;
		hsize_t size = 0;
		want++;
		if (H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) >= 0 &&
		    addr != HADDR_UNDEF && size > 0)
			have++;
		int i = rank - 1;
		for (; i > 0; i--) {
			off[i] += chunk[i];
			if (off[i] < dims[i])
				break;
			off[i] = 0;
		}
		if (i == 0)
			off[0] += chunk[0];
	}
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (sp >= 0)
		H5Sclose(sp);
	if (!ok)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' has an unreadable layout", path, name);
	if (have < want)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' stores %llu of the %llu chunks of "
			       "its first %llu rows (the file claims more than it holds)", path, name,
			       (unsigned long long)have, (unsigned long long)want,
			       (unsigned long long)rows);
	return 0;
}

static const unsigned char hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* The superblock version after the signature in b (len bytes), or -1. */
static int signature_version(const unsigned char *b, size_t len)
{
	for (size_t at = 0; at <= (1UL << 20); at = at ? 2 * at : 512)
		if (at + 9 > len)
			break;
		else if (!memcmp(b + at, hdf5_sig, 8))
			return b[at + 8];
	return -1;
}

int h5attr_superblock_version(const char *path)
{
	const unsigned char *sig = hdf5_sig;
	unsigned char b[9];
	size_t ilen;
	const void *ibuf = h5attr_image_of(path, &ilen);
	if (ibuf)
		return signature_version(ibuf, ilen);
	FILE *f = fopen(path, "rb");
	int v = -1;
	/* the signature is at 0, 512, 1024, 2048, ... */
	for (long at = 0; f && v < 0 && at <= (1L << 20); at = at ? 2 * at : 512)
		if (fseek(f, at, SEEK_SET) || fread(b, 1, 9, f) != 9)
			break;
		else if (!memcmp(b, sig, 8))
			v = b[8];
	if (f)
		fclose(f);
	return v;
}

/* h5attr_isolate's reading process, the reader: a child forked from this
 * process that serves read requests over a socket, one at a time. A request
 * is either a probe to run (a function of this program: the child is a
 * fork, so the pointer is valid there) with its argument by value, or a
 * string attribute to read (a kept reader's, vlen_read_isolated); then the
 * path, and the bytes of a registered image, which the reader registers in
 * turn. The answer is the verdict, and the probe's message or the string.
 * This process times the read: a reader that does not answer within the
 * limit is killed. */
enum { READ_PROBE, READ_STRING };

struct reader_request {
	int (*fn)(const char *path, void *arg, struct lif_err *err);
	double limit; /* seconds this process waits; the reader's alarm is a backstop */
	uint64_t arg_len, path_len, image_len; /* their bytes follow, in that order */
	uint8_t kind;
	uint8_t imaged; /* an image (of image_len bytes) is registered for path */
	uint8_t last;	/* the reader ends after answering */
};

struct reader_answer {
	int32_t rc;
	uint32_t len;	/* the message (rc != 0) or the string: bytes that follow */
	uint8_t retire; /* the reader ends after this answer */
};

/* A fuzz target's coverage leaves out the transport to the reader: its
 * loops count bytes and wake-ups, not anything of the file read. */
#if defined(__clang__)
#define TRANSPORT __attribute__((no_sanitize("coverage")))
#else
#define TRANSPORT
#endif

struct reader {
	pid_t pid;   /* 0: none */
	pid_t owner; /* the process that forked it */
	int fd;
	unsigned served;
};

TRANSPORT static void alarm_off(void)
{
	struct itimerval it = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &it, NULL);
}

TRANSPORT static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* All n bytes of buf to the socket: 0, or -1 when the peer has gone
 * (EPIPE, without a SIGPIPE: this process's disposition is left alone). */
TRANSPORT static int send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* n bytes from the socket into buf: 0, or -1 at its end or an error. */
TRANSPORT static int recv_all(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* recv_all before a CLOCK_MONOTONIC deadline (buf NULL: the bytes are
 * dropped): 0, -1 (the socket's end: the reader has ended) or -2 (the time
 * is up). */
TRANSPORT static int recv_by(int fd, void *buf, size_t n, double deadline)
{
	char *p = buf, drop[512];
	while (n) {
		double left = deadline - now_s();
		if (left <= 0)
			return -2;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int k = poll(&pf, 1, left > 1e6 ? 1000000000 : (int)(left * 1000) + 1);
		if (k <= 0) {
			if (k < 0 && errno != EINTR) /* EINTR: a handler (libFuzzer's -timeout) */
				return -1;
			continue;
		}
		size_t want = p ? n : n < sizeof drop ? n : sizeof drop;
		ssize_t r = recv(fd, p ? p : drop, want, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return -1;
		p = p ? p + r : NULL;
		n -= (size_t)r;
	}
	return 0;
}

/* In the reader: the variable-length string attribute objattr names
 * ("OBJECT\0ATTRIBUTE") of the file at path, read directly; *s is libhdf5's
 * (H5free_memory). */
static int reader_string(const char *path, const char *objattr, char **s)
{
	struct lif_err e = {0};
	hid_t f = h5attr_open_readonly(path, &e), a = H5I_INVALID_HID, ft = H5I_INVALID_HID;
	hid_t mt = H5Tcopy(H5T_C_S1);
	if (f >= 0)
		a = H5Aopen_by_name(f, objattr, objattr + strlen(objattr) + 1, H5P_DEFAULT,
				    H5P_DEFAULT);
	if (a >= 0)
		ft = H5Aget_type(a);
	*s = NULL;
	int ok = ft >= 0 && mt >= 0 && H5Tget_class(ft) == H5T_STRING &&
		 H5Tis_variable_str(ft) > 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
		 H5Tset_cset(mt, H5Tget_cset(ft)) >= 0 && H5Aread(a, mt, s) >= 0 && *s;
	if (mt >= 0)
		H5Tclose(mt);
	if (ft >= 0)
		H5Tclose(ft);
	if (a >= 0)
		H5Aclose(a);
	if (f >= 0)
		H5Fclose(f);
	return ok ? 0 : -1;
}

/* The reader's loop; it ends when its parent closes its end (or exits), after
 * a request marked last, or when a read left HDF5 objects open (state a
 * later read should not meet). */
static _Noreturn void reader_serve(int fd)
{
	/* a handler the parent set (libFuzzer's -timeout): an alarm here ends
	 * the reader */
	signal(SIGALRM, SIG_DFL);
	isolated_child = 1;
	ssize_t open_at_start = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
	for (;;) {
		struct reader_request q;
		if (recv_all(fd, &q, sizeof q))
			_exit(0);
		char *arg = q.arg_len ? malloc(q.arg_len) : NULL; /* aligned for any type */
		char *path = malloc(q.path_len + 1);
		void *img = q.imaged ? malloc(q.image_len ? q.image_len : 1) : NULL;
		if (!path || (q.arg_len && !arg) || (q.imaged && !img) ||
		    recv_all(fd, arg, q.arg_len) || recv_all(fd, path, q.path_len) ||
		    (q.imaged && recv_all(fd, img, q.image_len)))
			_exit(0);
		path[q.path_len] = '\0';
		h5attr_image(q.imaged ? path : NULL, img, q.image_len);
		alarm_after(2 * q.limit + 1); /* if the parent has gone */
		struct lif_err e = {0};
		char *s = NULL;
		int rc = q.kind == READ_STRING ? reader_string(path, arg, &s) : q.fn(path, arg, &e);
		alarm_off();
		h5attr_image(NULL, NULL, 0);
		free(img);
		free(path);
		free(arg);
		if (rc && q.kind == READ_PROBE && !e.msg[0])
			_exit(1); /* as a read that failed without a message */
		const char *text = q.kind == READ_STRING ? (rc ? "" : s) : rc ? e.msg : "";
		struct reader_answer a = {
			.rc = rc ? ERR_FORMAT : 0,
			.len = (uint32_t)strlen(text),
			.retire = q.last ||
				  H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != open_at_start,
		};
		int sent = !send_all(fd, &a, sizeof a) && !send_all(fd, text, a.len);
		H5free_memory(s);
		if (!sent || a.retire)
			_exit(0);
	}
}

static _Noreturn void reader_child(void *arg)
{
	int *sv = arg;
	close(sv[0]);
	reader_serve(sv[1]);
}

TRANSPORT static int reader_start(struct reader *r)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	pid_t pid = fork_h5(reader_child, sv);
	if (pid < 0) {
		close(sv[0]), close(sv[1]);
		return -1;
	}
	close(sv[1]);
	*r = (struct reader){.pid = pid, .owner = getpid(), .fd = sv[0]};
	return 0;
}

/* End the reader (SIGKILL: one that has ended already keeps its status) and
 * reap it: its wait status, or -1 when it cannot be waited for. */
TRANSPORT static int reader_end(struct reader *r)
{
	int ws;
	pid_t got;
	close(r->fd);
	kill(r->pid, SIGKILL);
	while ((got = waitpid(r->pid, &ws, 0)) < 0 && errno == EINTR)
		;
	r->pid = 0;
	r->fd = -1;
	return got > 0 ? ws : -1;
}

/* The reader kept between requests (h5attr_isolate_keep), if any. */
static struct reader kept;
static unsigned keep_max;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void kept_end(void)
{
	if (kept.pid > 0 && kept.owner == getpid()) {
		pthread_mutex_lock(&kept_lock);
		if (kept.pid > 0)
			reader_end(&kept);
		pthread_mutex_unlock(&kept_lock);
	}
}

/* A reader forked while this process has an HDF5 file open would keep that
 * file open (a copy of this process's library state), and a later open of
 * the same name in it would share that copy: the file as it was, not a new
 * image registered under the name. So a kept reader is forked only when no
 * file is open. */
static int no_file_open(void)
{
	return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE) == 0;
}

void h5attr_isolate_keep(unsigned requests)
{
	static int registered;
	if (!requests)
		kept_end();
	pthread_mutex_lock(&kept_lock);
	keep_max = requests;
	if (requests && !registered)
		registered = !atexit(kept_end);
	if (kept.pid > 0 && kept.owner != getpid()) /* a fork's copy: not this process's */
		close(kept.fd), kept.pid = 0;
	if (requests && !kept.pid && no_file_open())
		reader_start(&kept);
	pthread_mutex_unlock(&kept_lock);
}

/* Request q (arg, path and img its bytes) of reader r, and its answer: 0
 * (a, and its text in out: at most cap - 1 bytes, the rest dropped); -1:
 * the reader ended without answering (reaped: *ws its wait status); -2: the
 * time is up (the reader killed); -3: the reader took no request (twice);
 * -4: no reader could be made (fork or socketpair failed). */
TRANSPORT static int reader_ask(struct reader *r, unsigned keep, struct reader_request *q,
				const void *arg, const char *path, const void *img,
				struct reader_answer *a, char *out, size_t cap, int *ws)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!r->pid && reader_start(r))
			return -4;
		q->last = !keep || ++r->served >= keep;
		if (send_all(r->fd, q, sizeof *q) || send_all(r->fd, arg, q->arg_len) ||
		    send_all(r->fd, path, q->path_len) ||
		    (q->imaged && send_all(r->fd, img, q->image_len))) {
			/* it ended before it took the request (a kept reader
			 * killed from outside): a fresh one, once */
			reader_end(r);
			continue;
		}
		double deadline = now_s() + q->limit;
		int rc = recv_by(r->fd, a, sizeof *a, deadline);
		size_t n = rc ? 0 : a->len < cap ? a->len : cap - 1;
		if (!rc)
			rc = recv_by(r->fd, out, n, deadline);
		if (!rc)
			rc = recv_by(r->fd, NULL, a->len - n, deadline);
		out[n] = '\0';
		if (rc) {
			*ws = reader_end(r);
			return rc;
		}
		if (a->retire)
			reader_end(r);
		return 0;
	}
	return -3;
}

/* reader_ask to the kept reader (keep_max > 0), or to one of its own. */
static int reader_run(struct reader_request *q, const void *arg, const char *path,
		      const void *img, struct reader_answer *a, char *out, size_t cap, int *ws)
{
	struct reader one = {0};
	pthread_mutex_lock(&kept_lock);
	unsigned keep = keep_max;
	if (!keep) {
		pthread_mutex_unlock(&kept_lock);
		return reader_ask(&one, 0, q, arg, path, img, a, out, cap, ws);
	}
	if (kept.pid > 0 && kept.owner != getpid()) /* a fork's copy: not this process's */
		close(kept.fd), kept.pid = 0;
	if (!kept.pid && !no_file_open()) { /* see no_file_open: one of its own */
		pthread_mutex_unlock(&kept_lock);
		return reader_ask(&one, 0, q, arg, path, img, a, out, cap, ws);
	}
	int rc = reader_ask(&kept, keep, q, arg, path, img, a, out, cap, ws);
	pthread_mutex_unlock(&kept_lock);
	return rc;
}

/* vlen_read_isolated through the kept reader, for an attribute of a
 * registered image (its bytes cannot change, so the reader, forked before
 * this file was opened, reads it again by name and meets the same bytes):
 * 0, -1 (a corrupt attribute), or 1 when that does not apply (no kept
 * reader, a file on disk, an object without a name). */
static int vlen_read_kept(hid_t obj, const char *name, hid_t a, char *buf, size_t cap)
{
	char file[4096], objattr[4096];
	size_t ilen;
	ssize_t fn = H5Fget_name(a, file, sizeof file);
	const void *img = fn > 0 && (size_t)fn < sizeof file ? h5attr_image_of(file, &ilen) : NULL;
	ssize_t on = img && keep_max ? H5Iget_name(obj, objattr, sizeof objattr) : 0;
	size_t an = strlen(name);
	if (on <= 0 || (size_t)on + an + 2 > sizeof objattr)
		return 1;
	memcpy(objattr + on + 1, name, an + 1);
	struct reader_request q = {.limit = h5attr_time_limit(), .arg_len = (size_t)on + an + 2,
				   .path_len = strlen(file), .image_len = ilen,
				   .kind = READ_STRING, .imaged = 1};
	struct reader_answer ans;
	int ws;
	int rc = reader_run(&q, objattr, file, img, &ans, buf, cap, &ws);
	if (rc == -4 || rc == -3)
		return 1;
	if (rc || ans.rc) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

int h5attr_isolate(const char *path, int (*fn)(const char *path, void *arg, struct lif_err *err),
		   void *arg, size_t arglen, struct lif_err *err)
{
	/* libhdf5 can also loop forever on corrupt metadata (a global heap
	 * reference in a per-token file): the read has a time limit, generous
	 * for the file's size */
	struct stat st;
	size_t ilen = 0;
	const void *img = h5attr_image_of(path, &ilen);
	double limit = h5attr_time_limit() + (img ? (double)(ilen >> 24)
			     : stat(path, &st) ? 0 : (double)(st.st_size >> 24));
	struct reader_request q = {.fn = fn, .limit = limit, .arg_len = arg ? arglen : 0,
				   .path_len = strlen(path), .image_len = img ? ilen : 0,
				   .kind = READ_PROBE, .imaged = img != NULL};
	struct reader_answer a;
	char msg[sizeof err->msg];
	int ws = 0;
	int rc = reader_run(&q, arg, path, img, &a, msg, sizeof msg, &ws);
	if (rc == -4) /* no process to read in (fork or socketpair failed): read here */
		return fn(path, arg, err);
	if (rc == -3)
		return err_set(err, ERR_IO, "%s: the process reading it ended before taking the "
			       "request", path);
	if (rc == -1 && ws == -1)
		return err_set(err, ERR_IO, "%s: cannot wait for the reading process", path);
	if (rc == -2 || (rc == -1 && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGALRM))
		return err_set(err, ERR_FORMAT, "%s: corrupt: reading it did not end within %g s "
			       "(the HDF5 library loops on it); its format (HDF5 superblock version "
			       "%d) has no metadata checksums", path, limit,
			       h5attr_superblock_version(path));
	if (rc == -1 && WIFSIGNALED(ws))
		return err_set(err, ERR_FORMAT, "%s: corrupt: reading it crashed the HDF5 library "
			       "(signal %d, %s); its format (HDF5 superblock version %d) has no "
			       "metadata checksums", path, WTERMSIG(ws), strsignal(WTERMSIG(ws)),
			       h5attr_superblock_version(path));
	if (rc == -1)
		return err_set(err, ERR_FORMAT, "%s: corrupt: reading it failed in the HDF5 "
			       "library (exit status %d); its format (HDF5 superblock version %d) "
			       "has no metadata checksums", path, WEXITSTATUS(ws),
			       h5attr_superblock_version(path));
	if (a.rc)
		return err_set(err, ERR_FORMAT, "%s", msg);
	/* the read in this process meets the same bytes when they are an image */
	if (img)
		image.verified = 1;
	return 0;
}
