/* sweep_run.c: validating, running and resuming a sweep into a results
 * directory, and merging shards (the contract is in sweep.h). */
#include "sim/sweep/sweep.h"
#include "sim/base/atomic.h"
#include "sim/base/csv.h"
#include "sim/base/util.h"
#include "sim/sweep/pointin.h"
#include "sim/sweep/resfiles.h"

#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NONE ((size_t)-1)

/* Create dir unless it exists (*created says which). */
static int make_dir(const char *dir, int *created, struct lif_err *err)
{
	struct stat st;
	*created = mkdir(dir, 0777) == 0;
	if (!*created && errno != EEXIST)
		return err_set(err, ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return err_set(err, ERR_IO, "%s: not a directory", dir);
	return 0;
}

/* Hold DIR/.lock (flock) for the run, with the holder's pid in it; a second
 * sweep into DIR is told which process holds it. The lock file is checked to
 * be the one at the path after locking (a holder that finished unlinks it). */
static int lock_dir(const char *dir, int *fd_out, struct lif_err *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/.lock", dir);
	for (int tries = 0; tries < 8; tries++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		struct stat a, b;
		if (fd < 0)
			return err_set(err, ERR_IO, "%s: cannot create: %s", path, strerror(errno));
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			char pid[32] = "";
			ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			close(fd);
			return err_set(err, ERR_IO, "%s: another sweep (pid %s) is writing into this "
				       "directory; wait for it or choose another -o", dir,
				       pid[0] ? pid : "unknown");
		}
		if (fstat(fd, &a) || stat(path, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
			close(fd); /* unlinked by a holder that just finished: retry */
			continue;
		}
		char pid[32];
		int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
		if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n) {
			close(fd);
			return err_set(err, ERR_IO, "%s: cannot write: %s", path, strerror(errno));
		}
		*fd_out = fd;
		return 0;
	}
	return err_set(err, ERR_IO, "%s: cannot take the lock", path);
}

static void unlock_dir(const char *dir, int fd)
{
	char path[4200];
	if (fd < 0)
		return;
	snprintf(path, sizeof path, "%s/.lock", dir);
	unlink(path);
	close(fd);
}

static int parse_id(const char *s, uint64_t *id)
{
	char *end;
	if (strlen(s) != 16)
		return -1;
	errno = 0;
	*id = strtoull(s, &end, 16);
	return *end || errno ? -1 : 0;
}

/* "3, 7, 12, ... (40 more)" of the indices in v. */
static void list_indices(const size_t *v, size_t n, char *buf, size_t cap)
{
	size_t used = 0, i = 0;
	buf[0] = '\0';
	for (; i < n && used + 40 < cap && i < 20; i++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%zu", i ? ", " : "", v[i]);
	if (i < n)
		snprintf(buf + used, cap - used, ", ... (%zu more)", n - i);
}

/* ---- column names ---- */

/* Names of the swept-parameter columns: the key, or section.key where the
 * key is shared by another swept key or names a fixed or result column. */
static int param_names(const struct sweep *sw, char **rn, size_t nr, char ***out,
		       struct lif_err *err)
{
	size_t np = sweep_params(sw);
	char **names = calloc(np + 1, sizeof *names);
	if (!names)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (size_t j = 0; j < np; j++) {
		const char *key = sweep_param_key(sw, j);
		int clash = !strcmp(key, "point") || !strcmp(key, "point_id") || !strcmp(key, "row");
		for (size_t k = 0; k < np && !clash; k++)
			clash = k != j && !strcmp(key, sweep_param_key(sw, k));
		for (size_t k = 0; k < nr && !clash; k++)
			clash = !strcmp(key, rn[k]);
		char buf[512];
		snprintf(buf, sizeof buf, "%s%s%s", clash ? sweep_param_section(sw, j) : "",
			 clash ? "." : "", key);
		for (size_t k = 0; k < nr; k++)
			if (!strcmp(buf, rn[k])) {
				for (size_t i = 0; i < j; i++)
					free(names[i]);
				free(names);
				return err_set(err, ERR_INVAL,
					       "result column '%s' clashes with the swept parameter [%s] %s",
					       rn[k], sweep_param_section(sw, j), key);
			}
		if (!(names[j] = strdup(buf))) {
			for (size_t i = 0; i < j; i++)
				free(names[i]);
			free(names);
			return err_set(err, ERR_NOMEM, "out of memory");
		}
	}
	*out = names;
	return 0;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- validation and config.resolved.ini ---- */

static void config_header(FILE *f, const struct sweep *sw)
{
	fprintf(f, "; lifsim sweep: every parameter of every point as used\n[sweep]\n"
		   "schema = %s\nversion = %d\nexperiment = %s\nkind = %s\npoints = %zu\nparams = ",
		SWEEP_CONFIG_SCHEMA, SWEEP_CONFIG_VERSION, sweep_path(sw), sweep_kind_name(sw),
		sweep_points(sw));
	for (size_t j = 0; j < sweep_params(sw); j++)
		fprintf(f, "%s%s.%s", j ? ", " : "", sweep_param_section(sw, j), sweep_param_key(sw, j));
	fputc('\n', f);
}

static void config_point(FILE *f, const struct sweep *sw, size_t i, const struct conf_doc *res)
{
	const char *label = sweep_point_label(sw, i);
	fprintf(f, "\n[point %zu]\npoint_id = %016" PRIx64 "\n", i, sweep_point_id(sw, i));
	if (label)
		fprintf(f, "row = %s\n", label);
	for (size_t k = 0; k < res->n; k++)
		fprintf(f, "%s.%s = %s\n", res->entries[k].section, res->entries[k].key,
			res->entries[k].value);
}

/* Check every point in order; with cfg, write each point's resolved
 * parameters to it. */
static int validate_points(const struct sweep *sw, const struct sweep_kind *kind, void *ctx,
			   FILE *cfg, struct conf_doc **keep, struct lif_err *err)
{
	if (cfg)
		config_header(cfg, sw);
	for (size_t i = 0; i < sweep_points(sw); i++) {
		struct conf_doc *point = NULL, *res = NULL;
		int rc = sweep_point_doc(sw, i, &point, err);
		if (!rc)
			rc = sweep_point_doc(sw, i, &res, err);
		if (!rc && kind->check && (rc = kind->check(ctx, point, res, err)) != 0) {
			char d[512];
			if (!err->code)
				err_set(err, rc, "kind '%s' rejected it", kind->name);
			sweep_point_describe(sw, i, d, sizeof d);
			err_prefix(err, "point %zu%s%s%s", i, d[0] ? " (" : "", d, d[0] ? ")" : "");
		}
		if (!rc && cfg)
			config_point(cfg, sw, i, res);
		conf_doc_free(point);
		if (!rc && keep)
			keep[i] = res, res = NULL;
		conf_doc_free(res);
		if (rc)
			return rc;
	}
	return 0;
}

int sweep_validate(const struct sweep *sw, const struct sweep_kind *kind, void *ctx,
		   struct lif_err *err)
{
	return validate_points(sw, kind, ctx, NULL, NULL, err);
}

/* ---- the run ---- */

struct run {
	const struct sweep *sw;
	const struct sweep_kind *kind;
	void *ctx;
	const struct sweep_opts *o;
	char results[4096];
	size_t np;
	char **rnames; /* (nr) result columns once known */
	size_t nr;
	int known;
	size_t ref_point;   /* the point that fixed rnames */
	char ***vals;       /* (np) result values per point (nr each), or NULL */
	struct csv old;     /* an earlier results.csv (old.n == 0: none) */
	size_t *old_rec;    /* (np) its record for each point, or NONE */
	size_t fail_point;  /* lowest failed point, or NONE */
	struct lif_err fail;
	double last_flush_s;
	struct conf_doc **res; /* (np) each point's resolved parameters */
	char **snames;         /* (ns) settings columns: sorted distinct section.key */
	size_t ns;
	const char **svals;    /* (np * ns) each point's settings (borrowed from res), or NULL */
};

struct id_at {
	uint64_t id;
	size_t point;
};

static int id_cmp(const void *a, const void *b)
{
	const struct id_at *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The point with this id (ids sorted by id_cmp), or -1. */
static int id_point(const struct id_at *ids, size_t n, uint64_t id, size_t *point)
{
	struct id_at key = {id, 0};
	const struct id_at *hit = bsearch(&key, ids, n, sizeof *ids, id_cmp);
	if (!hit)
		return -1;
	*point = hit->point;
	return 0;
}

/* Read an earlier results.csv and map its rows to points; a row that is no
 * point of this experiment is an error (the experiment changed). */
static int old_load(struct run *r, struct lif_err *err)
{
	if (access(r->results, F_OK) && errno == ENOENT)
		return 0; /* a fresh run */
	if (csv_read(r->results, &r->old, err))
		return err->code;
	long idc = csv_col(&r->old, "point_id");
	if (idc < 0 || csv_col(&r->old, "point") != 0)
		return err_set(err, ERR_FORMAT, "%s: not a lifsim results file (no point, point_id columns)",
			       r->results);
	size_t *stale = malloc(r->old.n * sizeof *stale), nstale = 0;
	struct id_at *ids = malloc((r->np + 1) * sizeof *ids);
	if (!stale || !ids) {
		free(stale), free(ids);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	for (size_t p = 0; p < r->np; p++)
		ids[p] = (struct id_at){sweep_point_id(r->sw, p), p};
	qsort(ids, r->np, sizeof *ids, id_cmp);
	int rc = 0;
	for (size_t k = 1; k < r->old.n && !rc; k++) {
		uint64_t id;
		size_t p;
		const char *s = r->old.recs[k].f[idc];
		if (parse_id(s, &id))
			rc = err_set(err, ERR_FORMAT, "%s:%d: '%s' is not a point_id", r->results,
				     r->old.recs[k].line, s);
		else if (id_point(ids, r->np, id, &p))
			stale[nstale++] = (size_t)r->old.recs[k].line;
		else if (r->old_rec[p] != NONE)
			rc = err_set(err, ERR_FORMAT, "%s:%d: point_id %s repeats line %d", r->results,
				     r->old.recs[k].line, s, r->old.recs[r->old_rec[p]].line);
		else
			r->old_rec[p] = k;
	}
	if (!rc && nstale) {
		char list[200];
		list_indices(stale, nstale, list, sizeof list);
		rc = err_set(err, ERR_FORMAT,
			     "%s: %zu rows (lines %s) are no point of %s: the experiment changed; "
			     "write to a new -o DIR or remove the old results",
			     r->results, nstale, list, sweep_path(r->sw));
	}
	free(stale), free(ids);
	return rc;
}

/* Fix the result columns and convert the kept rows to them (by name). On
 * failure nothing is kept (known stays 0), so the old file is not rewritten. */
static int set_columns(struct run *r, char *const *names, size_t n, struct lif_err *err)
{
	int rc = 0;
	for (size_t j = 0; j < n && !rc; j++)
		if (r->old.n > 1 && csv_col(&r->old, names[j]) < 0)
			rc = err_set(err, ERR_FORMAT,
				     "%s has no column '%s' that kind '%s' now writes: its rows are from "
				     "another version; write to a new -o DIR",
				     r->results, names[j], r->kind->name);
	if (!rc && !(r->rnames = calloc(n + 1, sizeof *r->rnames)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (r->nr = 0; !rc && r->nr < n; r->nr++)
		if (!(r->rnames[r->nr] = strdup(names[r->nr])))
			rc = err_set(err, ERR_NOMEM, "out of memory");
	for (size_t p = 0; !rc && p < r->np; p++) {
		if (r->old_rec[p] == NONE)
			continue;
		const struct csv_rec *rec = &r->old.recs[r->old_rec[p]];
		if (!(r->vals[p] = calloc(n + 1, sizeof *r->vals[p])))
			rc = err_set(err, ERR_NOMEM, "out of memory");
		for (size_t j = 0; j < n && !rc; j++)
			if (!(r->vals[p][j] = strdup(rec->f[csv_col(&r->old, names[j])])))
				rc = err_set(err, ERR_NOMEM, "out of memory");
	}
	r->known = !rc;
	return rc;
}

/* When every point is kept, the result columns are the old header's
 * trailing columns; the whole header must be what this run would write. */
static int columns_from_old(struct run *r, struct lif_err *err)
{
	size_t nfix = 2 + (sweep_point_label(r->sw, 0) != NULL), np = sweep_params(r->sw);
	const struct csv_rec *h = &r->old.recs[0];
	if (h->n < nfix + np)
		return err_set(err, ERR_FORMAT, "%s: its columns are not this experiment's", r->results);
	size_t nres = h->n - nfix - np; /* results, then settings (section.key) */
	while (nres > 0 && strchr(h->f[nfix + np + nres - 1], '.'))
		nres--;
	char **pn = NULL;
	int rc = param_names(r->sw, h->f + nfix + np, nres, &pn, err);
	for (size_t j = 0; !rc && j < np; j++)
		if (strcmp(pn[j], h->f[nfix + j]))
			rc = err_set(err, ERR_FORMAT,
				     "%s: column %zu is '%s' where this experiment has '%s': write to a new -o DIR",
				     r->results, nfix + j + 1, h->f[nfix + j], pn[j]);
	strv_free(pn, np); /* also when a column differs (fuzz: results-leak-03868f5f) */
	return rc ? rc : set_columns(r, h->f + nfix + np, nres, err);
}

/* ---- settings columns: every resolved parameter of a point ---- */

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static long name_index(char *const *names, size_t n, const char *name)
{
	char *const *hit = bsearch(&name, names, n, sizeof *names, str_cmp);
	return hit ? (long)(hit - names) : -1;
}

/* The sorted distinct "section.key" of the points' resolved parameters, and
 * each point's value of each (NULL where the point has none). */
static int settings_build(struct run *r, struct lif_err *err)
{
	size_t total = 0, k = 0;
	for (size_t p = 0; p < r->np; p++)
		total += r->res[p]->n;
	char **all = calloc(total + 1, sizeof *all);
	int rc = all ? 0 : ERR_NOMEM;
	for (size_t p = 0; !rc && p < r->np; p++)
		for (size_t e = 0; !rc && e < r->res[p]->n; e++) {
			const struct conf_entry *en = &r->res[p]->entries[e];
			if (asprintf(&all[k++], "%s.%s", en->section, en->key) < 0)
				all[--k] = NULL, rc = ERR_NOMEM;
		}
	if (!rc)
		qsort(all, k, sizeof *all, str_cmp);
	for (size_t i = 0; !rc && i < k; i++) {
		if (r->ns && !strcmp(all[i], all[r->ns - 1]))
			free(all[i]);
		else
			all[r->ns++] = all[i];
		all[i] = i < r->ns ? all[i] : NULL;
	}
	r->snames = all;
	if (!rc && !(r->svals = calloc(r->np * r->ns + 1, sizeof *r->svals)))
		rc = ERR_NOMEM;
	for (size_t p = 0; !rc && p < r->np; p++)
		for (size_t e = 0; e < r->res[p]->n; e++) {
			const struct conf_entry *en = &r->res[p]->entries[e];
			char name[1024];
			snprintf(name, sizeof name, "%s.%s", en->section, en->key);
			long c = name_index(r->snames, r->ns, name);
			if (c >= 0)
				r->svals[p * r->ns + (size_t)c] = en->value;
		}
	return rc ? err_set(err, rc, "out of memory") : 0;
}

/* The files the settings name (resolved like the kinds resolve them: relative
 * to the file that gave the value), each (setting, value) once, for the
 * provenance. */
static int inputs_collect(const struct run *r, struct resfiles_input **out, size_t *n)
{
	struct resfiles_input *v = NULL;
	size_t cap = 0;
	*n = 0;
	for (size_t p = 0; p < r->np; p++)
		for (size_t e = 0; e < r->res[p]->n; e++) {
			const struct conf_entry *en = &r->res[p]->entries[e];
			char path[4096], name[1024];
			struct stat st;
			snprintf(path, sizeof path, "%s", en->value);
			snprintf(name, sizeof name, "%s.%s", en->section, en->key);
			if (!strcmp(en->file, "(resolved)") || !path[0] || strchr(path, ','))
				continue;
			/* a kind may have resolved the path already; models and devices
			 * go through the search path (short names), any other value is
			 * tried relative to the file that gave it */
			int kind = !strcmp(en->key, "model")	? PATH_MODEL
				   : !strcmp(en->key, "device") ? PATH_DEVICE
								: PATH_FILE;
			struct lif_err ignored = {0};
			if ((stat(path, &st) || !S_ISREG(st.st_mode)) && kind != PATH_FILE)
				pointin_resolve(path, sizeof path, r->res[p], en->section, en->key,
						(enum path_kind)kind, &ignored);
			else if ((stat(path, &st) || !S_ISREG(st.st_mode)) && path[0] != '/') {
				char dir[4096], joined[8300];
				snprintf(dir, sizeof dir, "%s", en->file);
				snprintf(joined, sizeof joined, "%s/%s", dirname(dir), en->value);
				if (strlen(joined) < sizeof path)
					memcpy(path, joined, strlen(joined) + 1);
			}
			if (stat(path, &st) || !S_ISREG(st.st_mode))
				continue;
			int seen = 0;
			for (size_t i = 0; i < *n && !seen; i++)
				seen = !strcmp(v[i].setting, name) && !strcmp(v[i].value, en->value);
			if (seen)
				continue;
			if (*n == cap) {
				struct resfiles_input *nv = realloc(v, (cap = 2 * cap + 8) * sizeof *nv);
				if (!nv)
					goto nomem;
				v = nv;
			}
			v[*n] = (struct resfiles_input){strdup(name), en->value, strdup(path)};
			if (!v[(*n)++].setting || !v[*n - 1].path)
				goto nomem;
		}
	*out = v;
	return 0;
nomem:
	for (size_t i = 0; i < *n; i++)
		free((char *)v[i].setting), free((char *)v[i].path);
	free(v);
	return ERR_NOMEM;
}

static int provenance_write(const struct run *r, struct lif_err *err)
{
	struct resfiles_input *in = NULL;
	size_t n = 0;
	if (inputs_collect(r, &in, &n))
		return err_set(err, ERR_NOMEM, "out of memory");
	struct resfiles_run run = {.experiment = sweep_path(r->sw), .kind = sweep_kind_name(r->sw),
				   .points = r->np, .shard_index = r->o->shard_index,
				   .shard_count = r->o->shard_count, .threads = r->o->threads,
				   .inputs = in, .ninputs = n};
	int rc = resfiles_write_provenance(r->o->dir, &run, err);
	for (size_t i = 0; i < n; i++)
		free((char *)in[i].setting), free((char *)in[i].path);
	free(in);
	return rc;
}

static int name_taken(const char *const *head, size_t n, const char *name)
{
	for (size_t j = 0; j < n; j++)
		if (!strcmp(head[j], name))
			return 1;
	return 0;
}

/* Write results.csv and results.jsonl: point, point_id, row, the swept
 * parameters, the results, then every setting not already a column, for
 * every point with results, in order. */
static int flush_results(struct run *r, struct lif_err *err)
{
	const struct sweep *sw = r->sw;
	size_t np = sweep_params(sw), nh = 0, nrows = 0;
	int rows = sweep_point_label(sw, 0) != NULL;
	char **pn;
	int rc = param_names(sw, r->rnames, r->nr, &pn, err);
	if (rc)
		return rc;
	const char **head = malloc((3 + np + r->nr + r->ns) * sizeof *head), **cells = NULL;
	size_t *scol = malloc((r->ns + 1) * sizeof *scol), nsc = 0;
	char(*num)[2][24] = NULL;
	for (size_t p = 0; p < r->np; p++)
		nrows += r->vals[p] != NULL;
	if (head && scol) {
		head[nh++] = "point", head[nh++] = "point_id";
		if (rows)
			head[nh++] = "row";
		for (size_t j = 0; j < np; j++)
			head[nh++] = pn[j];
		for (size_t j = 0; j < r->nr; j++)
			head[nh++] = r->rnames[j];
		for (size_t k = 0, fixed = nh; k < r->ns; k++)
			if (!name_taken(head, fixed, r->snames[k]))
				scol[nsc++] = k, head[nh++] = r->snames[k];
		cells = malloc((nrows * nh + 1) * sizeof *cells);
		num = malloc((nrows + 1) * sizeof *num);
	}
	if (!head || !scol || !cells || !num) {
		rc = err_set(err, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t p = 0, i = 0; p < r->np; p++) {
		if (!r->vals[p])
			continue;
		const char **c = cells + i * nh;
		snprintf(num[i][0], sizeof num[i][0], "%zu", p);
		snprintf(num[i][1], sizeof num[i][1], "%016" PRIx64, sweep_point_id(sw, p));
		*c++ = num[i][0], *c++ = num[i][1];
		if (rows)
			*c++ = sweep_point_label(sw, p);
		for (size_t j = 0; j < np; j++)
			*c++ = sweep_param_value(sw, p, j);
		for (size_t j = 0; j < r->nr; j++)
			*c++ = r->vals[p][j];
		for (size_t k = 0; k < nsc; k++) {
			const char *v = r->svals[p * r->ns + scol[k]];
			*c++ = v ? v : "";
		}
		i++;
	}
	rc = resfiles_write_table(r->o->dir, head, nh, cells, nrows, err);
	r->last_flush_s = util_now_ns() * 1e-9;
out:
	free(head), free(scol), free(cells), free(num);
	strv_free(pn, np);
	return rc;
}

/* Record a point's failure; the lowest point's error is the one reported. */
static void run_fail(struct run *r, size_t point, const struct lif_err *e)
{
	if (r->fail_point != NONE && r->fail_point < point)
		return;
	char d[512];
	sweep_point_describe(r->sw, point, d, sizeof d);
	r->fail_point = point;
	err_clear(&r->fail);
	err_set(&r->fail, e->code ? e->code : ERR_INVAL, "point %zu%s%s%s: %s", point,
		d[0] ? " (" : "", d, d[0] ? ")" : "", e->code ? e->msg : "failed");
}

/* Take a computed row (called under the lock). */
static void run_take(struct run *r, size_t p, const struct sweep_row *row)
{
	struct lif_err e = {0};
	size_t n = sweep_row_columns(row);
	char **names = malloc((n + 1) * sizeof *names);
	if (!names) {
		err_set(&e, ERR_NOMEM, "out of memory");
		run_fail(r, p, &e);
		return;
	}
	for (size_t j = 0; j < n; j++)
		names[j] = (char *)sweep_row_name(row, j);
	if (!r->known) {
		r->ref_point = p;
		if (set_columns(r, names, n, &e))
			run_fail(r, p, &e);
	}
	int same = r->known && n == r->nr;
	for (size_t j = 0; same && j < n; j++)
		same = !strcmp(names[j], r->rnames[j]);
	free(names);
	if (!same && !e.code) {
		err_set(&e, ERR_INVAL, "kind '%s' set %zu result columns where point %zu set %zu "
			"(every point must set the same columns in the same order)",
			r->kind->name, n, r->ref_point, r->nr);
		run_fail(r, p, &e);
	}
	if (e.code)
		return;
	if (!(r->vals[p] = calloc(n + 1, sizeof *r->vals[p])))
		err_set(&e, ERR_NOMEM, "out of memory");
	for (size_t j = 0; j < n && !e.code; j++)
		if (!(r->vals[p][j] = strdup(sweep_row_value(row, j))))
			err_set(&e, ERR_NOMEM, "out of memory");
	if (e.code)
		run_fail(r, p, &e);
}

/* Compute one point (any thread). */
static void run_point(struct run *r, size_t p, size_t *done, size_t total)
{
	struct lif_err e = {0};
	struct conf_doc *doc = NULL;
	struct sweep_row *row = sweep_row_new(r->sw, p);
	if (row)
		sweep_row_set_dir(row, r->o->dir);
	int rc = row ? sweep_point_doc(r->sw, p, &doc, &e) : err_set(&e, ERR_NOMEM, "out of memory");
	if (!rc)
		rc = r->kind->run(r->ctx, doc, row, &e);
	if (!rc && sweep_row_error(row))
		rc = err_set(&e, ERR_INVAL, "%s", sweep_row_error(row));
#pragma omp critical(sweep_run)
	{
		if (rc)
			run_fail(r, p, &e);
		else
			run_take(r, p, row);
		++*done;
		if (r->o->progress)
			r->o->progress(r->o->progress_ctx, *done, total);
		if (r->known && r->fail_point == NONE && util_now_ns() * 1e-9 - r->last_flush_s >= r->o->flush_s) {
			struct lif_err fe = {0};
			if (flush_results(r, &fe))
				run_fail(r, p, &fe);
		}
	}
	sweep_row_free(row);
	conf_doc_free(doc);
}

static int in_shard(const struct sweep_opts *o, size_t p)
{
	return o->shard_count <= 1 || p % (size_t)o->shard_count == (size_t)o->shard_index;
}

/* The points to compute; fills the report's counts. */
static size_t *plan(struct run *r, struct sweep_report *rep, size_t *ntodo)
{
	size_t *todo = malloc((r->np + 1) * sizeof *todo), n = 0;
	if (!todo)
		return NULL;
	for (size_t p = 0; p < r->np; p++) {
		if (!in_shard(r->o, p))
			continue;
		rep->in_shard++;
		if (r->old_rec[p] == NONE)
			todo[n++] = p;
	}
	for (size_t p = 0; p < r->np; p++)
		rep->kept += r->old_rec[p] != NONE;
	rep->resumed = r->old.n > 0;
	rep->new_points = rep->resumed ? n : 0;
	if (rep->resumed)
		list_indices(todo, n, rep->new_list, sizeof rep->new_list);
	*ntodo = n;
	return todo;
}

static void run_free(struct run *r)
{
	for (size_t p = 0; r->vals && p < r->np; p++)
		strv_free(r->vals[p], r->nr);
	free(r->vals);
	free(r->old_rec);
	strv_free(r->rnames, r->nr);
	csv_free(&r->old);
	for (size_t p = 0; r->res && p < r->np; p++)
		conf_doc_free(r->res[p]);
	free(r->res);
	strv_free(r->snames, r->ns);
	free(r->svals);
}

/* Compute the todo points in parallel, then write the final results. */
static int run_todo(struct run *r, const size_t *todo, size_t ntodo, struct sweep_report *rep,
		    struct lif_err *err)
{
	size_t done = 0;
	const struct sweep_opts *o = r->o;
	r->last_flush_s = util_now_ns() * 1e-9;
#pragma omp parallel for schedule(dynamic, 1) num_threads(o->threads)
	for (size_t k = 0; k < ntodo; k++) {
		int skip;
#pragma omp atomic read
		skip = r->fail.code;
		if (skip || (o->stop && *o->stop))
			continue;
		run_point(r, todo[k], &done, ntodo);
	}
	rep->computed = done;
	int rc = 0;
	if (r->known || r->old.n == 0)
		rc = flush_results(r, err);
	if (r->fail.code)
		return err_set(err, r->fail.code, "%s", r->fail.msg);
	if (!rc && done < ntodo)
		rc = err_set(err, ERR_IO, "interrupted after %zu of %zu points; %s holds the points done "
			     "(run again to resume)", done, ntodo, r->results);
	return rc;
}

int sweep_run(const struct sweep *sw, const struct sweep_kind *kind, void *ctx,
	      const struct sweep_opts *opts, struct sweep_report *rep, struct lif_err *err)
{
	struct sweep_report dummy;
	struct sweep_opts o = *opts;
	struct run r = {.sw = sw, .kind = kind, .ctx = ctx, .o = &o, .np = sweep_points(sw),
			.fail_point = NONE};
	struct atomic_file cfg = {0};
	char path[4200];
	int created = 0, lock = -1;
	size_t *todo = NULL, ntodo = 0;
	rep = rep ? rep : &dummy;
	*rep = (struct sweep_report){.points = r.np};
	if (!kind || !kind->name || !kind->run)
		return err_set(err, ERR_INVAL, "sweep kind '%s' has no run function",
			       kind && kind->name ? kind->name : "(null)");
	o.threads = o.threads < 1 ? 1 : o.threads;
	o.flush_s = o.flush_s > 0 ? o.flush_s : 2.0;
	if (o.shard_count > 1 && (o.shard_index < 0 || o.shard_index >= o.shard_count))
		return err_set(err, ERR_INVAL, "shard %d/%d: the index must be in [0, %d)",
			       o.shard_index, o.shard_count, o.shard_count);
	snprintf(r.results, sizeof r.results, "%s/%s", o.dir, SWEEP_RESULTS);
	snprintf(path, sizeof path, "%s/%s", o.dir, SWEEP_CONFIG);
	r.vals = calloc(r.np, sizeof *r.vals);
	r.old_rec = malloc(r.np * sizeof *r.old_rec);
	r.res = calloc(r.np + 1, sizeof *r.res);
	int rc = r.vals && r.old_rec && r.res ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	for (size_t p = 0; !rc && p < r.np; p++)
		r.old_rec[p] = NONE;
	/* 1. every point checked (and its config written) before any runs */
	if (!rc && !(rc = make_dir(o.dir, &created, err)) && !(rc = lock_dir(o.dir, &lock, err)))
		rc = atomic_open(&cfg, path, err);
	if (!rc)
		rc = validate_points(sw, kind, ctx, cfg.fp, r.res, err);
	if (!rc)
		rc = settings_build(&r, err);
	/* 2. what an earlier run left */
	if (!rc)
		rc = old_load(&r, err);
	if (!rc) {
		rc = atomic_commit(&cfg, err);
	} else if (cfg.fp) {
		atomic_abort(&cfg);
		if (created) {
			unlock_dir(o.dir, lock);
			lock = -1;
			rmdir(o.dir);
		}
	}
	if (!rc)
		rc = provenance_write(&r, err);
	/* 3. the points to compute, then compute them */
	if (!rc && !(todo = plan(&r, rep, &ntodo)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && o.planned)
		o.planned(o.progress_ctx, rep);
	if (!rc && ntodo == 0 && r.old.n > 0)
		rc = columns_from_old(&r, err);
	if (!rc)
		rc = run_todo(&r, todo, ntodo, rep, err);
	unlock_dir(o.dir, lock);
	free(todo);
	run_free(&r);
	return rc;
}

int sweep_list(const struct sweep *sw, FILE *f, struct lif_err *err)
{
	char **pn;
	size_t np = sweep_params(sw);
	int rows = sweep_point_label(sw, 0) != NULL;
	int rc = param_names(sw, NULL, 0, &pn, err);
	if (rc)
		return rc;
	fputs(rows ? "point,point_id,row" : "point,point_id", f);
	for (size_t j = 0; j < np; j++)
		csv_write_field(f, pn[j], 0);
	fputc('\n', f);
	for (size_t p = 0; p < sweep_points(sw); p++) {
		fprintf(f, "%zu,%016" PRIx64, p, sweep_point_id(sw, p));
		if (rows)
			csv_write_field(f, sweep_point_label(sw, p), 0);
		for (size_t j = 0; j < np; j++)
			csv_write_field(f, sweep_param_value(sw, p, j), 0);
		fputc('\n', f);
	}
	strv_free(pn, np);
	return ferror(f) ? err_set(err, ERR_IO, "cannot write the point list") : 0;
}

/* ---- merge ---- */

struct merge {
	char *config;      /* the shared config.resolved.ini text */
	size_t config_len;
	size_t np;
	uint64_t *ids;     /* (np) from the config */
	struct csv *res;   /* (ndirs) */
	const struct csv_rec **at; /* (np) the record of each point */
	size_t *from;      /* (np) the dir it came from */
	long header;       /* the dir whose header is used */
	size_t ndirs;
};

/* Point count and ids from a config.resolved.ini. */
static int merge_config(struct merge *m, const char *path, struct lif_err *err)
{
	struct conf_doc *doc;
	int rc = conf_doc_read(path, &doc, err);
	if (rc)
		return rc;
	int schema_ok = 0;
	long long n = -1;
	for (size_t i = 0; i < doc->n; i++) {
		const struct conf_entry *e = &doc->entries[i];
		if (!strcmp(e->section, "sweep") && !strcmp(e->key, "schema"))
			schema_ok = !strcmp(e->value, SWEEP_CONFIG_SCHEMA);
		if (!strcmp(e->section, "sweep") && !strcmp(e->key, "points") &&
		    (conf_parse_int(e->value, &n) || n < 0))
			n = -1;
	}
	if (!schema_ok || n < 0)
		rc = err_set(err, ERR_FORMAT, "%s: not a lifsim %s file (schema, points)", path,
			     SWEEP_CONFIG);
	m->np = n < 0 ? 0 : (size_t)n;
	if (!rc && !(m->ids = calloc(m->np + 1, sizeof *m->ids)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (size_t i = 0; !rc && i < doc->n; i++) {
		const struct conf_entry *e = &doc->entries[i];
		unsigned long long p;
		char tail;
		if (strcmp(e->key, "point_id") || sscanf(e->section, "point %llu%c", &p, &tail) != 1)
			continue;
		if (p >= m->np || parse_id(e->value, &m->ids[p]))
			rc = err_set(err, ERR_FORMAT, "%s:%d: bad [%s] point_id", path, e->line, e->section);
	}
	conf_doc_free(doc);
	return rc;
}

/* Check one shard's rows against the config and the other shards. */
static int merge_rows(struct merge *m, const char *const *dirs, size_t d, const char *path,
		      struct lif_err *err)
{
	const struct csv *c = &m->res[d];
	if (c->n > 1 && m->header >= 0) {
		const struct csv_rec *h = &m->res[m->header].recs[0], *g = &c->recs[0];
		for (size_t j = 0; j < h->n || j < g->n; j++)
			if (j >= h->n || j >= g->n || strcmp(h->f[j], g->f[j]))
				return err_set(err, ERR_FORMAT, "%s: column %zu is '%s' but %s/%s has '%s'",
					       path, j + 1, j < g->n ? g->f[j] : "(none)", dirs[m->header],
					       SWEEP_RESULTS, j < h->n ? h->f[j] : "(none)");
	}
	if (c->n > 1 && m->header < 0)
		m->header = (long)d;
	if (c->recs[0].n < 2 || strcmp(c->recs[0].f[0], "point") || strcmp(c->recs[0].f[1], "point_id"))
		return err_set(err, ERR_FORMAT, "%s: not a lifsim results file (point, point_id)", path);
	for (size_t k = 1; k < c->n; k++) {
		const struct csv_rec *rec = &c->recs[k];
		long long p;
		uint64_t id;
		if (conf_parse_int(rec->f[0], &p) || p < 0 || (size_t)p >= m->np ||
		    parse_id(rec->f[1], &id) || id != m->ids[p])
			return err_set(err, ERR_FORMAT,
				       "%s:%d: point %s (point_id %s) is not a point of the experiment in %s/%s",
				       path, rec->line, rec->f[0], rec->f[1], dirs[0], SWEEP_CONFIG);
		if (m->at[p])
			return err_set(err, ERR_FORMAT, "%s:%d: point %lld is also in %s/%s", path,
				       rec->line, p, dirs[m->from[p]], SWEEP_RESULTS);
		m->at[p] = rec, m->from[p] = d;
	}
	return 0;
}

/* Read every shard: identical configs, compatible rows. */
static int merge_read(struct merge *m, const char *const *dirs, size_t nd, struct lif_err *err)
{
	char path[4200];
	int rc = 0;
	for (size_t d = 0; d < nd && !rc; d++) {
		size_t len;
		snprintf(path, sizeof path, "%s/%s", dirs[d], SWEEP_CONFIG);
		char *text = util_read_file(path, 0, &len, err);
		if (!text)
			return err->code;
		if (d == 0) {
			m->config = text, m->config_len = len;
			rc = merge_config(m, path, err);
			if (!rc && (!(m->at = calloc(m->np + 1, sizeof *m->at)) ||
				    !(m->from = calloc(m->np + 1, sizeof *m->from))))
				rc = err_set(err, ERR_NOMEM, "out of memory");
		} else {
			size_t line = 1, i = 0;
			for (; i < len && i < m->config_len && text[i] == m->config[i]; i++)
				line += text[i] == '\n';
			if (len != m->config_len || i < len)
				rc = err_set(err, ERR_FORMAT,
					     "%s differs from %s/%s at line %zu: not shards of one experiment",
					     path, dirs[0], SWEEP_CONFIG, line);
			free(text);
		}
		snprintf(path, sizeof path, "%s/%s", dirs[d], SWEEP_RESULTS);
		if (!rc)
			rc = csv_read(path, &m->res[d], err);
		if (!rc)
			rc = merge_rows(m, dirs, d, path, err);
	}
	return rc;
}

/* Copy src to dst atomically (dst.tmp, fsync, rename); on failure dst is
 * untouched and no temporary file is left. */
static int copy_file(const char *src, const char *dst, struct lif_err *err)
{
	FILE *in = fopen(src, "rb");
	if (!in)
		return err_set(err, ERR_IO, "%s: cannot open: %s", src, strerror(errno));
	struct atomic_file a;
	int rc = atomic_open(&a, dst, err);
	char buf[1 << 16];
	size_t n;
	while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, a.fp) != n)
			rc = err_set(err, ERR_IO, "%s: cannot write: %s", a.tmp, strerror(errno));
	if (!rc && ferror(in))
		rc = err_set(err, ERR_IO, "%s: cannot read: %s", src, strerror(errno));
	fclose(in);
	if (rc) {
		if (a.fp)
			atomic_abort(&a);
		return rc;
	}
	return atomic_commit(&a, err);
}

/* Each point's per-token detail (DIR/per_token/POINT_ID.h5, written with
 * [output] per_token = true) from the shard its row came from, into
 * out/per_token/. Points without one have none in the merge either. */
static int merge_per_token(const struct merge *m, const char *const *dirs, const char *out,
			   struct lif_err *err)
{
	char src[4300], dst[4300], dir[4200];
	int made = 0, rc = 0;
	snprintf(dir, sizeof dir, "%s/per_token", out);
	for (size_t p = 0; p < m->np && !rc; p++) {
		snprintf(src, sizeof src, "%s/per_token/%016llx.h5", dirs[m->from[p]],
			 (unsigned long long)m->ids[p]);
		if (access(src, F_OK))
			continue;
		if (!made && mkdir(dir, 0777) && errno != EEXIST)
			return err_set(err, ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
		made = 1;
		snprintf(dst, sizeof dst, "%s/%016llx.h5", dir, (unsigned long long)m->ids[p]);
		rc = copy_file(src, dst, err);
	}
	return rc;
}

static int merge_write(const struct merge *m, const char *const *dirs, const char *out,
		       struct lif_err *err)
{
	char path[4200];
	struct atomic_file a;
	size_t *missing = malloc((m->np + 1) * sizeof *missing), nmiss = 0;
	if (!missing)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (size_t p = 0; p < m->np; p++)
		if (!m->at[p])
			missing[nmiss++] = p;
	if (nmiss) {
		char list[200];
		list_indices(missing, nmiss, list, sizeof list);
		free(missing);
		return err_set(err, ERR_FORMAT, "%zu of %zu points are in no shard: %s", nmiss, m->np,
			       list);
	}
	free(missing);
	int created, rc = make_dir(out, &created, err);
	/* the per-token files before the results that list their points */
	if (!rc)
		rc = merge_per_token(m, dirs, out, err);
	snprintf(path, sizeof path, "%s/%s", out, SWEEP_RESULTS);
	if (!rc)
		rc = atomic_open(&a, path, err);
	if (rc)
		return rc;
	const struct csv_rec *h = &m->res[m->header >= 0 ? m->header : 0].recs[0];
	const char **cells = malloc((m->np * h->n + 1) * sizeof *cells);
	if (!cells)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (size_t p = 0; p < m->np; p++)
		for (size_t j = 0; j < h->n; j++)
			cells[p * h->n + j] = m->at[p]->f[j];
	rc = resfiles_write_table(out, (const char *const *)h->f, h->n, cells, m->np, err);
	free(cells);
	if (!rc)
		rc = resfiles_merge_provenance(dirs, m->ndirs, out, err);
	if (rc)
		return rc;
	snprintf(path, sizeof path, "%s/%s", out, SWEEP_CONFIG);
	if ((rc = atomic_open(&a, path, err)))
		return rc;
	fwrite(m->config, 1, m->config_len, a.fp);
	return atomic_commit(&a, err);
}

/* The output directory must not be one of the inputs (merge would overwrite
 * the shard it reads); compared by device and inode, so ./a and a/ match. */
static int merge_check_out(const char *const *dirs, size_t ndirs, const char *out_dir,
			   struct lif_err *err)
{
	struct stat o, d;
	if (stat(out_dir, &o))
		return 0; /* created by the merge: it cannot be an input */
	for (size_t i = 0; i < ndirs; i++)
		if (!stat(dirs[i], &d) && d.st_dev == o.st_dev && d.st_ino == o.st_ino)
			return err_set(err, ERR_INVAL, "-o %s is the input directory %s: merge "
				       "into a new directory", out_dir, dirs[i]);
	return 0;
}

int sweep_merge(const char *const *dirs, size_t ndirs, const char *out_dir, struct lif_err *err)
{
	if (ndirs == 0)
		return err_set(err, ERR_INVAL, "no shard directories to merge");
	if (merge_check_out(dirs, ndirs, out_dir, err))
		return ERR_INVAL;
	struct merge m = {.header = -1, .ndirs = ndirs};
	int rc = 0;
	if (!(m.res = calloc(ndirs, sizeof *m.res)))
		return err_set(err, ERR_NOMEM, "out of memory");
	rc = merge_read(&m, dirs, ndirs, err);
	if (!rc)
		rc = merge_write(&m, dirs, out_dir, err);
	for (size_t d = 0; d < ndirs; d++)
		csv_free(&m.res[d]);
	free(m.res), free(m.config), free(m.ids), free(m.at), free(m.from);
	return rc;
}
