#include "sim/base/conf.h"
#include "sim/base/suggest.h"

#include "sim/base/claim.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONF_MAX_DEPTH 16
#define CONF_MAX_LINE 16384

void conf_init(void)
{
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = CONF_MAX_LINE;
	ini_allow_inline_comments = true;
}

/* State of one conf_doc_read call, shared by nested includes. */
struct reader {
	struct conf_doc *doc;
	struct lif_err *err;
	const char *file; /* current file */
	FILE *fp;
	int line;         /* line the handler is looking at */
	int at_line_start;
	size_t line_len;  /* bytes of the current line read so far */
	int depth;
	int failed;
};

/* inih may read one long line in several calls (it grows its buffer), so a
 * new line starts only after a chunk that ended in a newline. */
static char *reader_gets(char *str, int num, void *stream)
{
	struct reader *r = stream;
	char *s = fgets(str, num, r->fp);
	if (s) {
		if (r->at_line_start)
			r->line++, r->line_len = 0;
		size_t n = strlen(s);
		r->line_len += n;
		r->at_line_start = n > 0 && s[n - 1] == '\n';
		if (r->line_len >= CONF_MAX_LINE - 1) { /* inih would split it silently */
			err_set(r->err, ERR_FORMAT, "%s:%d: line longer than %d bytes", r->file,
				r->line, CONF_MAX_LINE - 2);
			r->failed = 1;
			return NULL;
		}
	}
	return s;
}

static int doc_push(struct conf_doc *d, const char *sec, const char *key, const char *val,
		    const char *file, int line)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 32;
		void *p = realloc(d->entries, cap * sizeof *d->entries);
		if (!p)
			return ERR_NOMEM;
		d->entries = p;
		d->cap = cap;
	}
	struct conf_entry *e = &d->entries[d->n];
	e->section = strdup(sec);
	e->key = strdup(key);
	e->value = strdup(val);
	e->file = strdup(file);
	e->line = line;
	if (!e->section || !e->key || !e->value || !e->file) {
		free(e->section), free(e->key), free(e->value), free(e->file);
		return ERR_NOMEM;
	}
	d->n++;
	return 0;
}

/* Latest [vars] entry named `name`, or NULL. */
static const char *doc_var(const struct conf_doc *d, const char *name, size_t len)
{
	for (size_t i = d->n; i-- > 0;) {
		const struct conf_entry *e = &d->entries[i];
		if (!strcmp(e->section, "vars") && strlen(e->key) == len &&
		    !strncmp(e->key, name, len))
			return e->value;
	}
	return NULL;
}

/* Expand ${VAR} in val into out (size cap). */
static int expand_vars(struct reader *r, const char *val, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *p = val; *p;) {
		if (p[0] == '$' && p[1] == '{') {
			const char *end = strchr(p + 2, '}');
			if (!end)
				return err_set(r->err, ERR_FORMAT, "%s:%d: unterminated ${ in '%s'",
					       r->file, r->line, val);
			size_t len = (size_t)(end - p - 2);
			const char *v = doc_var(r->doc, p + 2, len);
			char name[256];
			snprintf(name, sizeof name, "%.*s", (int)len, p + 2);
			if (!v)
				v = getenv(name);
			if (!v)
				return err_set(r->err, ERR_FORMAT,
					       "%s:%d: ${%s} is not defined (no [vars] key or environment variable)",
					       r->file, r->line, name);
			size_t vl = strlen(v);
			if (o + vl >= cap)
				return err_set(r->err, ERR_FORMAT, "%s:%d: value too long after expansion",
					       r->file, r->line);
			memcpy(out + o, v, vl);
			o += vl;
			p = end + 1;
		} else {
			if (o + 1 >= cap)
				return err_set(r->err, ERR_FORMAT, "%s:%d: value too long", r->file, r->line);
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return 0;
}

static int read_file(struct reader *r, const char *path);

static int include_file(struct reader *r, const char *name)
{
	char buf[4096], dir[4096];
	if (name[0] == '/') {
		snprintf(buf, sizeof buf, "%s", name);
	} else {
		snprintf(dir, sizeof dir, "%s", r->file);
		snprintf(buf, sizeof buf, "%s/%s", dirname(dir), name);
	}
	if (r->depth >= CONF_MAX_DEPTH)
		return err_set(r->err, ERR_FORMAT, "%s:%d: include nested deeper than %d (a cycle?)",
			       r->file, r->line, CONF_MAX_DEPTH);
	struct reader sub = *r;
	sub.depth++;
	sub.line = 0;
	sub.at_line_start = 1;
	int rc = read_file(&sub, buf);
	r->failed |= sub.failed;
	return rc;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct reader *r = user;
	if (r->failed)
		return 0;
	char *val = malloc(CONF_MAX_LINE * 2);
	if (!val) {
		err_set(r->err, ERR_NOMEM, "out of memory");
		r->failed = 1;
		return 0;
	}
	int rc = expand_vars(r, value, val, CONF_MAX_LINE * 2);
	if (rc == 0 && !strcmp(name, "include"))
		rc = include_file(r, val);
	else if (rc == 0 && doc_push(r->doc, section, name, val, r->file, r->line))
		rc = err_set(r->err, ERR_NOMEM, "out of memory");
	free(val);
	if (rc) {
		r->failed = 1;
		return 0;
	}
	return 1;
}

static int read_file(struct reader *r, const char *path)
{
	if (claim_regular_file(path, r->err)) /* a directory, /dev/zero, a FIFO */
		return r->err->code;
	FILE *fp = fopen(path, "r");
	if (!fp) {
		char hint[300] = "";
		int eno = errno;
		if (eno == ENOENT)
			suggest_file(path, hint, sizeof hint);
		return err_set(r->err, ERR_IO, "%s: cannot open: %s%s", path, strerror(eno), hint);
	}
	r->fp = fp;
	r->file = path;
	int rc = ini_parse_stream(reader_gets, r, handler, r);
	fclose(fp);
	if (r->failed)
		return r->err->code ? r->err->code : ERR_FORMAT;
	if (rc > 0)
		return err_set(r->err, ERR_FORMAT, "%s:%d: not a valid INI line (expected key = value or [section])",
			       path, rc);
	if (rc < 0)
		return err_set(r->err, ERR_IO, "%s: cannot read", path);
	return 0;
}

int conf_doc_read(const char *path, struct conf_doc **out, struct lif_err *err)
{
	struct conf_doc *doc = calloc(1, sizeof *doc);
	if (!doc)
		return err_set(err, ERR_NOMEM, "out of memory");
	struct reader r = {.doc = doc, .err = err, .at_line_start = 1};
	int rc = read_file(&r, path);
	if (rc) {
		conf_doc_free(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

void conf_doc_free(struct conf_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n; i++) {
		struct conf_entry *e = &doc->entries[i];
		free(e->section), free(e->key), free(e->value), free(e->file);
	}
	free(doc->entries);
	free(doc);
}

const struct conf_opt *conf_find(const struct conf_opt *opts, const char *section,
				 const char *key)
{
	for (const struct conf_opt *o = opts; o->name; o++)
		if (!strcmp(o->name, key) && (!section || !strcmp(o->section, section)))
			return o;
	return NULL;
}

static const char *trim(const char *s, char *buf, size_t cap)
{
	while (isspace((unsigned char)*s))
		s++;
	snprintf(buf, cap, "%s", s);
	size_t n = strlen(buf);
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	return buf;
}

int conf_parse_double(const char *s, double *out)
{
	char buf[128], *end;
	trim(s, buf, sizeof buf);
	errno = 0;
	double v = strtod(buf, &end);
	if (!buf[0] || *end || errno || !isfinite(v))
		return ERR_INVAL;
	*out = v;
	return 0;
}

int conf_parse_int(const char *s, long long *out)
{
	char buf[128], *end;
	trim(s, buf, sizeof buf);
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (!buf[0] || *end || errno)
		return ERR_INVAL;
	*out = v;
	return 0;
}

int conf_parse_bytes(const char *s, long long *out)
{
	static const struct { const char *suf; double mul; } units[] = {
		{"", 1}, {"b", 1}, {"k", 1024.0}, {"kib", 1024.0}, {"kb", 1e3},
		{"m", 1048576.0}, {"mib", 1048576.0}, {"mb", 1e6},
		{"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9},
		{"t", 1099511627776.0}, {"tib", 1099511627776.0}, {"tb", 1e12},
	};
	char buf[128], *end;
	trim(s, buf, sizeof buf);
	errno = 0;
	double v = strtod(buf, &end);
	if (end == buf || errno || !isfinite(v) || v < 0)
		return ERR_INVAL;
	while (isspace((unsigned char)*end))
		end++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (!strcasecmp(end, units[i].suf)) {
			double b = v * units[i].mul;
			if (b > 9.2e18 || b != floor(b))
				return ERR_INVAL;
			*out = (long long)b;
			return 0;
		}
	}
	return ERR_INVAL;
}

const char *conf_names_join(conf_names_fn *fn, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; fn(i) && used < cap; i++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "|" : "", fn(i));
	return buf;
}

const char *conf_choices(const struct conf_opt *o, char *buf, size_t cap)
{
	if (o->names)
		return conf_names_join(o->names, buf, cap);
	return o->choices ? o->choices : "";
}

static int enum_index(const char *choices, const char *v)
{
	int idx = 0;
	size_t vl = strlen(v);
	for (const char *p = choices; *p; idx++) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == vl && !strncmp(p, v, len))
			return idx;
		if (!bar)
			break;
		p = bar + 1;
	}
	return -1;
}

static void enum_name(const char *choices, int idx, char *buf, size_t cap)
{
	const char *p = choices;
	for (int i = 0; i < idx && p; i++) {
		p = strchr(p, '|');
		if (p)
			p++;
	}
	if (!p) {
		snprintf(buf, cap, "?");
		return;
	}
	const char *bar = strchr(p, '|');
	snprintf(buf, cap, "%.*s", (int)(bar ? (size_t)(bar - p) : strlen(p)), p);
}

static int where(const struct conf_opt *o, const struct conf_entry *e, struct lif_err *err,
		 const char *fmt, const char *val)
{
	char what[512], shown[208];
	size_t vl = strlen(val);
	/* long values are shown by their start */
	snprintf(shown, sizeof shown, "%.200s%s", val, vl > 200 ? "..." : "");
	snprintf(what, sizeof what, fmt, shown);
	if (e)
		return err_set(err, ERR_INVAL, "%s:%d: [%s] %s: %s", e->file, e->line, o->section,
			       o->name, what);
	return err_set(err, ERR_INVAL, "%s: %s", o->name, what);
}

static void format_double(char *buf, size_t len, double v);

static int check_bounds(const struct conf_opt *o, double v, const struct conf_entry *e,
			struct lif_err *err, const char *val)
{
	if (o->min <= o->max && (v < o->min || v > o->max)) {
		char msg[256];
		/* integers print as integers: [1, 4194304], not [1, 4.1943e+06] */
		const char *sp = o->unit ? " " : "", *unit = o->unit ? o->unit : "";
		if (o->type == CONF_INT || o->type == CONF_I64 || o->type == CONF_BYTES) {
			snprintf(msg, sizeof msg, "'%%s' is outside [%.0f, %.0f]%s%s", o->min, o->max,
				 sp, unit);
		} else { /* the shortest form that reads back as the bound */
			char lo[40], hi[40];
			format_double(lo, sizeof lo, o->min);
			format_double(hi, sizeof hi, o->max);
			snprintf(msg, sizeof msg, "'%%s' is outside [%s, %s]%s%s", lo, hi, sp, unit);
		}
		return where(o, e, err, msg, val);
	}
	return 0;
}

static int set_number(const struct conf_opt *o, char *f, const char *v,
		      const struct conf_entry *e, struct lif_err *err)
{
	long long iv;
	double dv;
	switch (o->type) {
	case CONF_INT:
		if (conf_parse_int(v, &iv) || iv < INT32_MIN || iv > INT32_MAX)
			return where(o, e, err, "'%s' is not an integer", v);
		if (check_bounds(o, (double)iv, e, err, v))
			return ERR_INVAL;
		*(int *)f = (int)iv;
		return 0;
	case CONF_I64:
		if (conf_parse_int(v, &iv))
			return where(o, e, err, "'%s' is not an integer", v);
		if (check_bounds(o, (double)iv, e, err, v))
			return ERR_INVAL;
		*(int64_t *)f = iv;
		return 0;
	case CONF_BYTES: /* a row whose minimum is negative takes plain negative integers too (-1: never) */
		if (conf_parse_bytes(v, &iv) && !(o->min < 0 && !conf_parse_int(v, &iv) && iv < 0))
			return where(o, e, err, "'%s' is not a byte size (e.g. 4096, 16KiB, 6.7GB)", v);
		if (check_bounds(o, (double)iv, e, err, v))
			return ERR_INVAL;
		*(int64_t *)f = iv;
		return 0;
	default:
		if (conf_parse_double(v, &dv))
			return where(o, e, err, "'%s' is not a number", v);
		if (check_bounds(o, dv, e, err, v))
			return ERR_INVAL;
		*(double *)f = dv;
		return 0;
	}
}

static int set_dlist(const struct conf_opt *o, char *base, const char *v,
		     const struct conf_entry *e, struct lif_err *err)
{
	size_t n;
	if (!v[strspn(v, " \t")]) { /* an empty value is an empty list */
		*(int *)(base + o->count_offset) = 0;
		return 0;
	}
	char **items = conf_list_split(v, &n);
	int rc = 0;
	if (!items)
		return err_set(err, ERR_NOMEM, "out of memory");
	if (n > o->size) {
		char msg[128];
		snprintf(msg, sizeof msg, "'%%s' has more than %zu elements", o->size);
		rc = where(o, e, err, msg, v);
	}
	double *arr = (double *)(base + o->offset);
	for (size_t i = 0; i < n && !rc; i++) {
		if (conf_parse_double(items[i], &arr[i]))
			rc = where(o, e, err, "'%s' is not a number", items[i]);
		else
			rc = check_bounds(o, arr[i], e, err, items[i]);
	}
	if (!rc)
		*(int *)(base + o->count_offset) = (int)n;
	conf_list_free(items, n);
	return rc;
}

/* Set the field f of row o (target: the whole struct, for a list's count). */
static int set_field(const struct conf_opt *o, void *target, char *f, const char *value,
		     const struct conf_entry *e, struct lif_err *err)
{
	char v[CONF_MAX_LINE];
	trim(value, v, sizeof v);
	switch (o->type) {
	case CONF_STR:
		if (strlen(v) >= o->size)
			return where(o, e, err, "'%s' is too long", v);
		memcpy(f, v, strlen(v) + 1);
		return 0;
	case CONF_BOOL:
		if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") ||
		    !strcasecmp(v, "on"))
			*(int *)f = 1;
		else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
			 !strcasecmp(v, "off"))
			*(int *)f = 0;
		else
			return where(o, e, err, "'%s' is not a boolean (true/false)", v);
		return 0;
	case CONF_ENUM: {
		char buf[256];
		const char *choices = conf_choices(o, buf, sizeof buf);
		int idx = enum_index(choices, v);
		if (idx < 0) {
			char msg[512];
			snprintf(msg, sizeof msg, "'%%s' is not one of %s", choices);
			return where(o, e, err, msg, v);
		}
		*(int *)f = idx;
		return 0;
	}
	case CONF_DLIST:
		return set_dlist(o, target, v, e, err);
	default:
		return set_number(o, f, v, e, err);
	}
}

int conf_set(const struct conf_opt *o, void *target, const char *value,
	     const struct conf_entry *e, struct lif_err *err)
{
	return set_field(o, target, (char *)target + o->offset, value, e, err);
}

int conf_set_field(const struct conf_opt *o, void *field, const char *value, struct lif_err *err)
{
	if (o->type == CONF_DLIST)
		return err_set(err, ERR_INVAL, "%s: a list is set through its table", o->name);
	return set_field(o, NULL, field, value, NULL, err);
}

int conf_defaults(const struct conf_opt *opts, void *target, struct lif_err *err)
{
	for (const struct conf_opt *o = opts; o->name; o++)
		if (o->def && conf_set(o, target, o->def, NULL, err))
			return ERR_INVAL;
	return 0;
}

static int section_listed(const char *sections, const char *s)
{
	if (!sections)
		return 1;
	size_t sl = strlen(s);
	for (const char *p = sections; p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == sl && !strncmp(p, s, len))
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

void conf_suggest_key(const struct conf_opt *opts, const char *section, const char *key, char *buf,
		      size_t cap)
{
	const char *names[512];
	size_t n = 0;
	for (const struct conf_opt *o = opts; o && o->name && n < 512; o++)
		if (!section || !strcmp(o->section, section))
			names[n++] = o->name;
	const char *pick = suggest_nearest(key, names, n);
	buf[0] = '\0';
	if (pick)
		snprintf(buf, cap, " (did you mean '%s'?)", pick);
}

int conf_apply(const struct conf_opt *opts, void *target, const struct conf_doc *doc,
	       const char *sections, struct lif_err *err)
{
	for (size_t i = 0; i < doc->n; i++) {
		const struct conf_entry *e = &doc->entries[i];
		if (!strcmp(e->section, "vars") || !section_listed(sections, e->section))
			continue;
		const struct conf_opt *o = conf_find(opts, e->section, e->key);
		char hint[128];
		if (!o) {
			conf_suggest_key(opts, e->section, e->key, hint, sizeof hint);
			return err_set(err, ERR_INVAL, "%s:%d: [%s] %s: unknown key%s", e->file, e->line,
				       e->section, e->key, hint);
		}
		if (conf_set(o, target, e->value, e, err))
			return ERR_INVAL;
	}
	return 0;
}

static int doc_has(const struct conf_doc *doc, const struct conf_opt *o)
{
	for (size_t i = 0; i < doc->n; i++)
		if (!strcmp(doc->entries[i].section, o->section) &&
		    !strcmp(doc->entries[i].key, o->name))
			return 1;
	return 0;
}

int conf_load(const char *path, const struct conf_opt *opts, void *target,
	      struct lif_err *err)
{
	struct conf_doc *doc = NULL;
	int rc = conf_defaults(opts, target, err);
	if (!rc)
		rc = conf_doc_read(path, &doc, err);
	if (!rc)
		rc = conf_apply(opts, target, doc, NULL, err);
	for (const struct conf_opt *o = opts; !rc && o->name; o++)
		if (!o->def && !doc_has(doc, o))
			rc = err_set(err, ERR_INVAL, "%s: [%s] %s: required key is missing", path,
				     o->section, o->name);
	conf_doc_free(doc);
	return rc;
}

/* The shortest %g form that reads back as the same double. */
static void format_double(char *buf, size_t len, double v)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

void conf_format(const struct conf_opt *o, const void *target, char *buf, size_t len)
{
	const char *f = (const char *)target + o->offset;
	switch (o->type) {
	case CONF_INT:
	case CONF_BOOL:
		if (o->type == CONF_BOOL)
			snprintf(buf, len, "%s", *(const int *)f ? "true" : "false");
		else
			snprintf(buf, len, "%d", *(const int *)f);
		break;
	case CONF_I64:
	case CONF_BYTES:
		snprintf(buf, len, "%lld", (long long)*(const int64_t *)f);
		break;
	case CONF_DOUBLE:
		format_double(buf, len, *(const double *)f);
		break;
	case CONF_STR:
		snprintf(buf, len, "%s", f);
		break;
	case CONF_ENUM: {
		char choices[256];
		enum_name(conf_choices(o, choices, sizeof choices), *(const int *)f, buf, len);
		break;
	}
	case CONF_DLIST: {
		int n = *(const int *)((const char *)target + o->count_offset);
		size_t used = 0;
		buf[0] = '\0';
		for (int i = 0; i < n && used < len; i++)
		{
			char num[40];
			format_double(num, sizeof num, ((const double *)f)[i]);
			used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", num);
		}
		break;
	}
	}
}

void conf_print(FILE *f, const struct conf_opt *opts, const void *target)
{
	const char *sec = NULL;
	char buf[CONF_MAX_LINE];
	for (const struct conf_opt *o = opts; o->name; o++) {
		if (!sec || strcmp(sec, o->section)) {
			sec = o->section;
			fprintf(f, "%s[%s]\n", o == opts ? "" : "\n", sec);
		}
		conf_format(o, target, buf, sizeof buf);
		fprintf(f, "%s = %s\n", o->name, buf);
	}
}

static const char *type_name(enum conf_type t)
{
	static const char *names[] = {"int", "int", "number", "bytes", "bool", "string", "choice",
				      "list"};
	return names[t];
}

void conf_help(FILE *f, const struct conf_opt *opts)
{
	for (const struct conf_opt *o = opts; o->name; o++) {
		fprintf(f, "  [%s] %-18s %-7s %s", o->section, o->name, type_name(o->type),
			o->help ? o->help : "");
		char choices[256];
		if (o->type == CONF_ENUM || o->names)
			fprintf(f, " (%s)", conf_choices(o, choices, sizeof choices));
		if (o->def)
			fprintf(f, " [default: %s]", o->def);
		else
			fprintf(f, " [required]");
		fputc('\n', f);
	}
}

char **conf_list_split(const char *s, size_t *n)
{
	size_t cap = 1;
	for (const char *p = s; *p; p++)
		cap += *p == ',';
	char **v = calloc(cap, sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	const char *p = s;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char *item = malloc(len + 1);
		if (!item) {
			conf_list_free(v, k);
			return NULL;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		char *a = item;
		while (isspace((unsigned char)*a))
			a++;
		memmove(item, a, strlen(a) + 1);
		size_t il = strlen(item);
		while (il && isspace((unsigned char)item[il - 1]))
			item[--il] = '\0';
		v[k++] = item;
		if (!comma)
			break;
		p = comma + 1;
	}
	*n = k;
	return v;
}

void conf_list_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
