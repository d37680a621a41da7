/* csv.c: reading and writing CSV (the contract is in csv.h). */
#include "sim/base/csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void csv_write_field(FILE *f, const char *s, int first)
{
	if (!first)
		fputc(',', f);
	size_t n = strlen(s);
	int quote = strpbrk(s, ",\"\r\n") != NULL || (n && (s[0] == ' ' || s[n - 1] == ' '));
	if (!quote) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

void csv_free(struct csv *c)
{
	for (size_t i = 0; i < c->n; i++) {
		for (size_t j = 0; j < c->recs[i].n; j++)
			free(c->recs[i].f[j]);
		free(c->recs[i].f);
	}
	free(c->recs);
	*c = (struct csv){0};
}

long csv_col(const struct csv *c, const char *name)
{
	for (size_t j = 0; c->n && j < c->recs[0].n; j++)
		if (!strcmp(c->recs[0].f[j], name))
			return (long)j;
	return -1;
}

/* Append a field to rec; 0 or ERR_NOMEM. */
static int rec_push(struct csv_rec *r, const char *s, size_t len)
{
	char **nf = realloc(r->f, (r->n + 1) * sizeof *nf);
	if (!nf)
		return ERR_NOMEM;
	r->f = nf;
	if (!(r->f[r->n] = malloc(len + 1)))
		return ERR_NOMEM;
	memcpy(r->f[r->n], s, len);
	r->f[r->n++][len] = '\0';
	return 0;
}

/* Split one record's text p (its quotes balanced) into r's fields, using tmp
 * (as long as p) for unquoting; 0, ERR_FORMAT or ERR_NOMEM. */
static int rec_split(const char *p, struct csv_rec *r, char *tmp)
{
	for (;;) {
		size_t len = 0;
		if (*p == '"') {
			for (p++; *p != '"' || p[1] == '"'; p++) {
				if (!*p)
					return ERR_FORMAT;
				p += *p == '"'; /* "" is a quote */
				tmp[len++] = *p;
			}
			p++;
		} else {
			while (*p && *p != ',' && *p != '\n' && *p != '\r')
				tmp[len++] = *p++;
		}
		if (rec_push(r, tmp, len))
			return ERR_NOMEM;
		if (*p != ',')
			break;
		p++;
	}
	p += *p == '\r';
	p += *p == '\n';
	return *p ? ERR_FORMAT : 0;
}

/* Whether text[0..n) leaves a quoted field open. */
static int quote_open(const char *text, size_t n)
{
	size_t q = 0;
	for (size_t i = 0; i < n; i++)
		q += text[i] == '"';
	return q % 2;
}

struct reader {
	FILE *f;
	const char *path;
	int line;      /* lines read so far */
	char *buf;     /* the current record's text */
	size_t len, cap;
	char *ln;      /* getline's buffer */
	size_t lncap;
};

/* Read the next record's text (its lines joined while a quote is open) into
 * rd->buf; 1 when there is one, 0 at the end, or ERR_*. */
static int next_text(struct reader *rd, struct lif_err *err)
{
	rd->len = 0;
	int start = rd->line + 1;
	do {
		errno = 0;
		ssize_t n = getline(&rd->ln, &rd->lncap, rd->f);
		if (n < 0 && (errno || ferror(rd->f)))
			return errno == ENOMEM ? err_set(err, ERR_NOMEM, "%s: out of memory", rd->path)
					       : err_set(err, ERR_IO, "%s: cannot read: %s", rd->path,
							 strerror(errno ? errno : EIO));
		if (n < 0 && rd->len)
			return err_set(err, ERR_FORMAT, "%s:%d: malformed CSV record", rd->path, start);
		if (n < 0)
			return 0;
		rd->line++;
		if (strlen(rd->ln) != (size_t)n)
			return err_set(err, ERR_FORMAT, "%s:%d: holds a NUL byte: not a CSV file",
				       rd->path, rd->line);
		if (rd->len + (size_t)n + 1 > rd->cap) {
			size_t cap = 2 * (rd->len + (size_t)n + 1);
			char *nb = realloc(rd->buf, cap);
			if (!nb)
				return err_set(err, ERR_NOMEM, "%s: out of memory", rd->path);
			rd->buf = nb, rd->cap = cap;
		}
		memcpy(rd->buf + rd->len, rd->ln, (size_t)n + 1);
		rd->len += (size_t)n;
	} while (quote_open(rd->buf, rd->len));
	return 1;
}

/* Append one record parsed from rd->buf (starting on line) to c. */
static int add_rec(struct csv *c, const struct reader *rd, int line, struct lif_err *err)
{
	struct csv_rec *nr = realloc(c->recs, (c->n + 1) * sizeof *nr);
	char *tmp = malloc(rd->len + 1);
	if (nr)
		c->recs = nr;
	if (!nr || !tmp) {
		free(tmp);
		return err_set(err, ERR_NOMEM, "%s: out of memory", rd->path);
	}
	struct csv_rec *r = &c->recs[c->n++];
	*r = (struct csv_rec){.line = line};
	int rc = rec_split(rd->buf, r, tmp);
	free(tmp);
	if (rc == ERR_NOMEM)
		return err_set(err, rc, "%s: out of memory", rd->path);
	if (rc)
		return err_set(err, rc, "%s:%d: malformed CSV record", rd->path, line);
	if (r->n != c->recs[0].n)
		return err_set(err, ERR_FORMAT, "%s:%d: %zu fields where the header has %zu", rd->path,
			       line, r->n, c->recs[0].n);
	return 0;
}

int csv_read(const char *path, struct csv *c, struct lif_err *err)
{
	struct reader rd = {.f = fopen(path, "r"), .path = path};
	*c = (struct csv){0};
	if (!rd.f)
		return err_set(err, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
	int rc, start = 1;
	while ((rc = next_text(&rd, err)) == 1 && !(rc = add_rec(c, &rd, start, err)))
		start = rd.line + 1;
	if (!rc && c->n == 0)
		rc = err_set(err, ERR_FORMAT, "%s: empty (no header line)", path);
	fclose(rd.f);
	free(rd.buf), free(rd.ln);
	if (rc)
		csv_free(c);
	return rc;
}
