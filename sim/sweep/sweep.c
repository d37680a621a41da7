/* sweep.c: expansion of an experiment into points, point identity, result
 * rows, resolved parameters and the echo kind (running: sweep_run.c). */
#include "sim/sweep/sweep.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_MAX_POINTS 10000000u

/* One key of a variant, with its list of values. */
struct sw_ent {
	char *section, *key, *file;
	int line;
	char **vals; /* (nvals) trimmed, quotes removed */
	size_t nvals;
	int zip;     /* zip group index, or -1 */
	int dim;     /* dimension that picks the value, or -1: constant */
	int param;   /* swept-parameter index, or -1 */
};

/* The base experiment, or one [row NAME] of it. */
struct sw_variant {
	char *name;          /* row name; NULL without rows */
	struct sw_ent *ents; /* (n) in file order */
	size_t n, cap;
	size_t *canon;       /* (n) entry indices sorted by section, key */
	size_t *dimlen;      /* (ndims) */
	size_t *stride;      /* (ndims) last dimension fastest */
	size_t ndims;
	size_t npoints, first; /* its points are first .. first + npoints - 1 */
};

struct sw_param {
	char *section, *key;
};

struct sweep {
	char *path;
	struct conf_doc *doc;
	char kind[64];
	struct sw_variant *vars; /* (nvars) */
	size_t nvars;
	struct sw_param *params; /* (nparams) */
	size_t nparams;
	size_t npoints;
	uint64_t *ids; /* (npoints) */
};

/* ---- small helpers ---- */

static char *trim_dup(const char *s, size_t len)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	char *d = malloc(len + 1);
	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* One list element at p: a "quoted" element (quotes removed), or the text up
 * to the next comma, trimmed. *end is left at the ',' or '\0' after it. */
static int list_element(const char *p, const char **end, char **item, const char *s, char *why,
			size_t wcap)
{
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '"') {
		*end = strchr(p, ',');
		*end = *end ? *end : p + strlen(p);
		*item = trim_dup(p, (size_t)(*end - p));
		return *item ? 0 : ERR_NOMEM;
	}
	const char *q = strchr(p + 1, '"');
	if (!q) {
		snprintf(why, wcap, "unterminated quote in '%s'", s);
		return ERR_FORMAT;
	}
	for (*end = q + 1; isspace((unsigned char)**end); ++*end)
		;
	if (**end && **end != ',') {
		snprintf(why, wcap, "text after a quoted element in '%s'", s);
		return ERR_FORMAT;
	}
	*item = strndup(p + 1, (size_t)(q - p - 1)); /* the quoted text exactly */
	return *item ? 0 : ERR_NOMEM;
}

/* Split a value at commas outside double quotes. Empty unquoted elements of
 * a list and repeated elements are errors (ERR_FORMAT, the reason in why). */
static int list_split(const char *s, char ***out, size_t *n, char *why, size_t wcap)
{
	size_t cap = 4, k = 0;
	char **v = malloc(cap * sizeof *v);
	int rc = v ? 0 : ERR_NOMEM;
	for (const char *p = s, *end = s; !rc; p = end + 1) {
		char *item = NULL;
		const char *q = p;
		while (isspace((unsigned char)*q))
			q++;
		rc = list_element(p, &end, &item, s, why, wcap);
		if (!rc && !item[0] && *q != '"' && (*end == ',' || k > 0)) {
			snprintf(why, wcap, "empty element %zu in the list '%s'", k + 1, s);
			rc = ERR_FORMAT;
		}
		char **nv = !rc && k == cap ? realloc(v, (cap *= 2) * sizeof *v) : v;
		if (!nv)
			rc = ERR_NOMEM;
		if (rc) {
			free(item);
			break;
		}
		v = nv;
		v[k++] = item;
		if (!*end)
			break;
	}
	for (size_t i = 0; !rc && i < k; i++)
		for (size_t j = i + 1; !rc && j < k; j++)
			if (!strcmp(v[i], v[j])) {
				snprintf(why, wcap, "'%s' appears twice in the list", v[i]);
				rc = ERR_FORMAT;
			}
	if (rc == ERR_NOMEM)
		snprintf(why, wcap, "out of memory");
	if (rc) {
		strv_free(v, k);
		return rc;
	}
	*out = v, *n = k;
	return 0;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* ---- variants ---- */

static void ent_free(struct sw_ent *e)
{
	free(e->section), free(e->key), free(e->file);
	strv_free(e->vals, e->nvals);
}

static void variant_free(struct sw_variant *v)
{
	for (size_t i = 0; i < v->n; i++)
		ent_free(&v->ents[i]);
	free(v->ents), free(v->name), free(v->canon), free(v->dimlen), free(v->stride);
}

/* Index of [section] key in v, or -1. */
static long variant_find(const struct sw_variant *v, const char *section, const char *key)
{
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->ents[i].section, section) && !strcmp(v->ents[i].key, key))
			return (long)i;
	return -1;
}

/* Set [section] key = value (a list) in v, replacing an earlier value in
 * place or appending. Errors name where the value came from. */
static int variant_set(struct sw_variant *v, const char *section, const char *key,
		       const char *value, const char *file, int line, struct lif_err *err)
{
	char why[512];
	char **vals;
	size_t nvals;
	int rc = list_split(value, &vals, &nvals, why, sizeof why);
	if (rc)
		return err_set(err, rc, "%s:%d: [%s] %s: %s", file, line, section, key, why);
	long at = variant_find(v, section, key);
	struct sw_ent *e;
	if (at >= 0) {
		e = &v->ents[at];
		strv_free(e->vals, e->nvals);
		free(e->file);
	} else {
		if (v->n == v->cap) {
			size_t cap = v->cap ? 2 * v->cap : 16;
			struct sw_ent *p = realloc(v->ents, cap * sizeof *p);
			if (!p) {
				strv_free(vals, nvals);
				return err_set(err, ERR_NOMEM, "out of memory");
			}
			v->ents = p, v->cap = cap;
		}
		e = &v->ents[v->n++];
		*e = (struct sw_ent){.section = strdup(section), .key = strdup(key), .zip = -1,
				     .dim = -1, .param = -1};
	}
	e->vals = vals, e->nvals = nvals, e->file = strdup(file), e->line = line;
	if (!e->section || !e->key || !e->file)
		return err_set(err, ERR_NOMEM, "out of memory");
	return 0;
}

/* Resolve a key reference ("key" or "section.key") against v. Returns the
 * entry index, -1 if absent, -2 if a bare key is ambiguous. */
static long variant_ref(const struct sw_variant *v, const char *ref)
{
	long found = -1;
	for (size_t i = 0; i < v->n; i++) {
		const struct sw_ent *e = &v->ents[i];
		size_t sl = strlen(e->section);
		if (!strncmp(ref, e->section, sl) && ref[sl] == '.' && !strcmp(ref + sl + 1, e->key))
			return (long)i;
	}
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(ref, v->ents[i].key)) {
			if (found >= 0)
				return -2;
			found = (long)i;
		}
	return found;
}

static int variant_copy(struct sw_variant *dst, const struct sw_variant *src, const char *name,
			struct lif_err *err)
{
	*dst = (struct sw_variant){.name = name ? strdup(name) : NULL};
	dst->ents = calloc(src->n ? src->n : 1, sizeof *dst->ents);
	if ((name && !dst->name) || !dst->ents)
		return err_set(err, ERR_NOMEM, "out of memory");
	dst->cap = src->n ? src->n : 1;
	for (size_t i = 0; i < src->n; i++, dst->n++) {
		const struct sw_ent *e = &src->ents[i];
		struct sw_ent *d = &dst->ents[i];
		*d = (struct sw_ent){strdup(e->section), strdup(e->key), strdup(e->file), e->line,
				     calloc(e->nvals, sizeof *d->vals), e->nvals, -1, -1, -1};
		if (!d->section || !d->key || !d->file || !d->vals)
			return err_set(err, ERR_NOMEM, "out of memory");
		for (size_t j = 0; j < e->nvals; j++)
			if (!(d->vals[j] = strdup(e->vals[j])))
				return err_set(err, ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* Apply one [row NAME] entry: the key is "section.key" or a bare key of the
 * base; "section.key" not in the base adds a key. */
static int variant_override(struct sw_variant *v, const struct conf_entry *ce,
			    struct lif_err *err)
{
	long at = variant_ref(v, ce->key);
	if (at == -2)
		return err_set(err, ERR_FORMAT,
			       "%s:%d: [%s] %s: key is in several sections; write section.%s",
			       ce->file, ce->line, ce->section, ce->key, ce->key);
	if (at >= 0 && !strcmp(v->ents[at].section, "experiment") && !strcmp(v->ents[at].key, "kind"))
		return err_set(err, ERR_FORMAT, "%s:%d: [experiment] kind: a row cannot change it",
			       ce->file, ce->line);
	if (at >= 0)
		return variant_set(v, v->ents[at].section, v->ents[at].key, ce->value, ce->file,
				   ce->line, err);
	const char *dot = strrchr(ce->key, '.');
	if (!dot || dot == ce->key || !dot[1])
		return err_set(err, ERR_FORMAT,
			       "%s:%d: [%s] %s: no such key in the experiment (write section.key to add one)",
			       ce->file, ce->line, ce->section, ce->key);
	char section[256];
	snprintf(section, sizeof section, "%.*s", (int)(dot - ce->key), ce->key);
	return variant_set(v, section, dot + 1, ce->value, ce->file, ce->line, err);
}

/* Mark the keys of each `[sweep] zip` as one group and check their lengths. */
static int variant_zip(struct sw_variant *v, const struct conf_entry *const *zips, size_t nzip,
		       struct lif_err *err)
{
	const char *in = v->name ? " in row " : "", *rn = v->name ? v->name : "";
	for (size_t z = 0; z < nzip; z++) {
		const struct conf_entry *ce = zips[z];
		char **refs;
		size_t nref;
		char why[512];
		int rc = list_split(ce->value, &refs, &nref, why, sizeof why);
		if (rc)
			return err_set(err, rc, "%s:%d: [sweep] zip: %s", ce->file, ce->line, why);
		long first = -1;
		for (size_t r = 0; r < nref && !rc; r++) {
			long at = variant_ref(v, refs[r]);
			if (at < 0)
				rc = err_set(err, ERR_FORMAT, "%s:%d: [sweep] zip: %s '%s'%s%s", ce->file,
					     ce->line, at == -2 ? "ambiguous key (write section.key)" : "no key",
					     refs[r], in, rn);
			else if (v->ents[at].zip >= 0)
				rc = err_set(err, ERR_FORMAT, "%s:%d: [sweep] zip: '%s' is zipped twice",
					     ce->file, ce->line, refs[r]);
			if (rc)
				break;
			struct sw_ent *e = &v->ents[at], *f = first >= 0 ? &v->ents[first] : NULL;
			e->zip = (int)z;
			if (!f)
				first = at;
			else if (f->nvals != e->nvals)
				rc = err_set(err, ERR_FORMAT,
					     "%s:%d: [sweep] zip: [%s] %s has %zu values (%s:%d) but [%s] %s has %zu (%s:%d)%s%s",
					     ce->file, ce->line, f->section, f->key, f->nvals, f->file, f->line,
					     e->section, e->key, e->nvals, e->file, e->line, in, rn);
		}
		strv_free(refs, nref);
		if (rc)
			return rc;
	}
	return 0;
}

static int canon_cmp(const void *a, const void *b, void *arg)
{
	const struct sw_ent *ents = arg;
	const struct sw_ent *x = &ents[*(const size_t *)a], *y = &ents[*(const size_t *)b];
	int c = strcmp(x->section, y->section);
	return c ? c : strcmp(x->key, y->key);
}

/* Dimensions (one per list, one per zip group), strides, point count and the
 * canonical entry order. */
static int variant_dims(struct sw_variant *v, struct lif_err *err)
{
	size_t n = v->n ? v->n : 1;
	v->dimlen = calloc(n, sizeof *v->dimlen);
	v->stride = calloc(n, sizeof *v->stride);
	v->canon = calloc(n, sizeof *v->canon);
	int *zipdim = malloc(n * sizeof *zipdim);
	if (!v->dimlen || !v->stride || !v->canon || !zipdim) {
		free(zipdim);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		zipdim[i] = -1;
	for (size_t i = 0; i < v->n; i++) {
		struct sw_ent *e = &v->ents[i];
		if (e->zip >= 0 && zipdim[e->zip] >= 0) {
			e->dim = zipdim[e->zip];
			continue;
		}
		if (e->zip < 0 && e->nvals < 2)
			continue;
		e->dim = (int)v->ndims;
		if (e->zip >= 0)
			zipdim[e->zip] = e->dim;
		v->dimlen[v->ndims++] = e->nvals;
	}
	free(zipdim);
	v->npoints = 1;
	for (size_t d = v->ndims; d-- > 0;) {
		v->stride[d] = v->npoints;
		if (v->npoints > SWEEP_MAX_POINTS / v->dimlen[d])
			return err_set(err, ERR_RANGE, "the experiment has more than %u points%s%s",
				       SWEEP_MAX_POINTS, v->name ? " in row " : "", v->name ? v->name : "");
		v->npoints *= v->dimlen[d];
	}
	for (size_t i = 0; i < v->n; i++)
		v->canon[i] = i;
	qsort_r(v->canon, v->n, sizeof *v->canon, canon_cmp, v->ents);
	return 0;
}

static size_t ent_pick(const struct sw_variant *v, const struct sw_ent *e, size_t local)
{
	return e->dim < 0 ? 0 : (local / v->stride[e->dim]) % v->dimlen[e->dim];
}

/* ---- reading the experiment ---- */

/* Entries of the file split by role. */
struct parts {
	const struct conf_entry **zip, **rowent;
	const struct conf_entry *rowlist; /* [sweep] rows, or NULL */
	size_t nzip, nrowent;
	char **rownames; /* (nrows) in order */
	size_t nrows;
};

static void parts_free(struct parts *p)
{
	free(p->zip), free(p->rowent);
	strv_free(p->rownames, p->nrows);
}

/* "row NAME" -> NAME (malloc'd), "" for a nameless [row], NULL otherwise. */
static char *row_name(const char *section)
{
	if (strncmp(section, "row", 3) || (section[3] && !isspace((unsigned char)section[3])))
		return NULL;
	return trim_dup(section + 3, strlen(section + 3));
}

static int rows_add(struct parts *p, const char *name)
{
	for (size_t i = 0; i < p->nrows; i++)
		if (!strcmp(p->rownames[i], name))
			return 0;
	char **nv = realloc(p->rownames, (p->nrows + 1) * sizeof *nv);
	if (!nv)
		return ERR_NOMEM;
	p->rownames = nv;
	return (p->rownames[p->nrows++] = strdup(name)) ? 0 : ERR_NOMEM;
}

/* Split the document into base (into *base), [sweep] and [row] entries. */
static int split_doc(const struct conf_doc *doc, struct sw_variant *base, struct parts *p,
		     struct lif_err *err)
{
	p->zip = calloc(doc->n + 1, sizeof *p->zip);
	p->rowent = calloc(doc->n + 1, sizeof *p->rowent);
	if (!p->zip || !p->rowent)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < doc->n; i++) {
		const struct conf_entry *ce = &doc->entries[i];
		char *rn = row_name(ce->section);
		int rc = 0;
		if (rn) {
			if (!rn[0])
				rc = err_set(err, ERR_FORMAT, "%s:%d: [%s]: a row needs a name: [row NAME]",
					     ce->file, ce->line, ce->section);
			else if (rows_add(p, rn))
				rc = err_set(err, ERR_NOMEM, "out of memory");
			p->rowent[p->nrowent++] = ce;
			free(rn);
		} else if (!strcmp(ce->section, "vars")) {
			continue;
		} else if (!strcmp(ce->section, "sweep")) {
			if (!strcmp(ce->key, "zip"))
				p->zip[p->nzip++] = ce;
			else if (!strcmp(ce->key, "rows"))
				p->rowlist = ce;
			else
				rc = err_set(err, ERR_FORMAT, "%s:%d: [sweep] %s: unknown key (zip, rows)",
					     ce->file, ce->line, ce->key);
		} else {
			rc = variant_set(base, ce->section, ce->key, ce->value, ce->file, ce->line, err);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* `[sweep] rows = a, b` fixes the rows and their order (a listed row needs
 * no section: it is the base); every [row NAME] section must be listed. */
static int order_rows(struct parts *p, struct lif_err *err)
{
	if (!p->rowlist)
		return 0;
	const struct conf_entry *ce = p->rowlist;
	char **names;
	size_t n;
	char why[512];
	int rc = list_split(ce->value, &names, &n, why, sizeof why);
	if (rc)
		return err_set(err, rc, "%s:%d: [sweep] rows: %s", ce->file, ce->line, why);
	for (size_t i = 0; i < p->nrows && !rc; i++) {
		size_t j = 0;
		while (j < n && strcmp(names[j], p->rownames[i]))
			j++;
		if (j == n)
			rc = err_set(err, ERR_FORMAT, "%s:%d: [sweep] rows: section [row %s] is not listed",
				     ce->file, ce->line, p->rownames[i]);
	}
	if (rc || (n == 1 && !names[0][0])) {
		strv_free(names, n);
		return rc ? rc
			  : err_set(err, ERR_FORMAT, "%s:%d: [sweep] rows: empty", ce->file, ce->line);
	}
	strv_free(p->rownames, p->nrows);
	p->rownames = names, p->nrows = n;
	return 0;
}

/* Build one variant: the base with the row's overrides, zips and dims. */
static int build_variant(struct sweep *sw, const struct sw_variant *base, const struct parts *p,
			 const char *name, struct sw_variant *v, struct lif_err *err)
{
	int rc = variant_copy(v, base, name, err);
	for (size_t i = 0; !rc && name && i < p->nrowent; i++) {
		char *rn = row_name(p->rowent[i]->section);
		if (rn && !strcmp(rn, name))
			rc = variant_override(v, p->rowent[i], err);
		free(rn);
	}
	if (!rc)
		rc = variant_zip(v, p->zip, p->nzip, err);
	if (!rc)
		rc = variant_dims(v, err);
	if (!rc && sw->npoints + v->npoints > SWEEP_MAX_POINTS)
		rc = err_set(err, ERR_RANGE, "the experiment has more than %u points", SWEEP_MAX_POINTS);
	v->first = sw->npoints;
	sw->npoints += v->npoints;
	return rc;
}

/* [experiment] kind: one value, the same in every row. */
static int find_kind(struct sweep *sw, struct lif_err *err)
{
	snprintf(sw->kind, sizeof sw->kind, "%s", SWEEP_DEFAULT_KIND);
	for (size_t r = 0; r < sw->nvars; r++) {
		const struct sw_variant *v = &sw->vars[r];
		long at = variant_find(v, "experiment", "kind");
		if (at < 0)
			continue;
		const struct sw_ent *e = &v->ents[at];
		if (e->nvals != 1)
			return err_set(err, ERR_FORMAT, "%s:%d: [experiment] kind: cannot be swept",
				       e->file, e->line);
		if (r > 0 && strcmp(sw->kind, e->vals[0]))
			return err_set(err, ERR_FORMAT, "%s:%d: [experiment] kind: a row cannot change it",
				       e->file, e->line);
		snprintf(sw->kind, sizeof sw->kind, "%s", e->vals[0]);
	}
	return 0;
}

/* ---- swept parameters and ids ---- */

static int param_index(const struct sweep *sw, const char *section, const char *key)
{
	for (size_t i = 0; i < sw->nparams; i++)
		if (!strcmp(sw->params[i].section, section) && !strcmp(sw->params[i].key, key))
			return (int)i;
	return -1;
}

/* Does [section] key take more than one value over the points? */
static int key_varies(const struct sweep *sw, const char *section, const char *key)
{
	const char *seen = NULL;
	for (size_t r = 0; r < sw->nvars; r++) {
		long at = variant_find(&sw->vars[r], section, key);
		const char *val = at < 0 ? "" : sw->vars[r].ents[at].vals[0];
		if (at >= 0 && sw->vars[r].ents[at].nvals > 1)
			return 1;
		if (seen && strcmp(seen, val))
			return 1;
		seen = val;
	}
	return 0;
}

static int find_params(struct sweep *sw, struct lif_err *err)
{
	for (size_t r = 0; r < sw->nvars; r++)
		for (size_t i = 0; i < sw->vars[r].n; i++) {
			struct sw_ent *e = &sw->vars[r].ents[i];
			e->param = param_index(sw, e->section, e->key);
			if (e->param >= 0 || !key_varies(sw, e->section, e->key))
				continue;
			struct sw_param *p = realloc(sw->params, (sw->nparams + 1) * sizeof *p);
			if (!p)
				return err_set(err, ERR_NOMEM, "out of memory");
			sw->params = p;
			p[sw->nparams] = (struct sw_param){strdup(e->section), strdup(e->key)};
			if (!p[sw->nparams].section || !p[sw->nparams].key)
				return err_set(err, ERR_NOMEM, "out of memory");
			e->param = (int)sw->nparams++;
		}
	return 0;
}

static const struct sw_variant *point_variant(const struct sweep *sw, size_t point, size_t *local)
{
	size_t r = 0;
	while (r + 1 < sw->nvars && point >= sw->vars[r + 1].first)
		r++;
	*local = point - sw->vars[r].first;
	return &sw->vars[r];
}

/* FNV-1a of "row = NAME\n" and the sorted "[section] key = value\n" lines. */
static uint64_t point_hash(const struct sweep *sw, size_t point)
{
	size_t local;
	const struct sw_variant *v = point_variant(sw, point, &local);
	uint64_t h = 0xcbf29ce484222325ull;
	if (v->name)
		h = fnv1a(fnv1a(fnv1a(h, "row = "), v->name), "\n");
	for (size_t i = 0; i < v->n; i++) {
		const struct sw_ent *e = &v->ents[v->canon[i]];
		h = fnv1a(fnv1a(fnv1a(h, "["), e->section), "] ");
		h = fnv1a(fnv1a(fnv1a(h, e->key), " = "), e->vals[ent_pick(v, e, local)]);
		h = fnv1a(h, "\n");
	}
	return h;
}

struct id_at {
	uint64_t id;
	size_t point;
};

static int id_cmp(const void *a, const void *b)
{
	const struct id_at *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->point < y->point ? -1 : x->point > y->point;
}

static int find_ids(struct sweep *sw, struct lif_err *err)
{
	sw->ids = malloc(sw->npoints * sizeof *sw->ids);
	struct id_at *s = malloc(sw->npoints * sizeof *s);
	int rc = 0;
	if (!sw->ids || !s)
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (size_t i = 0; !rc && i < sw->npoints; i++)
		s[i] = (struct id_at){sw->ids[i] = point_hash(sw, i), i};
	if (!rc)
		qsort(s, sw->npoints, sizeof *s, id_cmp);
	for (size_t i = 1; !rc && i < sw->npoints; i++)
		if (s[i].id == s[i - 1].id) {
			char d[512];
			sweep_point_describe(sw, s[i].point, d, sizeof d);
			rc = err_set(err, ERR_FORMAT,
				     "%s: points %zu and %zu have the same parameters (%s): rows or lists repeat a point",
				     sw->path, s[i - 1].point, s[i].point, d);
		}
	free(s);
	return rc;
}

/* ---- public: expansion ---- */

static int sweep_build(struct sweep *sw, struct lif_err *err)
{
	struct sw_variant base = {0};
	struct parts p = {0};
	int rc = split_doc(sw->doc, &base, &p, err);
	if (!rc)
		rc = order_rows(&p, err);
	size_t nv = p.nrows ? p.nrows : 1;
	if (!rc && !(sw->vars = calloc(nv, sizeof *sw->vars)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (size_t r = 0; !rc && r < nv; r++) {
		rc = build_variant(sw, &base, &p, p.nrows ? p.rownames[r] : NULL, &sw->vars[r], err);
		sw->nvars = r + 1;
	}
	if (!rc)
		rc = find_kind(sw, err);
	if (!rc)
		rc = find_params(sw, err);
	if (!rc)
		rc = find_ids(sw, err);
	variant_free(&base);
	parts_free(&p);
	return rc;
}

int sweep_new(const char *path, struct sweep **out, struct lif_err *err)
{
	struct sweep *sw = calloc(1, sizeof *sw);
	if (!sw || !(sw->path = strdup(path))) {
		free(sw);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	int rc = conf_doc_read(path, &sw->doc, err);
	if (!rc)
		rc = sweep_build(sw, err);
	if (rc) {
		sweep_free(sw);
		return rc;
	}
	*out = sw;
	return 0;
}

void sweep_free(struct sweep *sw)
{
	if (!sw)
		return;
	for (size_t r = 0; r < sw->nvars; r++)
		variant_free(&sw->vars[r]);
	for (size_t i = 0; i < sw->nparams; i++)
		free(sw->params[i].section), free(sw->params[i].key);
	free(sw->vars), free(sw->params), free(sw->ids), free(sw->path);
	conf_doc_free(sw->doc);
	free(sw);
}

size_t sweep_points(const struct sweep *sw) { return sw->npoints; }
const char *sweep_path(const struct sweep *sw) { return sw->path; }
const char *sweep_kind_name(const struct sweep *sw) { return sw->kind; }
const struct conf_doc *sweep_doc(const struct sweep *sw) { return sw->doc; }
uint64_t sweep_point_id(const struct sweep *sw, size_t point) { return sw->ids[point]; }
size_t sweep_params(const struct sweep *sw) { return sw->nparams; }
const char *sweep_param_section(const struct sweep *sw, size_t i) { return sw->params[i].section; }
const char *sweep_param_key(const struct sweep *sw, size_t i) { return sw->params[i].key; }

const char *sweep_point_label(const struct sweep *sw, size_t point)
{
	size_t local;
	return point_variant(sw, point, &local)->name;
}

const char *sweep_param_value(const struct sweep *sw, size_t point, size_t param)
{
	size_t local;
	const struct sw_variant *v = point_variant(sw, point, &local);
	for (size_t i = 0; i < v->n; i++)
		if (v->ents[i].param == (int)param)
			return v->ents[i].vals[ent_pick(v, &v->ents[i], local)];
	return "";
}

int sweep_point_doc(const struct sweep *sw, size_t point, struct conf_doc **out,
		    struct lif_err *err)
{
	size_t local;
	const struct sw_variant *v = point_variant(sw, point, &local);
	struct conf_doc *d = calloc(1, sizeof *d);
	if (!d || !(d->entries = calloc(v->n ? v->n : 1, sizeof *d->entries))) {
		free(d);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	d->cap = v->n ? v->n : 1;
	for (size_t i = 0; i < v->n; i++, d->n++) {
		const struct sw_ent *e = &v->ents[i];
		struct conf_entry *c = &d->entries[i];
		c->section = strdup(e->section), c->key = strdup(e->key), c->file = strdup(e->file);
		c->value = strdup(e->vals[ent_pick(v, e, local)]);
		c->line = e->line;
		if (!c->section || !c->key || !c->file || !c->value) {
			d->n++;
			conf_doc_free(d);
			return err_set(err, ERR_NOMEM, "out of memory");
		}
	}
	*out = d;
	return 0;
}

void sweep_point_describe(const struct sweep *sw, size_t point, char *buf, size_t cap)
{
	size_t used = 0;
	const char *label = sweep_point_label(sw, point);
	buf[0] = '\0';
	if (label)
		used += (size_t)snprintf(buf, cap, "row=%s", label);
	for (size_t j = 0; j < sw->nparams && used < cap; j++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%s=%s", used ? " " : "",
					 sw->params[j].key, sweep_param_value(sw, point, j));
}

/* ---- result rows ---- */

struct sweep_row {
	size_t point;
	uint64_t id, seed;
	const char *label;
	char **names, **vals; /* (n) in set order */
	size_t n, cap;
	int bad;              /* a set failed: the message is in msg */
	char msg[256];
	gsl_rng *rng;
	const char *dir;      /* the output directory, or NULL */
};

void sweep_row_set_dir(struct sweep_row *row, const char *dir)
{
	row->dir = dir;
}

const char *sweep_row_dir(const struct sweep_row *row)
{
	return row->dir;
}

struct sweep_row *sweep_row_new(const struct sweep *sw, size_t point)
{
	struct sweep_row *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->point = point;
	r->id = sw->ids[point];
	r->seed = splitmix64(r->id);
	r->label = sweep_point_label(sw, point);
	return r;
}

void sweep_row_free(struct sweep_row *row)
{
	if (!row)
		return;
	strv_free(row->names, row->n);
	strv_free(row->vals, row->n);
	if (row->rng)
		gsl_rng_free(row->rng);
	free(row);
}

size_t sweep_row_columns(const struct sweep_row *row) { return row->n; }
const char *sweep_row_name(const struct sweep_row *row, size_t i) { return row->names[i]; }
const char *sweep_row_value(const struct sweep_row *row, size_t i) { return row->vals[i]; }
const char *sweep_row_error(const struct sweep_row *row) { return row->bad ? row->msg : NULL; }

static int row_fail(struct sweep_row *row, int code, const char *fmt, const char *name)
{
	if (!row->bad)
		snprintf(row->msg, sizeof row->msg, fmt, name);
	row->bad = 1;
	return code;
}

int sweep_row_set_str(struct sweep_row *row, const char *name, const char *v)
{
	if (!name[0] || strpbrk(name, ",\".\r\n"))
		return row_fail(row, ERR_INVAL,
				"result column name '%s' is empty or holds , \" . or a newline", name);
	if (!strcmp(name, "point") || !strcmp(name, "point_id") || !strcmp(name, "row"))
		return row_fail(row, ERR_INVAL, "result column name '%s' is reserved", name);
	for (size_t i = 0; i < row->n; i++)
		if (!strcmp(row->names[i], name))
			return row_fail(row, ERR_INVAL, "result column '%s' is set twice", name);
	if (row->n == row->cap) {
		size_t cap = row->cap ? 2 * row->cap : 16;
		char **a = realloc(row->names, cap * sizeof *a), **b;
		if (a)
			row->names = a;
		b = a ? realloc(row->vals, cap * sizeof *b) : NULL;
		if (!b)
			return row_fail(row, ERR_NOMEM, "out of memory (%s)", name);
		row->vals = b, row->cap = cap;
	}
	char *nn = strdup(name), *vv = strdup(v);
	if (!nn || !vv) {
		free(nn), free(vv);
		return row_fail(row, ERR_NOMEM, "out of memory (%s)", name);
	}
	row->names[row->n] = nn, row->vals[row->n++] = vv;
	return 0;
}

int sweep_row_set_num(struct sweep_row *row, const char *name, double v)
{
	char buf[64];
	if (isnan(v))
		snprintf(buf, sizeof buf, "nan");
	else if (isinf(v))
		snprintf(buf, sizeof buf, "%sinf", v < 0 ? "-" : "");
	else
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, sizeof buf, "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	return sweep_row_set_str(row, name, buf);
}

int sweep_row_set_int(struct sweep_row *row, const char *name, long long v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", v);
	return sweep_row_set_str(row, name, buf);
}

size_t sweep_row_point(const struct sweep_row *row) { return row->point; }
uint64_t sweep_row_id(const struct sweep_row *row) { return row->id; }
uint64_t sweep_row_seed(const struct sweep_row *row) { return row->seed; }
const char *sweep_row_label(const struct sweep_row *row) { return row->label; }

gsl_rng *sweep_row_rng(struct sweep_row *row)
{
	if (!row->rng && (row->rng = gsl_rng_alloc(gsl_rng_mt19937)))
		gsl_rng_set(row->rng, (unsigned long)(row->seed ^ (row->seed >> 32)));
	return row->rng;
}

/* ---- resolved parameters ---- */

int sweep_resolved_add(struct conf_doc *d, const char *section, const char *key,
		       const char *value)
{
	for (size_t i = 0; i < d->n; i++) {
		struct conf_entry *e = &d->entries[i];
		if (!strcmp(e->section, section) && !strcmp(e->key, key)) {
			char *v = strdup(value);
			if (!v)
				return ERR_NOMEM;
			free(e->value);
			e->value = v;
			return 0;
		}
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 32;
		struct conf_entry *p = realloc(d->entries, cap * sizeof *p);
		if (!p)
			return ERR_NOMEM;
		d->entries = p, d->cap = cap;
	}
	struct conf_entry *e = &d->entries[d->n];
	*e = (struct conf_entry){strdup(section), strdup(key), strdup(value), strdup("(resolved)"), 0};
	if (!e->section || !e->key || !e->value || !e->file) {
		free(e->section), free(e->key), free(e->value), free(e->file);
		return ERR_NOMEM;
	}
	d->n++;
	return 0;
}

int sweep_resolved_add_opts(struct conf_doc *resolved, const struct conf_opt *opts,
			    const void *target)
{
	char *buf = malloc(16384);
	int rc = buf ? 0 : ERR_NOMEM;
	for (const struct conf_opt *o = opts; !rc && o->name; o++) {
		conf_format(o, target, buf, 16384);
		rc = sweep_resolved_add(resolved, o->section, o->name, buf);
	}
	free(buf);
	return rc;
}

/* ---- kinds ---- */

const struct sweep_kind *sweep_kind_find(const struct sweep_kind *const *table, const char *name)
{
	for (; *table; table++)
		if (!strcmp((*table)->name, name))
			return *table;
	return NULL;
}

static int echo_run(void *ctx, const struct conf_doc *point, struct sweep_row *row,
		    struct lif_err *err)
{
	size_t cap = 64, used = 0;
	for (size_t i = 0; i < point->n; i++)
		cap += strlen(point->entries[i].section) + strlen(point->entries[i].key) +
		       strlen(point->entries[i].value) + 8;
	char *text = malloc(cap);
	if (!text)
		return err_set(err, ERR_NOMEM, "out of memory");
	text[0] = '\0';
	for (size_t i = 0; i < point->n; i++) {
		const struct conf_entry *e = &point->entries[i];
		used += (size_t)snprintf(text + used, cap - used, "%s%s.%s=%s", i ? " " : "",
					 e->section, e->key, e->value);
	}
	int rc = sweep_row_set_int(row, "entries", (long long)point->n);
	if (!rc)
		rc = sweep_row_set_str(row, "params", text);
	free(text);
	return rc ? err_set(err, rc, "echo: cannot set result columns") : 0;
}

const struct sweep_kind sweep_kind_echo = {
	.name = "echo",
	.summary = "echo each point's parameters as result columns (dry runs, tests)",
	.run = echo_run,
};
