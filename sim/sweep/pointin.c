#include "sim/sweep/pointin.h"

#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base/envvar.h"
#include "sim/real/replay.h"

#define POINTIN_MAX 64

struct entry {
	char key[8700];
	struct pointin_trace in;
	struct trace_reader *reader; /* a streamed trace (pointin_spec.stream) */
	char trace_path[4096];       /* its path, which the cache's source names */
};

/* Tokens per block of a streamed trace: about STREAM_BLOCK_BYTES of active
 * bits over every layer, in whole chunks of the file (64 tokens) when that
 * is one or more. */
#define STREAM_BLOCK_BYTES ((int64_t)64 << 20)

static int64_t stream_block(const struct trace *meta)
{
	int64_t want = envvar_stream_block(); /* lifsim(1), ENVIRONMENT */
	if (want >= 1)
		return want;
	int64_t per = (int64_t)meta->meta.layers * meta->row_bytes;
	int64_t b = STREAM_BLOCK_BYTES / (per > 0 ? per : 1);
	return b >= 64 ? b / 64 * 64 : b > 0 ? b : 1;
}

static int reader_read(void *ctx, int64_t t0, int64_t n, uint8_t *bits, uint8_t *band,
		       struct lif_err *err)
{
	return trace_reader_read(ctx, t0, n, bits, band, err);
}

struct dev_entry {
	char path[4096];
	struct device d;
};

struct pointin {
	pthread_mutex_t lock;
	struct entry *in[POINTIN_MAX];
	struct dev_entry *dev[POINTIN_MAX];
	int nin, ndev;
};

struct pointin *pointin_new(struct lif_err *err)
{
	struct pointin *pi = calloc(1, sizeof *pi);
	if (!pi) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&pi->lock, NULL);
	return pi;
}

void pointin_free(struct pointin *pi)
{
	if (!pi)
		return;
	for (int i = 0; i < pi->nin; i++) {
		sim_cache_free(pi->in[i]->in.cache);
		trace_free(pi->in[i]->in.t);
		trace_reader_close(pi->in[i]->reader);
		free(pi->in[i]);
	}
	for (int i = 0; i < pi->ndev; i++)
		free(pi->dev[i]);
	pthread_mutex_destroy(&pi->lock);
	free(pi);
}

/* The canonical text of the inputs a spec names. */
static void spec_key(const struct pointin_spec *s, char *buf, size_t cap)
{
	size_t used = (size_t)snprintf(buf, cap, "%s|%s|%g|%d|%d|", s->model, s->trace, s->scale,
				       s->load_flags, s->stream);
	char val[64];
	for (const struct conf_opt *o = synth_opts; s->synth && !strcmp(s->trace, "synth") && o->name &&
						    used < cap;
	     o++) {
		conf_format(o, s->synth, val, sizeof val);
		used += (size_t)snprintf(buf + used, cap - used, "%s=%s;", o->name, val);
	}
}

static struct entry *load(const struct pointin_spec *s, struct lif_err *err)
{
	struct entry *e = calloc(1, sizeof *e);
	int rc = e ? llm_load(s->model, &e->in.m, err) : err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && s->scale > 0 && s->scale != 1)
		rc = replay_scale_model(&e->in.m, s->scale, err);
	const int threads = s->threads > 1 ? s->threads : 1;
	const int stream = s->stream && strcmp(s->trace, "synth") && !(s->load_flags & TRACE_LOAD_INPUTS);
	if (!rc && !strcmp(s->trace, "synth"))
		e->in.t = synth_generate(&e->in.m, s->synth, 1, err);
	else if (!rc && !stream)
		e->in.t = trace_load_threads(s->trace, s->load_flags, threads, err);
	else if (!rc && (e->reader = trace_reader_open(s->trace, s->load_flags, threads, err)) &&
		 (e->in.t = calloc(1, sizeof *e->in.t)))
		*e->in.t = *trace_reader_meta(e->reader); /* metadata only */
	else if (!rc && e->reader)
		err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && e->in.t && e->reader) {
		const struct sim_source src = {e->reader, reader_read, stream_block(e->in.t),
					       (e->in.t->meta.has & TRACE_HAS_MAGNITUDES) != 0, e->trace_path};
		snprintf(e->trace_path, sizeof e->trace_path, "%s", s->trace);
		e->in.cache = sim_cache_new_stream(e->in.t, &src, &e->in.m, err);
	} else if (!rc && e->in.t)
		e->in.cache = sim_cache_new(e->in.t, &e->in.m, err);
	if (rc || !e->in.t || !e->in.cache) {
		if (e) {
			trace_free(e->in.t);
			trace_reader_close(e->reader);
		}
		free(e);
		return NULL;
	}
	return e;
}

const struct pointin_trace *pointin_trace(struct pointin *pi, const struct pointin_spec *spec,
					  struct lif_err *err)
{
	char key[8700];
	spec_key(spec, key, sizeof key);
	struct entry *found = NULL;
	pthread_mutex_lock(&pi->lock);
	for (int i = 0; i < pi->nin && !found; i++)
		if (!strcmp(pi->in[i]->key, key))
			found = pi->in[i];
	if (!found && pi->nin == POINTIN_MAX)
		err_set(err, ERR_RANGE, "more than %d distinct traces in one sweep", POINTIN_MAX);
	else if (!found && (found = load(spec, err))) {
		snprintf(found->key, sizeof found->key, "%s", key);
		pi->in[pi->nin++] = found;
	}
	pthread_mutex_unlock(&pi->lock);
	return found ? &found->in : NULL;
}

const struct device *pointin_device(struct pointin *pi, const char *path, struct lif_err *err)
{
	const struct device *found = NULL;
	pthread_mutex_lock(&pi->lock);
	for (int i = 0; i < pi->ndev && !found; i++)
		if (!strcmp(pi->dev[i]->path, path))
			found = &pi->dev[i]->d;
	if (!found && pi->ndev == POINTIN_MAX)
		err_set(err, ERR_RANGE, "more than %d devices in one sweep", POINTIN_MAX);
	else if (!found) {
		struct dev_entry *d = calloc(1, sizeof *d);
		if (d && !device_load(path, &d->d, err)) {
			snprintf(d->path, sizeof d->path, "%s", path);
			pi->dev[pi->ndev++] = d;
			found = &d->d;
		} else {
			if (!d)
				err_set(err, ERR_NOMEM, "out of memory");
			free(d);
		}
	}
	pthread_mutex_unlock(&pi->lock);
	return found;
}

int pointin_resolve(char *path, size_t cap, const struct conf_doc *doc, const char *section,
		    const char *key, enum path_kind kind, struct lif_err *err)
{
	if (!path[0] || path[0] == '/' || !strcmp(path, "synth"))
		return 0;
	for (size_t i = doc->n; i-- > 0;) {
		const struct conf_entry *e = &doc->entries[i];
		if (strcmp(e->section, section) || strcmp(e->key, key))
			continue;
		char buf[4096], out[8300];
		snprintf(buf, sizeof buf, "%s", e->file);
		/* dirname's result, not buf: for a name without a slash it returns
		 * "." and leaves buf as it was */
		const char *dir = dirname(buf);
		if (!path_find(path, kind, dir, out, sizeof out, err)) {
			if (strlen(out) >= cap)
				return err_set(err, ERR_RANGE, "%s:%d: [%s] %s: path too long", e->file,
					       e->line, section, key);
		} else if (kind == PATH_FILE) { /* not found: relative to the experiment, as written */
			err_clear(err);
			snprintf(out, sizeof out, "%s/%s", dir, path);
		} else {
			err_prefix(err, "%s:%d: [%s] %s", e->file, e->line, section, key);
			return err->code;
		}
		if (strlen(out) >= cap)
			return err_set(err, ERR_RANGE, "%s:%d: [%s] %s: path too long", e->file, e->line,
				       section, key);
		snprintf(path, cap, "%s", out);
		return 0;
	}
	return 0;
}

/* The table for section: the first naming it, else the first naming none. */
static const struct pointin_table *table_for(const struct pointin_table *t, size_t n,
					     const char *section)
{
	for (size_t i = 0; i < n; i++)
		if (!t[i].section || !strcmp(t[i].section, section))
			return &t[i];
	return NULL;
}

int pointin_apply(const struct conf_doc *doc, const struct pointin_table *t, size_t n,
		  const char *skip, struct lif_err *err)
{
	int rc = 0;
	for (size_t i = 0; !rc && i < doc->n; i++) {
		const struct conf_entry *e = &doc->entries[i];
		const struct pointin_table *tab = table_for(t, n, e->section);
		if (skip && !strcmp(e->section, skip))
			continue;
		const struct conf_opt *o = tab ? conf_find(tab->opts, e->section, e->key) : NULL;
		char hint[128] = "";
		if (!o && tab)
			conf_suggest_key(tab->opts, e->section, e->key, hint, sizeof hint);
		if (!o)
			rc = err_set(err, ERR_INVAL, "%s:%d: [%s] %s: unknown key%s", e->file, e->line,
				     e->section, e->key, hint);
		else
			rc = conf_set(o, tab->target, e->value, e, err);
	}
	for (size_t i = 0; !rc && i < n; i++)
		for (const struct conf_opt *o = t[i].opts; !rc && o->name; o++)
			if (o->type == CONF_STR && !o->def &&
			    !((const char *)t[i].target + o->offset)[0])
				rc = err_set(err, ERR_INVAL, "[%s] %s: required key is missing",
					     o->section, o->name);
	return rc;
}

int pointin_resolve_all(const struct conf_doc *doc, const struct pointin_path *p, size_t n,
			struct lif_err *err)
{
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++)
		rc = pointin_resolve(p[i].path, p[i].cap, doc, p[i].section, p[i].key, p[i].kind, err);
	return rc;
}
