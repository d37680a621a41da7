#include "traces/router.h"

#include "traces/h5attr.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_TOKENS 256

static int check_meta(const struct router_meta *m, const char *what, struct lif_err *err)
{
	if (m->layers < 1 || m->layers > TRACE_MAX_LAYERS)
		return err_set(err, ERR_INVAL, "%s: layers %d outside [1, %d]", what, m->layers,
			       TRACE_MAX_LAYERS);
	if (m->experts < 1 || m->experts > ROUTER_MAX_EXPERTS)
		return err_set(err, ERR_INVAL, "%s: experts %d outside [1, %d]", what, m->experts,
			       ROUTER_MAX_EXPERTS);
	if (m->top_k < 1 || m->top_k > m->experts || m->top_k > ROUTER_MAX_TOPK)
		return err_set(err, ERR_INVAL, "%s: experts_per_token %d outside [1, min(experts, %d)]",
			       what, m->top_k, ROUTER_MAX_TOPK);
	if (m->d_expert < 1 || m->d_expert > TRACE_MAX_DFFN)
		return err_set(err, ERR_INVAL, "%s: d_ffn (the expert width) %d outside [1, %d]", what,
			       m->d_expert, TRACE_MAX_DFFN);
	if (m->tokens < 0)
		return err_set(err, ERR_INVAL, "%s: negative token count", what);
	if (m->d_model < 0 || m->d_model > TRACE_MAX_DMODEL)
		return err_set(err, ERR_INVAL, "%s: d_model (the router inputs' width) %d outside [0, %d]",
			       what, m->d_model, TRACE_MAX_DMODEL);
	return 0;
}

struct router_trace *router_trace_new(const struct router_meta *meta, struct lif_err *err)
{
	if (check_meta(meta, "router trace", err))
		return NULL;
	struct router_trace *rt = calloc(1, sizeof *rt);
	size_t n = (size_t)meta->layers * meta->tokens * meta->top_k;
	if (rt) {
		rt->meta = *meta;
		rt->token_ids = calloc(meta->tokens ? meta->tokens : 1, sizeof *rt->token_ids);
		rt->ids = calloc(n ? n : 1, sizeof *rt->ids);
		rt->weights = calloc(n ? n : 1, sizeof *rt->weights);
		rt->density = meta->has_density ? calloc(n ? n : 1, sizeof *rt->density) : NULL;
		size_t ni = (size_t)meta->layers * meta->tokens * meta->d_model;
		rt->inputs = meta->d_model ? calloc(ni ? ni : 1, sizeof *rt->inputs) : NULL;
	}
	if (!rt || !rt->token_ids || !rt->ids || !rt->weights ||
	    (meta->has_density && !rt->density) || (meta->d_model && !rt->inputs)) {
		router_trace_free(rt);
		err_set(err, ERR_NOMEM, "out of memory for a router trace of %lld tokens",
			(long long)meta->tokens);
		return NULL;
	}
	return rt;
}

void router_trace_free(struct router_trace *rt)
{
	if (!rt)
		return;
	free(rt->token_ids);
	free(rt->ids);
	free(rt->weights);
	free(rt->density);
	free(rt->inputs);
	free(rt);
}

/* One (layer, token) row: ids in range and distinct, weights finite >= 0. */
static int check_row(const struct router_trace *rt, int l, int64_t t, const char *what,
		     struct lif_err *err)
{
	const struct router_meta *m = &rt->meta;
	const int16_t *id = router_ids(rt, l, t);
	const float *w = router_weights(rt, l, t);
	size_t off = ((size_t)l * m->tokens + t) * m->top_k;
	for (int i = 0; i < m->top_k; i++) {
		if (id[i] < 0 || id[i] >= m->experts)
			return err_set(err, ERR_FORMAT, "%s: token %lld layer %d: expert id %d outside "
				       "[0, %d)", what, (long long)t, l, id[i], m->experts);
		for (int j = 0; j < i; j++)
			if (id[j] == id[i])
				return err_set(err, ERR_FORMAT, "%s: token %lld layer %d: expert %d "
					       "selected twice", what, (long long)t, l, id[i]);
		if (!isfinite(w[i]) || w[i] < 0)
			return err_set(err, ERR_FORMAT, "%s: token %lld layer %d: gate weight %g is not "
				       "a finite value >= 0", what, (long long)t, l, (double)w[i]);
		if (rt->density && !(rt->density[off + i] >= 0 && rt->density[off + i] <= 1))
			return err_set(err, ERR_FORMAT, "%s: token %lld layer %d: expert density %g "
				       "outside [0, 1]", what, (long long)t, l,
				       (double)rt->density[off + i]);
	}
	return 0;
}

int router_trace_check(const struct router_trace *rt, const char *what, struct lif_err *err)
{
	if (check_meta(&rt->meta, what, err))
		return ERR_FORMAT;
	for (int l = 0; l < rt->meta.layers; l++)
		for (int64_t t = 0; t < rt->meta.tokens; t++)
			if (check_row(rt, l, t, what, err))
				return ERR_FORMAT;
	size_t ni = rt->inputs ? (size_t)rt->meta.layers * rt->meta.tokens * rt->meta.d_model : 0;
	for (size_t i = 0; i < ni; i++)
		if (!isfinite(rt->inputs[i]))
			return err_set(err, ERR_FORMAT, "%s: router input of token %lld layer %d is not "
				       "finite", what, (long long)(i / rt->meta.d_model % rt->meta.tokens),
				       (int)(i / rt->meta.d_model / rt->meta.tokens));
	for (int64_t t = 0; t < rt->meta.tokens; t++)
		if (rt->token_ids[t] < 0)
			return err_set(err, ERR_FORMAT, "%s: token %lld has a negative id", what,
				       (long long)t);
	return 0;
}

/* ---------------------------------------------------------------- writer */

/* Layer-major (L, T, k) <-> file order (T, L, k), element size es. */
static void transpose(void *dst, const void *src, int64_t T, int L, int k, size_t es,
		      int to_file)
{
	for (int l = 0; l < L; l++)
		for (int64_t t = 0; t < T; t++) {
			size_t lm = ((size_t)l * T + t) * k * es, fm = ((size_t)t * L + l) * k * es;
			if (to_file)
				memcpy((char *)dst + fm, (const char *)src + lm, k * es);
			else
				memcpy((char *)dst + lm, (const char *)src + fm, k * es);
		}
}

static int write_dataset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank,
			 const hsize_t *dims, const void *buf)
{
	hsize_t maxd[3] = {H5S_UNLIMITED, dims[1], rank > 2 ? dims[2] : 0};
	hsize_t chunk[3] = {CHUNK_TOKENS, dims[1], rank > 2 ? dims[2] : 0};
	hid_t sp = H5Screate_simple(rank, dims, maxd);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_chunk(dcpl, rank, chunk);
	H5Pset_shuffle(dcpl);
	H5Pset_deflate(dcpl, 1);
	hid_t d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	int rc = d < 0 || (dims[0] > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0);
	if (d >= 0)
		H5Dclose(d);
	H5Pclose(dcpl);
	H5Sclose(sp);
	return rc ? -1 : 0;
}

static int write_attrs(hid_t f, const struct router_meta *m)
{
	int v = TRACE_SCHEMA_VERSION, rc = 0;
	int32_t dims[5] = {m->layers, m->d_expert, m->d_model, m->experts, m->top_k};
	double thr = 0;
	uint64_t seed = m->seed;
	rc |= h5attr_put_str(f, "schema", TRACE_SCHEMA);
	rc |= h5attr_put(f, "schema_version", H5T_NATIVE_INT, 0, &v);
	rc |= h5attr_put_str(f, "model", m->model);
	rc |= h5attr_put(f, "layers", H5T_NATIVE_INT32, 0, &dims[0]);
	rc |= h5attr_put(f, "d_ffn", H5T_NATIVE_INT32, 0, &dims[1]);
	rc |= h5attr_put(f, "d_model", H5T_NATIVE_INT32, 0, &dims[2]);
	rc |= h5attr_put(f, "experts", H5T_NATIVE_INT32, 0, &dims[3]);
	rc |= h5attr_put(f, "experts_per_token", H5T_NATIVE_INT32, 0, &dims[4]);
	rc |= h5attr_set_i64(f, "tokens", m->tokens);
	rc |= h5attr_put_str(f, "source", m->source == TRACE_SOURCE_RECORDED ? "recorded" : "synthetic");
	rc |= h5attr_put_str(f, "generator", m->generator);
	rc |= h5attr_put(f, "seed", H5T_NATIVE_UINT64, 0, &seed);
	rc |= h5attr_put(f, "threshold", H5T_NATIVE_DOUBLE, 0, &thr);
	return rc;
}

static int write_all(hid_t f, const struct router_trace *rt, void *scratch)
{
	const struct router_meta *m = &rt->meta;
	hsize_t d1[1] = {(hsize_t)m->tokens}, d3[3] = {(hsize_t)m->tokens, m->layers, m->top_k};
	int64_t T = m->tokens;
	if (write_attrs(f, m) ||
	    write_dataset(f, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, (hsize_t[]){d1[0], 0}, rt->token_ids))
		return -1;
	transpose(scratch, rt->ids, T, m->layers, m->top_k, sizeof *rt->ids, 1);
	if (write_dataset(f, "router_experts", H5T_STD_I16LE, H5T_NATIVE_INT16, 3, d3, scratch))
		return -1;
	transpose(scratch, rt->weights, T, m->layers, m->top_k, sizeof *rt->weights, 1);
	if (write_dataset(f, "router_weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d3, scratch))
		return -1;
	if (rt->density) {
		transpose(scratch, rt->density, T, m->layers, m->top_k, sizeof *rt->density, 1);
		if (write_dataset(f, "expert_density", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d3, scratch))
			return -1;
	}
	if (!rt->inputs)
		return 0;
	hsize_t di[3] = {(hsize_t)T, m->layers, m->d_model};
	float *buf = malloc(T ? (size_t)T * m->layers * m->d_model * sizeof *buf : 1);
	if (!buf)
		return errno = ENOMEM, -1;
	transpose(buf, rt->inputs, T, m->layers, m->d_model, sizeof *buf, 1);
	int rc = write_dataset(f, "router_inputs", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, di, buf);
	free(buf);
	return rc;
}

int router_write(const char *path, const struct router_trace *rt, struct lif_err *err)
{
	if (router_trace_check(rt, path, err))
		return err->code;
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	size_t n = (size_t)rt->meta.layers * rt->meta.tokens * rt->meta.top_k;
	void *scratch = malloc(n ? n * sizeof(float) : 1);
	if (!scratch)
		return err_set(err, ERR_NOMEM, "out of memory writing %s", path);
	hid_t f = h5attr_create_default(tmp);
	int rc = 0;
	if (f < 0)
		rc = err_set(err, ERR_IO, "%s: cannot create trace file: %s", tmp, strerror(errno));
	else if (write_all(f, rt, scratch))
		rc = err_set(err, ERR_IO, "%s: cannot write the router trace: %s", tmp,
			     h5attr_why(errno));
	if (f >= 0 && h5attr_close_written(f, NULL, 0, rc != 0, tmp) && !rc)
		rc = err_set(err, ERR_IO, "%s: cannot write the router trace: %s", tmp,
			     h5attr_why(errno));
	if (!rc && rename(tmp, path))
		rc = err_set(err, ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
	if (rc)
		unlink(tmp);
	free(scratch);
	return rc;
}

/* ---------------------------------------------------------------- reader */

static int read_meta(hid_t f, const char *path, struct router_meta *m, struct lif_err *err)
{
	char schema[64], source[32];
	int version;
	int32_t layers, d_ffn, experts, top_k;
	memset(m, 0, sizeof *m);
	if (h5attr_get_str(f, "schema", schema, sizeof schema) || strcmp(schema, TRACE_SCHEMA))
		return err_set(err, ERR_FORMAT, "%s: not a lifsim trace (schema attribute is not '%s')",
			       path, TRACE_SCHEMA);
	if (h5attr_get(f, "schema_version", H5T_NATIVE_INT, 0, &version))
		return err_set(err, ERR_FORMAT, "%s: missing schema_version attribute", path);
	if (version < TRACE_SCHEMA_VERSION_ROUTER || version > TRACE_SCHEMA_VERSION)
		return err_set(err, ERR_FORMAT, "%s: trace schema version %d has no router datasets "
			       "(router traces are versions %d..%d)", path, version,
			       TRACE_SCHEMA_VERSION_ROUTER, TRACE_SCHEMA_VERSION);
	if (H5Lexists(f, "router_experts", H5P_DEFAULT) <= 0)
		return err_set(err, ERR_FORMAT, "%s: not a router trace (no router_experts dataset)",
			       path);
	if (h5attr_get(f, "layers", H5T_NATIVE_INT32, 0, &layers) ||
	    h5attr_get(f, "d_ffn", H5T_NATIVE_INT32, 0, &d_ffn) ||
	    h5attr_get(f, "experts", H5T_NATIVE_INT32, 0, &experts) ||
	    h5attr_get(f, "experts_per_token", H5T_NATIVE_INT32, 0, &top_k) ||
	    h5attr_get(f, "tokens", H5T_NATIVE_INT64, 0, &m->tokens) ||
	    h5attr_get(f, "seed", H5T_NATIVE_UINT64, 0, &m->seed) ||
	    h5attr_get_str(f, "source", source, sizeof source) ||
	    h5attr_get_str(f, "model", m->model, sizeof m->model))
		return err_set(err, ERR_FORMAT, "%s: a required root attribute is missing or malformed "
			       "(layers, d_ffn, experts, experts_per_token, tokens, seed, source, "
			       "model)", path);
	h5attr_get_str(f, "generator", m->generator, sizeof m->generator);
	m->layers = layers, m->d_expert = d_ffn, m->experts = experts, m->top_k = top_k;
	if (strcmp(source, "recorded") && strcmp(source, "synthetic"))
		return err_set(err, ERR_FORMAT, "%s: source '%s' is neither recorded nor synthetic", path,
			       source);
	m->source = !strcmp(source, "recorded") ? TRACE_SOURCE_RECORDED : TRACE_SOURCE_SYNTHETIC;
	m->has_density = H5Lexists(f, "expert_density", H5P_DEFAULT) > 0;
	int32_t dm = 0;
	if (H5Lexists(f, "router_inputs", H5P_DEFAULT) > 0 &&
	    (h5attr_get(f, "d_model", H5T_NATIVE_INT32, 0, &dm) || dm < 1))
		return err_set(err, ERR_FORMAT, "%s: router_inputs present but the d_model attribute "
			       "is missing or < 1", path);
	m->d_model = dm;
	return check_meta(m, path, err) ? ERR_FORMAT : 0;
}

/* Read dataset name, checking class, element size and shape. */
static int read_dataset(hid_t f, const char *path, const char *name, H5T_class_t cls,
			size_t es, hid_t mtype, int rank, const hsize_t *want, void *out,
			struct lif_err *err)
{
	hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
	if (d < 0)
		return err_set(err, ERR_FORMAT, "%s: dataset '%s' is missing", path, name);
	hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
	hsize_t dims[4] = {0};
	int ok = H5Sget_simple_extent_ndims(sp) == rank && H5Tget_class(t) == cls &&
		 H5Tget_size(t) == es;
	if (ok)
		H5Sget_simple_extent_dims(sp, dims, NULL);
	for (int i = 0; ok && i < rank; i++)
		ok = dims[i] == want[i];
	int rc = 0;
	if (!ok)
		rc = err_set(err, ERR_FORMAT, "%s: dataset '%s' does not have the expected type and "
			     "shape [%llu,%llu,%llu]", path, name, (unsigned long long)want[0],
			     (unsigned long long)(rank > 1 ? want[1] : 0),
			     (unsigned long long)(rank > 2 ? want[2] : 0));
	else if (want[0] > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
		rc = err_set(err, ERR_FORMAT, "%s: cannot read dataset '%s' (corrupt or truncated)",
			     path, name);
	H5Tclose(t);
	H5Sclose(sp);
	H5Dclose(d);
	return rc;
}

static int read_all(hid_t f, const char *path, struct router_trace *rt, void *scratch,
		    struct lif_err *err)
{
	const struct router_meta *m = &rt->meta;
	hsize_t d1[1] = {(hsize_t)m->tokens}, d3[3] = {(hsize_t)m->tokens, m->layers, m->top_k};
	int64_t T = m->tokens;
	if (read_dataset(f, path, "tokens", H5T_INTEGER, 4, H5T_NATIVE_INT32, 1, d1, rt->token_ids,
			 err) ||
	    read_dataset(f, path, "router_experts", H5T_INTEGER, 2, H5T_NATIVE_INT16, 3, d3, scratch,
			 err))
		return ERR_FORMAT;
	transpose(rt->ids, scratch, T, m->layers, m->top_k, sizeof *rt->ids, 0);
	if (read_dataset(f, path, "router_weights", H5T_FLOAT, 4, H5T_NATIVE_FLOAT, 3, d3, scratch,
			 err))
		return ERR_FORMAT;
	transpose(rt->weights, scratch, T, m->layers, m->top_k, sizeof *rt->weights, 0);
	if (rt->density) {
		if (read_dataset(f, path, "expert_density", H5T_FLOAT, 4, H5T_NATIVE_FLOAT, 3, d3,
				 scratch, err))
			return ERR_FORMAT;
		transpose(rt->density, scratch, T, m->layers, m->top_k, sizeof *rt->density, 0);
	}
	if (!rt->inputs)
		return 0;
	hsize_t di[3] = {(hsize_t)T, m->layers, m->d_model};
	float *buf = malloc(T ? (size_t)T * m->layers * m->d_model * sizeof *buf : 1);
	if (!buf)
		return err_set(err, ERR_NOMEM, "%s: out of memory for router_inputs", path);
	int rc = read_dataset(f, path, "router_inputs", H5T_FLOAT, 4, H5T_NATIVE_FLOAT, 3, di, buf, err);
	if (!rc)
		transpose(rt->inputs, buf, T, m->layers, m->d_model, sizeof *buf, 0);
	free(buf);
	return rc ? ERR_FORMAT : 0;
}

struct router_trace *router_load(const char *path, struct lif_err *err)
{
	struct router_meta m;
	struct router_trace *rt = NULL;
	void *scratch = NULL;
	hid_t f = h5attr_open_readonly(path, err);
	int rc = f < 0 ? ERR_FORMAT : read_meta(f, path, &m, err);
	if (!rc && !(rt = router_trace_new(&m, err)))
		rc = err->code;
	size_t n = rc ? 0 : (size_t)m.layers * m.tokens * m.top_k;
	if (!rc && !(scratch = malloc(n ? n * sizeof(float) : 1)))
		rc = err_set(err, ERR_NOMEM, "%s: out of memory", path);
	if (!rc)
		rc = read_all(f, path, rt, scratch, err);
	if (!rc)
		rc = router_trace_check(rt, path, err);
	free(scratch);
	if (f >= 0)
		H5Fclose(f);
	if (rc) {
		router_trace_free(rt);
		return NULL;
	}
	return rt;
}

int router_is_router_trace(const char *path)
{
	struct lif_err e = {0};
	if (access(path, R_OK))
		return 0;
	hid_t f = h5attr_open_readonly(path, &e);
	if (f < 0)
		return 0;
	int yes = H5Lexists(f, "router_experts", H5P_DEFAULT) > 0;
	H5Fclose(f);
	return yes;
}
