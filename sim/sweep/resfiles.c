#include "sim/sweep/resfiles.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base/atomic.h"
#include "sim/base/csv.h"
#include "sim/base/hostinfo.h"

static const char *digits(const char *p)
{
	while (isdigit((unsigned char)*p))
		p++;
	return p;
}

int resfiles_is_json_number(const char *s)
{
	const char *p = s + (*s == '-');
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		p = digits(p);
	else
		return 0;
	if (*p == '.') {
		const char *q = digits(p + 1);
		if (q == p + 1)
			return 0;
		p = q;
	}
	if (*p == 'e' || *p == 'E') {
		p += 1 + (p[1] == '+' || p[1] == '-');
		const char *q = digits(p);
		if (q == p)
			return 0;
		p = q;
	}
	return *p == '\0';
}

/* One row as a JSON object on one line. */
static int jsonl_row(FILE *f, const char *const *head, size_t nh, const char *const *cells)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t j = 0; o && j < nh; j++) {
		const char *v = cells[j];
		int text = !strcmp(head[j], "point_id") || !strcmp(head[j], "row");
		int none = !v[0] || !strcmp(v, "nan") || !strcmp(v, "inf") || !strcmp(v, "-inf");
		cJSON *item = !text && none                      ? cJSON_CreateNull()
			      : !text && resfiles_is_json_number(v) ? cJSON_CreateRaw(v)
								    : cJSON_CreateString(v);
		if (!item || !cJSON_AddItemToObject(o, head[j], item)) {
			cJSON_Delete(item);
			cJSON_Delete(o);
			return ERR_NOMEM;
		}
	}
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!s)
		return ERR_NOMEM;
	fputs(s, f);
	fputc('\n', f);
	free(s);
	return 0;
}

int resfiles_write_table(const char *dir, const char *const *head, size_t nh,
			 const char *const *cells, size_t nrows, struct lif_err *err)
{
	char path[4200];
	struct atomic_file a;
	snprintf(path, sizeof path, "%s/results.csv", dir);
	int rc = atomic_open(&a, path, err);
	if (rc)
		return rc;
	for (size_t i = 0; i <= nrows; i++) {
		const char *const *row = i ? cells + (i - 1) * nh : head;
		for (size_t j = 0; j < nh; j++)
			csv_write_field(a.fp, row[j], j == 0);
		fputc('\n', a.fp);
	}
	if ((rc = atomic_commit(&a, err)))
		return rc;
	snprintf(path, sizeof path, "%s/%s", dir, RESFILES_JSONL);
	if ((rc = atomic_open(&a, path, err)))
		return rc;
	for (size_t i = 0; i < nrows && !rc; i++)
		rc = jsonl_row(a.fp, head, nh, cells + i * nh);
	if (rc) {
		atomic_abort(&a);
		return err_set(err, ERR_NOMEM, "%s: out of memory", path);
	}
	return atomic_commit(&a, err);
}

/* Write a JSON document atomically (pretty-printed). */
static int json_write(const char *path, const cJSON *doc, struct lif_err *err)
{
	struct atomic_file a;
	char *s = cJSON_Print(doc);
	if (!s)
		return err_set(err, ERR_NOMEM, "%s: out of memory", path);
	int rc = atomic_open(&a, path, err);
	if (!rc) {
		fputs(s, a.fp);
		fputc('\n', a.fp);
		rc = atomic_commit(&a, err);
	}
	free(s);
	return rc;
}

/* version, commit, date, host, cpu, kdamonds_on (the kernel's samplers of
 * page access that were running: hostinfo_damon): the machine and build,
 * added to o. */
static void add_machine(cJSON *o)
{
	char buf[512];
	cJSON_AddStringToObject(o, "lifsim_version", hostinfo_version());
	cJSON_AddStringToObject(o, "lifsim_commit", hostinfo_commit());
	hostinfo_date(buf, sizeof buf);
	cJSON_AddStringToObject(o, "date", buf);
	hostinfo_host(buf, sizeof buf);
	cJSON_AddStringToObject(o, "host", buf);
	hostinfo_cpu_model(buf, sizeof buf);
	cJSON_AddStringToObject(o, "cpu", buf);
	cJSON_AddNumberToObject(o, "kdamonds_on", hostinfo_damon(NULL));
}

/* {"setting", "value", "path", "bytes", "sha256"} for one input file. */
static int add_input(cJSON *arr, const struct resfiles_input *in, struct lif_err *err)
{
	char hex[65];
	FILE *f = fopen(in->path, "rb");
	long long bytes = -1;
	if (f && fseek(f, 0, SEEK_END) == 0)
		bytes = ftell(f);
	if (f)
		fclose(f);
	int rc = hostinfo_sha256_file(in->path, hex, err);
	if (rc)
		return rc;
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(arr, o))
		return err_set(err, ERR_NOMEM, "out of memory");
	cJSON_AddStringToObject(o, "setting", in->setting);
	cJSON_AddStringToObject(o, "value", in->value);
	cJSON_AddStringToObject(o, "path", in->path);
	cJSON_AddNumberToObject(o, "bytes", (double)bytes);
	cJSON_AddStringToObject(o, "sha256", hex);
	return 0;
}

int resfiles_write_provenance(const char *dir, const struct resfiles_run *run,
			      struct lif_err *err)
{
	char path[4200], hex[65];
	cJSON *o = cJSON_CreateObject(), *inputs = cJSON_CreateArray();
	if (!o || !inputs) {
		cJSON_Delete(o), cJSON_Delete(inputs);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	cJSON_AddStringToObject(o, "schema", RESFILES_PROV_SCHEMA);
	cJSON_AddNumberToObject(o, "version", RESFILES_PROV_VERSION);
	add_machine(o);
	cJSON_AddStringToObject(o, "experiment", run->experiment);
	int rc = hostinfo_sha256_file(run->experiment, hex, err);
	if (!rc) {
		cJSON_AddStringToObject(o, "experiment_sha256", hex);
		cJSON_AddStringToObject(o, "kind", run->kind);
		cJSON_AddNumberToObject(o, "points", (double)run->points);
		if (run->shard_count > 1) {
			snprintf(hex, sizeof hex, "%d/%d", run->shard_index, run->shard_count);
			cJSON_AddStringToObject(o, "shard", hex);
		} else {
			cJSON_AddNullToObject(o, "shard");
		}
		cJSON_AddNumberToObject(o, "threads", run->threads);
		cJSON_AddItemToObject(o, "inputs", inputs);
		inputs = NULL;
	}
	for (size_t i = 0; !rc && i < run->ninputs; i++)
		rc = add_input(cJSON_GetObjectItemCaseSensitive(o, "inputs"), &run->inputs[i], err);
	snprintf(path, sizeof path, "%s/%s", dir, RESFILES_PROVENANCE);
	if (!rc)
		rc = json_write(path, o, err);
	cJSON_Delete(o);
	cJSON_Delete(inputs);
	return rc;
}

/* DIR/provenance.json parsed, or NULL when absent or unreadable. */
static cJSON *prov_read(const char *dir)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, RESFILES_PROVENANCE);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t n = 0, cap = 0, got;
	do {
		char *nb = n + 4097 > cap ? realloc(buf, cap = 2 * cap + 4097) : buf;
		if (!nb) {
			free(buf), fclose(f);
			return NULL;
		}
		buf = nb;
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	cJSON *doc = cJSON_Parse(buf);
	free(buf);
	return doc;
}

static void copy_field(cJSON *to, const cJSON *from, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
	cJSON *d = v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
	if (d)
		cJSON_AddItemToObject(to, key, d);
}

int resfiles_merge_provenance(const char *const *dirs, size_t ndirs, const char *out,
			      struct lif_err *err)
{
	static const char *const keep[] = {"date", "host", "cpu", "kdamonds_on",
					   "shard", "lifsim_commit"};
	char path[4200];
	cJSON *first = prov_read(dirs[0]), *merged = cJSON_CreateArray();
	cJSON *o = first ? first : cJSON_CreateObject();
	if (!o || !merged) {
		cJSON_Delete(o), cJSON_Delete(merged);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	if (!first) {
		cJSON_AddStringToObject(o, "schema", RESFILES_PROV_SCHEMA);
		cJSON_AddNumberToObject(o, "version", RESFILES_PROV_VERSION);
		add_machine(o);
	}
	cJSON_ReplaceItemInObjectCaseSensitive(o, "shard", cJSON_CreateNull());
	for (size_t d = 0; d < ndirs; d++) {
		cJSON *p = prov_read(dirs[d]), *s = cJSON_CreateObject();
		if (s) {
			cJSON_AddStringToObject(s, "dir", dirs[d]);
			for (size_t k = 0; p && k < sizeof keep / sizeof keep[0]; k++)
				copy_field(s, p, keep[k]);
			cJSON_AddItemToArray(merged, s);
		}
		cJSON_Delete(p);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o, "merged_from");
	cJSON_AddItemToObject(o, "merged_from", merged);
	snprintf(path, sizeof path, "%s/%s", out, RESFILES_PROVENANCE);
	int rc = json_write(path, o, err);
	cJSON_Delete(o);
	return rc;
}
