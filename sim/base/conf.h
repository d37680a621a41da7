/*
 * conf: INI files read through option tables.
 *
 * Two layers. conf_doc_read() reads an INI file into a list of entries
 * (section, key, raw value, file, line), following `include = FILE` (relative
 * to the including file) and expanding `${VAR}` from keys of a `[vars]`
 * section seen earlier, or else from the environment. It knows nothing of
 * meaning. conf_apply() then sets fields of a caller's struct from entries
 * through a `const struct conf_opt` table (name, type, offset, default,
 * bounds, help), which also drives `--help` text (conf_help) and the echo of
 * every parameter as used (conf_print). Unknown keys and bad values are
 * errors of the form "FILE:LINE: [section] key: problem".
 *
 * The sweep runner uses the raw layer directly: a value may be a
 * comma-separated list, and each point of the cartesian product applies one
 * element of each list.
 */
#ifndef LIFSIM_CONF_H
#define LIFSIM_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "sim/base/err.h"

enum conf_type {
	CONF_INT,    /* int */
	CONF_I64,    /* int64_t */
	CONF_DOUBLE, /* double */
	CONF_BYTES,  /* int64_t; accepts 4096, 16KiB, 1.5GB, 4k */
	CONF_BOOL,   /* int; true/false/yes/no/1/0 */
	CONF_STR,    /* char[size] */
	CONF_ENUM,   /* int: index into the choices (the '|'-separated list, or names) */
	CONF_DLIST   /* double[size] with its count in an int at count_offset */
};

/* A choice list read off a name or ops table (one source): the name of choice
 * i, or NULL past the last. */
typedef const char *conf_names_fn(int i);

struct conf_opt {
	const char *section; /* INI section the key lives in */
	const char *name;    /* key */
	enum conf_type type;
	size_t offset;       /* of the field in the target struct */
	size_t size;         /* CONF_STR: buffer bytes; CONF_DLIST: max elements */
	size_t count_offset; /* CONF_DLIST: offset of the int element count */
	const char *def;     /* default as text; NULL means required */
	double min, max;     /* inclusive bounds for numbers (min > max: none) */
	const char *choices; /* CONF_ENUM: "a|b|c" for a list that lives only here */
	conf_names_fn *names; /* CONF_ENUM, or a CONF_STR naming a table entry: the
			       * table's names (instead of choices) */
	const char *help;
	const char *unit;    /* printed after the bounds in an out-of-bounds error */
};

/* Helpers for table rows (designated initializers; fields left out are 0 or
 * NULL: no default means the key is required). CONF_OFF(struct, field) gives
 * the offset; CONF_NO_BOUNDS marks a row without numeric bounds (min > max). */
#define CONF_OFF(type, field) offsetof(type, field)
#define CONF_NO_BOUNDS .min = 1, .max = 0

struct conf_entry {
	char *section; /* "" before the first section header */
	char *key;
	char *value;   /* after ${VAR} expansion */
	char *file;    /* the file the entry came from */
	int line;      /* 1-based line in that file */
};

struct conf_doc {
	struct conf_entry *entries; /* in file order, includes spliced in */
	size_t n, cap;
};

/* Set the libinih limits lifsim relies on (long lines). Call once at start. */
void conf_init(void);

/* Read an INI file (with includes and ${VAR} expansion). *out is owned by the
 * caller and freed with conf_doc_free. */
int conf_doc_read(const char *path, struct conf_doc **out, struct lif_err *err);
void conf_doc_free(struct conf_doc *doc);

/* " (did you mean 'NAME'?)" for an unknown key: the nearest option name of
 * opts in section (any section when NULL; sim/base/suggest.h), or "". */
void conf_suggest_key(const struct conf_opt *opts, const char *section, const char *key, char *buf,
		      size_t cap);

/* The names of fn joined with '|' into buf ("a|b|c"); returns buf. */
const char *conf_names_join(conf_names_fn *fn, char *buf, size_t cap);

/* The row's choices as "a|b|c" (its choices string, or its names joined into
 * buf); "" for a row without choices. */
const char *conf_choices(const struct conf_opt *opt, char *buf, size_t cap);

/* Find the table row for (section, key), or NULL. */
const struct conf_opt *conf_find(const struct conf_opt *opts, const char *section,
				 const char *key);

/* Set every field of target to its default. Fields without a default are
 * left alone (zeroed by the caller). */
int conf_defaults(const struct conf_opt *opts, void *target, struct lif_err *err);

/* Parse value into the field described by opt. The message names file, line,
 * section and key when e is given (e may be NULL for command-line values). */
int conf_set(const struct conf_opt *opt, void *target, const char *value,
	     const struct conf_entry *e, struct lif_err *err);

/* Parse value into a lone variable of the row's type (int for CONF_INT, ENUM
 * and BOOL, int64_t for CONF_I64 and BYTES, double, char[size]) with the
 * row's bounds and choices: a command-line flag that mirrors an INI key
 * (not CONF_DLIST). The message starts "NAME: ". */
int conf_set_field(const struct conf_opt *opt, void *field, const char *value,
		   struct lif_err *err);

/* Apply every entry of doc whose section is in `sections` ("|"-separated; NULL
 * for all) to target; an entry matching no row is an "unknown key" error. */
int conf_apply(const struct conf_opt *opts, void *target, const struct conf_doc *doc,
	       const char *sections, struct lif_err *err);

/* Defaults, then the file, then a check that required keys were given. */
int conf_load(const char *path, const struct conf_opt *opts, void *target,
	      struct lif_err *err);

/* Format the field's current value as text (for echo and CSV). */
void conf_format(const struct conf_opt *opt, const void *target, char *buf, size_t len);

/* Write every parameter as INI, grouped by section, with help as comments. */
void conf_print(FILE *f, const struct conf_opt *opts, const void *target);

/* One line per option: section.key, type, default, bounds, help. */
void conf_help(FILE *f, const struct conf_opt *opts);

/* Parse helpers shared with the CLI; return 0 or ERR_INVAL. */
int conf_parse_bytes(const char *s, long long *out);
int conf_parse_double(const char *s, double *out);
int conf_parse_int(const char *s, long long *out);

/* Split a comma-separated list in place-free fashion: returns a malloc'd
 * array of malloc'd, whitespace-trimmed strings (free with conf_list_free). */
char **conf_list_split(const char *s, size_t *n);
void conf_list_free(char **v, size_t n);

#endif
