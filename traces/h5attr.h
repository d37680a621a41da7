/*
 * h5attr: HDF5 attributes as lifsim's files use them (traces, predictors,
 * per-token detail): numbers (scalars or 1-D arrays) and strings, written
 * as variable-length UTF-8 (h5py reads them as str). Readers accept what
 * other writers (h5py, older lifsim) produce: any integer or float class
 * converted to the asked type, variable-length or fixed-length (NUL-terminated
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

/* n = 0: a scalar; otherwise a 1-D array of n. */
int h5attr_put(hid_t obj, const char *name, hid_t type, hsize_t n, const void *v);
int h5attr_put_str(hid_t obj, const char *name, const char *s);
/* Create or overwrite a scalar int64 attribute. */
int h5attr_set_i64(hid_t obj, const char *name, int64_t v);

int h5attr_get(hid_t obj, const char *name, hid_t memtype, hsize_t n, void *v);
int h5attr_get_str(hid_t obj, const char *name, char *buf, size_t cap);

#endif
