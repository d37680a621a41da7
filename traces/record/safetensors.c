#include "traces/record/safetensors.h"

#include "traces/record/matmul.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER_BYTES (100 << 20) /* the reference implementation's limit */
#define ST_MAX_FILES 1024

struct st_map {
	char *path;
	void *base;
	size_t bytes;
};

struct st_file {
	char dir[4096];      /* the checkpoint directory, for messages */
	struct st_map *maps; /* (nmaps) */
	int nmaps;
	struct st_tensor *tensors; /* (ntensors) */
	int ntensors, cap;
};

static const struct {
	const char *name;
	int dtype;
	int bytes;
} dtypes[] = {
	{"F32", ST_F32, 4},   {"F16", ST_F16, 2},   {"BF16", ST_BF16, 2}, {"F64", ST_OTHER, 8},
	{"I64", ST_OTHER, 8}, {"I32", ST_OTHER, 4}, {"I16", ST_OTHER, 2}, {"I8", ST_OTHER, 1},
	{"U64", ST_OTHER, 8}, {"U32", ST_OTHER, 4}, {"U16", ST_OTHER, 2}, {"U8", ST_OTHER, 1},
	{"BOOL", ST_OTHER, 1}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
};

float st_f16_to_f32(uint16_t h)
{
	int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	float v;
	if (e == 0)
		v = ldexpf((float)m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexpf((float)(m | 1024), e - 25);
	return sign ? -v : v;
}

float st_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ---------------------------------------------------------------- mapping */

static int map_file(struct st_map *m, const char *path, struct lif_err *err)
{
	m->path = strdup(path);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) < 0 || sb.st_size < 8) {
		close(fd);
		return err_set(err, ERR_FORMAT, "%s: truncated safetensors file (%lld bytes, "
				"shorter than the 8-byte header length)", path, (long long)sb.st_size);
	}
	m->bytes = (size_t)sb.st_size;
	m->base = mmap(NULL, m->bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return err_set(err, ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
	}
	return 0;
}

static struct st_tensor *add_tensor(struct st_file *st)
{
	if (st->ntensors == st->cap) {
		int cap = st->cap ? 2 * st->cap : 64;
		void *p = realloc(st->tensors, (size_t)cap * sizeof *st->tensors);
		if (!p)
			return NULL;
		st->tensors = p;
		st->cap = cap;
	}
	struct st_tensor *t = &st->tensors[st->ntensors++];
	memset(t, 0, sizeof *t);
	return t;
}

/* Parse one header entry into t, checking dtype, shape and offsets. */
static int parse_entry(struct st_tensor *t, const cJSON *e, const struct st_map *m,
		       size_t data_start, struct lif_err *err)
{
	const char *p = m->path, *n = t->name;
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
	if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
	    cJSON_GetArraySize(off) != 2)
		return err_set(err, ERR_FORMAT, "%s: malformed header entry for tensor '%s' "
				"(needs dtype, shape, data_offsets[2])", p, n);
	int bytes = 0;
	for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
		if (!strcmp(dt->valuestring, dtypes[i].name)) {
			t->dtype = dtypes[i].dtype;
			bytes = dtypes[i].bytes;
		}
	if (!bytes)
		return err_set(err, ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", p, n,
			       dt->valuestring);
	snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
	t->ndim = cJSON_GetArraySize(sh);
	if (t->ndim > ST_MAX_DIMS)
		return err_set(err, ERR_FORMAT, "%s: tensor '%s' has %d dims (max %d)", p, n, t->ndim,
			       ST_MAX_DIMS);
	t->numel = 1;
	for (int i = 0; i < t->ndim; i++) {
		const cJSON *d = cJSON_GetArrayItem(sh, i);
		if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 ||
		    d->valuedouble != floor(d->valuedouble))
			return err_set(err, ERR_FORMAT, "%s: tensor '%s' has a bad shape", p, n);
		t->shape[i] = (int64_t)d->valuedouble;
		if (t->shape[i] && t->numel > (INT64_C(1) << 50) / t->shape[i])
			return err_set(err, ERR_FORMAT, "%s: tensor '%s' is impossibly large", p, n);
		t->numel *= t->shape[i];
	}
	double b = cJSON_GetArrayItem(off, 0)->valuedouble, en = cJSON_GetArrayItem(off, 1)->valuedouble;
	if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) ||
	    b < 0 || en < b)
		return err_set(err, ERR_FORMAT, "%s: tensor '%s' has bad data_offsets", p, n);
	if ((double)t->numel * bytes != en - b)
		return err_set(err, ERR_FORMAT, "%s: tensor '%s': data_offsets span %.0f bytes but "
				"shape and dtype need %lld", p, n, en - b, (long long)t->numel * bytes);
	if (data_start + en > (double)m->bytes)
		return err_set(err, ERR_FORMAT, "%s: truncated: tensor '%s' ends at byte %.0f but the "
				"file has %zu", p, n, data_start + en, m->bytes);
	t->data = (const char *)m->base + data_start + (size_t)b;
	t->file = m->path;
	return 0;
}

static int parse_header(struct st_file *st, const struct st_map *m, struct lif_err *err)
{
	uint64_t n = 0;
	const unsigned char *u = m->base;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | u[i];
	if (n > ST_MAX_HEADER_BYTES || n > m->bytes - 8)
		return err_set(err, ERR_FORMAT, "%s: truncated or corrupt: header length %llu but "
				"the file has %zu bytes", m->path, (unsigned long long)n, m->bytes);
	cJSON *j = cJSON_ParseWithLength((const char *)u + 8, (size_t)n);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return err_set(err, ERR_FORMAT, "%s: malformed header: not a JSON object", m->path);
	}
	int rc = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		if (!strcmp(e->string, "__metadata__"))
			continue;
		struct st_tensor *t = add_tensor(st);
		if (!t || !(t->name = strdup(e->string))) {
			rc = err_set(err, ERR_NOMEM, "out of memory");
			break;
		}
		if ((rc = parse_entry(t, e, m, 8 + (size_t)n, err)))
			break;
	}
	cJSON_Delete(j);
	return rc;
}

/* ---------------------------------------------------------------- opening */

char *st_read_text(const char *path, size_t max_bytes, struct lif_err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	/* a directory or a device is not a text file (on some file systems
	 * a directory opens and reads as empty) */
	struct stat sb;
	if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
		err_set(err, ERR_INVAL, S_ISDIR(sb.st_mode) ? "%s: is a directory, not a file"
							   : "%s: is not a regular file", path);
		fclose(f);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = n >= 0 && (size_t)n <= max_bytes ? malloc((size_t)n + 1) : NULL;
	if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
		err_set(err, ERR_IO, n >= 0 && (size_t)n > max_bytes ? "%s: larger than expected" : "%s: cannot read",
			path);
		free(s);
		s = NULL;
	} else {
		s[n] = '\0';
	}
	fclose(f);
	return s;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Shard names: from the index's weight_map, or every *.safetensors file. */
static int list_shards(const char *dir, char ***names, int *n, struct lif_err *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	*names = calloc(ST_MAX_FILES, sizeof **names);
	*n = 0;
	if (access(path, F_OK) == 0) {
		char *txt = st_read_text(path, (size_t)1 << 30, err);
		if (!txt) /* its message says why (cannot open, too large, ...) */
			return err->code;
		cJSON *j = cJSON_Parse(txt);
		free(txt);
		if (!j)
			return err_set(err, ERR_FORMAT, "%s: malformed index: not valid JSON", path);
		const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map"), *e;
		if (!cJSON_IsObject(wm)) {
			cJSON_Delete(j);
			return err_set(err, ERR_FORMAT, "%s: malformed index: no \"weight_map\" object", path);
		}
		cJSON_ArrayForEach(e, wm) {
			int seen = !cJSON_IsString(e);
			for (int i = 0; !seen && i < *n; i++)
				seen = !strcmp((*names)[i], e->valuestring);
			if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
				/* the message before the tree it quotes is freed
				 * (tests/fuzz/found/checkpoint-crash-c9291486) */
				int rc = err_set(err, ERR_FORMAT, "%s: weight_map entry '%s' is not a "
						 "file name", path, e->string);
				cJSON_Delete(j);
				return rc;
			}
			if (!seen && *n < ST_MAX_FILES)
				(*names)[(*n)++] = strdup(e->valuestring);
		}
		cJSON_Delete(j);
		return 0;
	}
	DIR *d = opendir(dir);
	if (!d)
		return err_set(err, ERR_IO, "%s: cannot open checkpoint directory: %s", dir, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d)) && *n < ST_MAX_FILES) {
		size_t l = strlen(de->d_name);
		if (l > 12 && !strcmp(de->d_name + l - 12, ".safetensors"))
			(*names)[(*n)++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(*names, (size_t)*n, sizeof **names, cmp_str);
	if (!*n)
		return err_set(err, ERR_IO, "%s: no *.safetensors file in the checkpoint directory", dir);
	return 0;
}

struct st_file *st_open(const char *dir, struct lif_err *err)
{
	struct st_file *st = calloc(1, sizeof *st);
	char **names = NULL;
	int n = 0;
	if (!st || list_shards(dir, &names, &n, err))
		goto fail;
	snprintf(st->dir, sizeof st->dir, "%s", dir);
	st->maps = calloc((size_t)n + 1, sizeof *st->maps);
	for (int i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		st->nmaps++;
		if (map_file(&st->maps[i], path, err) || parse_header(st, &st->maps[i], err))
			goto fail;
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return st;
fail:
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	st_close(st);
	return NULL;
}

void st_close(struct st_file *st)
{
	if (!st)
		return;
	for (int i = 0; i < st->nmaps; i++) {
		if (st->maps[i].base)
			munmap(st->maps[i].base, st->maps[i].bytes);
		free(st->maps[i].path);
	}
	for (int i = 0; i < st->ntensors; i++)
		free((char *)st->tensors[i].name);
	free(st->maps);
	free(st->tensors);
	free(st);
}

const struct st_tensor *st_find(const struct st_file *st, const char *name)
{
	for (int i = 0; i < st->ntensors; i++)
		if (!strcmp(st->tensors[i].name, name))
			return &st->tensors[i];
	return NULL;
}

int64_t st_numel(const struct st_file *st)
{
	int64_t n = 0;
	for (int i = 0; i < st->ntensors; i++)
		n += st->tensors[i].numel;
	return n;
}

int64_t st_data_bytes(const struct st_file *st)
{
	int64_t b = 0;
	for (int i = 0; i < st->ntensors; i++)
		b += st->tensors[i].numel * (st->tensors[i].dtype == ST_F32 ? 4 :
					     st->tensors[i].dtype == ST_OTHER ? 0 : 2);
	return b;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
	size_t o = (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < ndim && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
	if (o < cap)
		snprintf(buf + o, cap - o, "]");
}

const struct st_tensor *st_get(const struct st_file *st, const char *name, int ndim,
			       const int64_t *shape, struct lif_err *err)
{
	const struct st_tensor *t = st_find(st, name);
	if (!t) {
		err_set(err, ERR_FORMAT, "%s: checkpoint has no tensor '%s'", st->dir, name);
		return NULL;
	}
	int same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = t->shape[i] == shape[i];
	if (!same) {
		char want[128], got[128];
		shape_str(want, sizeof want, ndim, shape);
		shape_str(got, sizeof got, t->ndim, t->shape);
		err_set(err, ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", t->file, name, got, want);
		return NULL;
	}
	if (t->dtype == ST_OTHER) {
		err_set(err, ERR_FORMAT, "%s: tensor '%s' has unsupported dtype %s (supported: F32, F16, BF16)",
			t->file, name, t->dtype_name);
		return NULL;
	}
	return t;
}

float *st_load_f32(const struct st_file *st, const char *name, int ndim, const int64_t *shape,
		   struct lif_err *err)
{
	const struct st_tensor *t = st_get(st, name, ndim, shape, err);
	if (!t)
		return NULL;
	float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
	if (!out) {
		err_set(err, ERR_NOMEM, "out of memory loading tensor '%s'", name);
		return NULL;
	}
	const unsigned char *h = t->data; /* little-endian, maybe unaligned */
	if (t->dtype == ST_F32) {
		memcpy(out, t->data, (size_t)t->numel * 4);
	} else if (t->dtype == ST_BF16) {
		for (int64_t i = 0; i < t->numel; i++)
			out[i] = st_bf16_to_f32((uint16_t)(h[2 * i] | h[2 * i + 1] << 8));
	} else if ((uintptr_t)t->data % 2 == 0) {
		/* with the CPU's conversion instructions when it has them */
		matmul_widen(out, t->data, ST_F16, (size_t)t->numel);
	} else {
		/* a 65536-entry table: converting a 1B-parameter fp16 checkpoint
		 * is then bound by memory, not by ldexpf */
		float *tab = malloc(65536 * sizeof *tab);
		if (!tab) {
			free(out);
			err_set(err, ERR_NOMEM, "out of memory loading tensor '%s'", name);
			return NULL;
		}
		for (int i = 0; i < 65536; i++)
			tab[i] = st_f16_to_f32((uint16_t)i);
		for (int64_t i = 0; i < t->numel; i++)
			out[i] = tab[h[2 * i] | h[2 * i + 1] << 8];
		free(tab);
	}
	st_release(t);
	return out;
}

void st_release(const struct st_tensor *t)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t b = ((uintptr_t)t->data + page - 1) & ~(page - 1);
	uintptr_t e = ((uintptr_t)t->data + (uintptr_t)t->numel * (t->dtype == ST_F32 ? 4 : 2)) & ~(page - 1);
	if (e > b) /* whole pages inside the tensor only: its neighbours may not be copied yet */
		madvise((void *)b, e - b, MADV_DONTNEED);
}
