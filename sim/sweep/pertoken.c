#include "sim/sweep/pertoken.h"

#include "traces/h5attr.h"
#include "sim/base/claim.h"

#include <hdf5.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


int pertoken_write(const char *path, const char *point_id, const struct sim_token *tok,
		   int64_t n, struct lif_err *err)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	double *data = malloc(((size_t)n * PERTOKEN_COLS + 1) * sizeof *data);
	if (!data)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (int64_t k = 0; k < n; k++) {
		double *r = data + k * PERTOKEN_COLS;
		r[0] = tok[k].io_ms, r[1] = tok[k].mem_ms, r[2] = tok[k].compute_ms;
		r[3] = tok[k].total_ms, r[4] = (double)tok[k].bytes_read, r[5] = (double)tok[k].reads;
		r[6] = (double)tok[k].neurons_loaded;
	}
	int version = PERTOKEN_VERSION, bad = 1;
	hid_t f = h5attr_create_default(tmp);
	int e = errno;
	if (f >= 0) {
		hsize_t dims[2] = {(hsize_t)n, PERTOKEN_COLS};
		hid_t sp = H5Screate_simple(2, dims, NULL), sc = H5Screate(H5S_SCALAR);
		hid_t d = H5Dcreate2(f, "tokens", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
		hid_t a = H5Acreate2(f, "schema_version", H5T_NATIVE_INT, sc, H5P_DEFAULT, H5P_DEFAULT);
		bad = d < 0 || a < 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ||
		      H5Awrite(a, H5T_NATIVE_INT, &version) < 0 || h5attr_put_str(f, "schema", PERTOKEN_SCHEMA) ||
		      h5attr_put_str(f, "columns", PERTOKEN_COLUMNS) || h5attr_put_str(f, "point_id", point_id);
		e = errno;
		hid_t objs[4] = {a, d, sp, sc};
		if (h5attr_close_written(f, objs, 4, bad, tmp))
			bad = 1, e = errno;
	}
	free(data);
	if (bad || rename(tmp, path)) {
		e = bad ? e : errno;
		unlink(tmp);
		return err_set(err, ERR_IO, "%s: cannot write per-token detail: %s", path,
			       h5attr_why(e));
	}
	return 0;
}

static int print_in_process(const char *path, FILE *out, struct lif_err *err);

static int probe(const char *path, void *arg, struct lif_err *err)
{
	FILE *sink = fopen("/dev/null", "w");
	int rc = sink ? print_in_process(path, sink, err) : err_set(err, ERR_IO, "/dev/null");
	if (sink)
		fclose(sink);
	return rc;
}

int pertoken_print_csv(const char *path, FILE *out, struct lif_err *err)
{
	/* per-token files are in HDF5's earliest format, without metadata
	 * checksums: read in a child first, where a crash or a loop in libhdf5
	 * on corrupt metadata is an error (tests/data/hostile/pertoken-hang-*) */
	int sb = h5attr_superblock_version(path);
	if (sb >= 0 && sb < 2 && h5attr_isolate(path, probe, NULL, 0, err))
		return err->code;
	return print_in_process(path, out, err);
}

static int print_in_process(const char *path, FILE *out, struct lif_err *err)
{
	hid_t f = h5attr_open_readonly(path, err);
	if (f < 0)
		return err->code;
	char schema[64] = "";
	hid_t d = H5I_INVALID_HID;
	hsize_t dims[2] = {0, 0};
	int rc = 0;
	h5attr_get_str(f, "schema", schema, sizeof schema);
	if (!strcmp(schema, "lifsim-trace"))
		rc = err_set(err, ERR_INVAL, "%s: is an activation trace, not a point's per-token "
			     "detail (lifsim stats reads traces; lifsim tokens reads "
			     "DIR/per_token/POINT_ID.h5 of a sweep run with [output] per_token = true)",
			     path);
	else if (strcmp(schema, PERTOKEN_SCHEMA))
		rc = err_set(err, ERR_FORMAT, "%s: not a point's per-token detail (schema '%s', "
			     "expected '%s')", path, schema, PERTOKEN_SCHEMA);
	else if ((d = H5Dopen2(f, "tokens", H5P_DEFAULT)) < 0)
		rc = err_set(err, ERR_FORMAT, "%s: no 'tokens' dataset: not lifsim per-token detail",
			     path);
	if (!rc) {
		hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
		if (sp < 0 || t < 0 || H5Tget_class(t) != H5T_FLOAT ||
		    H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 ||
		    dims[1] != PERTOKEN_COLS)
			rc = err_set(err, ERR_FORMAT, "%s: dataset 'tokens' is not float [tokens, %d]",
				     path, PERTOKEN_COLS);
		else if (dims[0] > PERTOKEN_MAX_TOKENS)
			rc = err_set(err, ERR_FORMAT, "%s: dataset 'tokens' claims %llu tokens, more than "
				     "%lld", path, (unsigned long long)dims[0],
				     (long long)PERTOKEN_MAX_TOKENS);
		if (t >= 0)
			H5Tclose(t);
		if (sp >= 0)
			H5Sclose(sp);
	}
	if (!rc)
		rc = h5attr_check_stored(d, path, "tokens", err);
	size_t bytes = 0;
	if (!rc && (claim_mul3(&bytes, (size_t)dims[0] + 1, PERTOKEN_COLS, sizeof(double)) ||
		    claim_memory(path, "reading per-token detail", bytes, err)))
		rc = err_set(err, ERR_NOMEM, "%s: %llu tokens do not fit in memory", path,
			     (unsigned long long)dims[0]);
	double *data = rc ? NULL : malloc(bytes);
	if (!rc && (!data || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0))
		rc = err_set(err, ERR_FORMAT, "%s: cannot read 'tokens' (corrupt?)", path);
	if (!rc) {
		fprintf(out, "token,%s\n", PERTOKEN_COLUMNS);
		for (hsize_t k = 0; k < dims[0]; k++) {
			fprintf(out, "%llu", (unsigned long long)k);
			for (int c = 0; c < PERTOKEN_COLS; c++)
				fprintf(out, ",%.10g", data[k * PERTOKEN_COLS + c]);
			fputc('\n', out);
		}
	}
	free(data);
	if (d >= 0)
		H5Dclose(d);
	H5Fclose(f);
	return rc;
}
