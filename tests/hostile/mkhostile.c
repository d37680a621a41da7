/*
 * mkhostile: write the hostile input files of tests/data/hostile/ (issue 13's
 * measured crashes and their relatives). Each is a small HDF5 file whose
 * attributes claim something the file does not hold, or claim too much.
 *
 *   mkhostile DIR
 *
 * The files are committed; this program documents how they were made and
 * rebuilds them (built by `make tests/hostile/mkhostile`).
 */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct spec {
	const char *name;
	int64_t layers, d_ffn, tokens_attr; /* what the attributes claim */
	double tokens_float;                /* nonzero: tokens is this float instead */
	hsize_t tokens_stored;              /* the datasets' extent */
	int write_data;                     /* write the rows (else chunks stay unwritten) */
	int version;
	uint8_t fill;                       /* byte of every active row */
};

static void attr(hid_t f, const char *name, hid_t type, const void *v)
{
	hid_t sp = H5Screate(H5S_SCALAR);
	hid_t a = H5Acreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
	H5Awrite(a, type, v);
	H5Aclose(a);
	H5Sclose(sp);
}

static void attr_str(hid_t f, const char *name, const char *s)
{
	hid_t t = H5Tcopy(H5T_C_S1);
	H5Tset_size(t, strlen(s) + 1);
	attr(f, name, t, s);
	H5Tclose(t);
}

static hid_t dataset(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
		     const hsize_t *chunk, int fletcher)
{
	hsize_t maxd[3] = {H5S_UNLIMITED, dims[1], dims[2]};
	hid_t sp = H5Screate_simple(rank, dims, maxd);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_chunk(dcpl, rank, chunk);
	H5Pset_deflate(dcpl, 1);
	if (fletcher)
		H5Pset_fletcher32(dcpl);
	hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	H5Pclose(dcpl);
	H5Sclose(sp);
	return d;
}

static int write_trace(const char *dir, const struct spec *s)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, s->name);
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
	hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
	H5Pclose(fapl);
	if (f < 0)
		return -1;
	int v = s->version;
	int32_t zero = 0;
	uint64_t seed = 1;
	double thr = 0;
	attr_str(f, "schema", "lifsim-trace");
	attr(f, "schema_version", H5T_NATIVE_INT, &v);
	attr_str(f, "model", "hostile");
	attr(f, "layers", H5T_NATIVE_INT64, &s->layers);
	attr(f, "d_ffn", H5T_NATIVE_INT64, &s->d_ffn);
	attr(f, "d_model", H5T_NATIVE_INT32, &zero);
	if (s->tokens_float)
		attr(f, "tokens", H5T_NATIVE_DOUBLE, &s->tokens_float);
	else
		attr(f, "tokens", H5T_NATIVE_INT64, &s->tokens_attr);
	attr_str(f, "source", "synthetic");
	attr_str(f, "generator", "mkhostile");
	attr(f, "seed", H5T_NATIVE_UINT64, &seed);
	attr(f, "threshold", H5T_NATIVE_DOUBLE, &thr);
	hsize_t rb = (hsize_t)(s->d_ffn + 7) / 8, T = s->tokens_stored;
	hsize_t L = (hsize_t)s->layers > 256 ? 1 : (hsize_t)s->layers;
	hsize_t td[1] = {T}, tc[1] = {1024}, ad[3] = {T, L, rb}, ac[3] = {64, 1, rb};
	hid_t dt = dataset(f, "tokens", H5T_STD_I32LE, 1, td, tc, v >= 2);
	hid_t da = dataset(f, "active", H5T_STD_U8LE, 3, ad, ac, v >= 2);
	if (s->write_data && T) {
		int32_t *ids = calloc(T, sizeof *ids);
		uint8_t *bits = malloc(T * L * rb);
		memset(bits, s->fill, T * L * rb);
		if (s->d_ffn % 8) /* padding bits past d_ffn stay zero */
			for (hsize_t r = 0; r < T * L; r++)
				bits[r * rb + rb - 1] &= (uint8_t)((1u << (s->d_ffn % 8)) - 1);
		H5Dwrite(dt, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
		H5Dwrite(da, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, bits);
		free(ids), free(bits);
	}
	H5Dclose(dt), H5Dclose(da);
	return H5Fclose(f) < 0 ? -1 : 0;
}

static const struct spec specs[] = {
	/* the 2.5 KB file: tokens = 2^62 overflowed (tokens+1)*4 */
	{.name = "tokens_2e62.h5", .layers = 2, .d_ffn = 64, .tokens_attr = (int64_t)1 << 62,
	 .tokens_stored = 4, .write_data = 1, .version = 2, .fill = 0x11},
	/* a float tokens attribute (10.5) */
	{.name = "tokens_float.h5", .layers = 2, .d_ffn = 64, .tokens_float = 10.5,
	 .tokens_stored = 10, .write_data = 1, .version = 2, .fill = 0x11},
	/* the attributes claim more tokens than the datasets' extent */
	{.name = "tokens_past_extent.h5", .layers = 2, .d_ffn = 64, .tokens_attr = 1000,
	 .tokens_stored = 4, .write_data = 1, .version = 2, .fill = 0x11},
	/* the 3.7 KB file asking for 10 GB: an extent of unwritten chunks */
	{.name = "sparse_10gb.h5", .layers = 32, .d_ffn = 16384, .tokens_attr = 160000,
	 .tokens_stored = 160000, .write_data = 0, .version = 2},
	/* the 5.8 KB file: 256 layers x 4,194,304 neurons claimed */
	{.name = "layers256_dffn4m.h5", .layers = 256, .d_ffn = 4194304, .tokens_attr = 16,
	 .tokens_stored = 16, .write_data = 0, .version = 2},
	/* d_ffn past the bound (4,194,305) */
	{.name = "dffn_past_bound.h5", .layers = 1, .d_ffn = 4194305, .tokens_attr = 1,
	 .tokens_stored = 1, .write_data = 0, .version = 2},
	/* layers = 2^40 (an int64 that clamps in an int32 read) */
	{.name = "layers_2e40.h5", .layers = (int64_t)1 << 40, .d_ffn = 64, .tokens_attr = 4,
	 .tokens_stored = 4, .write_data = 1, .version = 2, .fill = 0x11},
	/* valid, every neuron inactive: stats printed -nan */
	{.name = "all_inactive.h5", .layers = 2, .d_ffn = 64, .tokens_attr = 32,
	 .tokens_stored = 32, .write_data = 1, .version = 2, .fill = 0},
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkhostile DIR\n");
		return 2;
	}
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		struct spec s = specs[i];
		int no_sum = s.version > 100;
		if (no_sum)
			s.version -= 100;
		/* a version-2 file without the filter: write it as v1 would, then claim v2 */
		if (no_sum)
			s.version = 1;
		if (write_trace(argv[1], &s)) {
			fprintf(stderr, "mkhostile: %s: cannot write\n", s.name);
			return 1;
		}
		if (no_sum) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[1], s.name);
			hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
			hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
			int v = 2;
			H5Awrite(a, H5T_NATIVE_INT, &v);
			H5Aclose(a);
			H5Fclose(f);
		}
		printf("%s\n", s.name);
	}
	return 0;
}
