/*
 * h5attr: HDF5 attributes as lifsim's files use them (traces, predictors,
 * per-token detail): numbers (scalars or 1-D arrays) and strings, written
 * as variable-length UTF-8 (h5py reads them as str). Readers accept what
 * other writers (h5py, older lifsim) produce: an integer class converted to
 * an asked integer type (a float is refused), an integer or float class to an
 * asked float type, variable-length or fixed-length (NUL-terminated
 * or NUL-padded) strings in ASCII or UTF-8. Return 0, or -1 when the attribute is absent or not of that form.
 */
#ifndef LIFSIM_H5ATTR_H
#define LIFSIM_H5ATTR_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/base/err.h"

/* Open an HDF5 file read-only with lifsim's messages: "cannot open" (missing
 * or unreadable), "not an HDF5 file, or truncated", "cannot open as HDF5
 * (truncated or corrupt)". Returns the handle or H5I_INVALID_HID. */
hid_t h5attr_open_readonly(const char *path, struct lif_err *err);

/* Serve path from memory: while registered, h5attr_open_readonly,
 * h5attr_superblock_version and h5attr_isolate read buf (len bytes, borrowed)
 * as the file at path, through libhdf5's core driver and a file image,
 * without touching the file system. For fuzzing and tests that hold a file
 * as bytes; readers keep their checks and their isolation. One image at a
 * time; h5attr_image(NULL, NULL, 0) unregisters it. Not thread-safe. */
void h5attr_image(const char *path, const void *buf, size_t len);

/* Create (truncate) an HDF5 file in the 1.10 format, whose metadata carries
 * checksums (streaming: the 1.8 format, which opens after a crash). Returns
 * the handle or H5I_INVALID_HID (errno says why). */
hid_t h5attr_create(const char *path, int streaming);

/* Why a write through libhdf5 failed, for a message: strerror(e) when e is
 * an errno a failing write sets (ENOSPC, EIO, EDQUOT, EFBIG, EROFS), else a
 * generic phrase (libhdf5 may have changed errno since). */
const char *h5attr_why(int e);

/* Create (truncate) an HDF5 file with the library's default properties. */
hid_t h5attr_create_default(const char *path);

/* Close a file made by h5attr_create or h5attr_create_default and its n open
 * objects (datasets, groups), after failed = nonzero when a write already
 * failed. Flushes, closes, then fsyncs path. Returns 0, or -1 when any write,
 * the flush, the close or the fsync failed (errno says why, where known).
 * Whatever failed, every handle is closed and libhdf5 has nothing left to
 * write: libhdf5 1.10 retries a failed flush at every close and at exit, and
 * a second failure there crashes it (H5F__close_cb), so after a failure the
 * file's descriptor is pointed at /dev/null before closing (what was written
 * before stays in the file; nothing more reaches it). */
int h5attr_close_written(hid_t f, const hid_t *objs, int n, int failed, const char *path);

/* An integer attribute (a float is refused) as int64, within [lo, hi]; the
 * error names the file, the attribute and the bounds. */
int h5attr_get_int(hid_t obj, const char *path, const char *name, int64_t lo, int64_t hi,
		   int64_t *out, struct lif_err *err);

/* Dataset d (named name in path) stores all it claims: every chunk written,
 * or a contiguous extent's every byte. HDF5 would serve missing chunks as
 * fill values, so a small file could claim any size. */
int h5attr_check_stored(hid_t d, const char *path, const char *name, struct lif_err *err);

/* The same for the first rows of a chunked dataset that holds more along its
 * first axis (one lookup per chunk of those rows). */
int h5attr_check_stored_rows(hid_t d, const char *path, const char *name, hsize_t rows,
			     struct lif_err *err);

/* 1 when dataset d has HDF5's Fletcher32 checksum filter. */
int h5attr_has_checksum(hid_t d);

/* HDF5's Fletcher32 of a chunk's filtered bytes (stored after them, little
 * endian), for readers and writers that handle raw chunks. */
uint32_t h5attr_fletcher32(const uint8_t *data, size_t bytes);

/* The HDF5 superblock version of path (0 and 1: HDF5 1.6 format, metadata
 * without checksums; 2 and 3: checksummed), or -1 when it has none. */
int h5attr_superblock_version(const char *path);

/* Seconds a child process reading an HDF5 file (h5attr_isolate, and each
 * variable-length string attribute) may take before the file counts as
 * corrupt: $LIFSIM_HDF5_TIME_LIMIT when it is a number in [0.01, 86400],
 * else 30. The fuzz targets set 0.2 (a loop on corrupt metadata then costs
 * them 0.2 s, not 30). */
double h5attr_time_limit(void);

/* Run fn(path, arg, err) in a child process first: a file whose metadata
 * carries no checksums can make libhdf5 itself crash, and lifsim must not.
 * Returns fn's verdict (its message), or a "corrupt: reading it crashed the
 * HDF5 library" error when the child dies of a signal. The child's work is
 * discarded; call fn again in the process once it returns 0. The child gets
 * a copy of arg's arglen bytes (NULL when arg is NULL), and of the image
 * registered for path (h5attr_image), which it registers in turn. In the
 * child, variable-length string attributes are read directly (the child is
 * already isolated); so are they in this process after a child read a
 * registered image without failing, until the image is registered again:
 * its bytes cannot change in between. A file on disk can, so there each
 * string is still read in a child of its own.
 * The read has a time limit (h5attr_time_limit(), plus 1 s per 16 MiB of the
 * file): libhdf5 can loop forever on corrupt metadata, which then is an error
 * too (the child is killed). When no child can be made (fork or socketpair
 * fails), fn runs in this process. Children are forked with this thread
 * holding libhdf5's lock, so other threads may use libhdf5 meanwhile. */
int h5attr_isolate(const char *path, int (*fn)(const char *path, void *arg, struct lif_err *err),
		   void *arg, size_t arglen, struct lif_err *err);

/* requests > 0: h5attr_isolate keeps its child between reads, for up to
 * that many (then a fresh one): a read costs a request to a running
 * process instead of a fork. The child keeps this process's state of when
 * it was forked (environment, working directory, libhdf5's settings), so
 * this is for a process whose state does not change between reads: the
 * fuzz targets. It is forked only while no HDF5 file is open in this
 * process (it would keep that file open, and a later open of the same
 * name in it would meet the file as it was): by this call when none is
 * running (call it again where no file is open, e.g. before each input),
 * or by a read that finds no file open; a read that finds none running
 * and a file open has a child of its own. A crash or a time-out ends the
 * child, and so does a read that left HDF5 objects open in it. The child
 * ends when this process exits (or closes its end). 0 (the default): a
 * child for each read, which ends after it; ends the child kept so far. */
void h5attr_isolate_keep(unsigned requests);

/* The bytes registered for path (h5attr_image), or NULL. */
const void *h5attr_image_of(const char *path, size_t *len);

/* n = 0: a scalar; otherwise a 1-D array of n. */
int h5attr_put(hid_t obj, const char *name, hid_t type, hsize_t n, const void *v);
int h5attr_put_str(hid_t obj, const char *name, const char *s);
/* Create or overwrite a scalar int64 attribute. */
int h5attr_set_i64(hid_t obj, const char *name, int64_t v);

int h5attr_get(hid_t obj, const char *name, hid_t memtype, hsize_t n, void *v);
int h5attr_get_str(hid_t obj, const char *name, char *buf, size_t cap);

#endif
