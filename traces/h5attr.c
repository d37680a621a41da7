#include "traces/h5attr.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

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
	if ((hsize_t)np == (n ? n : 1) && (cls == H5T_INTEGER || cls == H5T_FLOAT))
		rc = H5Aread(a, memtype, v);
	H5Tclose(t);
	H5Sclose(sp);
	H5Aclose(a);
	return rc < 0 ? -1 : 0;
}

int h5attr_get_str(hid_t obj, const char *name, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (H5Aexists(obj, name) <= 0)
		return -1;
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = H5Aget_type(a);
	int rc = -1;
	if (H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0) {
		hid_t mt = H5Tcopy(H5T_C_S1);
		char *s = NULL;
		H5Tset_size(mt, H5T_VARIABLE);
		H5Tset_cset(mt, H5Tget_cset(ft));
		if (H5Aread(a, mt, &s) >= 0 && s) {
			snprintf(buf, cap, "%s", s);
			rc = 0;
		}
		H5free_memory(s);
		H5Tclose(mt);
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

hid_t h5attr_open_readonly(const char *path, struct lif_err *err)
{
	if (access(path, R_OK)) {
		err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
		return H5I_INVALID_HID;
	}
	if (H5Fis_hdf5(path) <= 0) {
		err_set(err, ERR_FORMAT, "%s: not an HDF5 file, or truncated", path);
		return H5I_INVALID_HID;
	}
	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f < 0)
		err_set(err, ERR_FORMAT, "%s: cannot open as HDF5 (truncated or corrupt)", path);
	return f;
}
