#include "models/device.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEVICE_TEXT_MAX 16384

/* What the INI holds before the table texts are parsed and checked. */
struct device_file {
	struct device dev;
	char schema[32];
	int version;
	char chunk_text[2048];
	char par_text[1024];
	char table_text[DEVICE_TEXT_MAX];
};

#define O(f) CONF_OFF(struct device_file, f)
#define SZ(f) sizeof(((struct device_file *)0)->f)

/* Numbers are bounded, far outside any device (sanity bounds that keep a
 * typo such as t0_us = 1e308 from printing inf; not model parameters): times
 * by physics (a request's latency up to a second), rates up to 1e30 per
 * second, since calibrate's fit returns a practically unbounded rate when a
 * term vanishes (xfer_bytes_per_s = 3.7e25 B/s on a host whose reads came
 * from the page cache). Below, models/flash.c, dram.c and compute.c say
 * what must be positive. */
const struct conf_opt device_opts[] = {
	{.section = "device", .name = "schema", .type = CONF_STR, .offset = O(schema),
	 .size = SZ(schema), CONF_NO_BOUNDS, .help = "file schema: " DEVICE_SCHEMA},
	{.section = "device", .name = "version", .type = CONF_INT, .offset = O(version),
	 CONF_NO_BOUNDS, .help = "schema version (1)"},
	{.section = "device", .name = "name", .type = CONF_STR, .offset = O(dev.name),
	 .size = SZ(dev.name), .def = "", CONF_NO_BOUNDS,
	 .help = "profile name (default: the file's base name)"},
	{.section = "flash", .name = "model", .type = CONF_ENUM, .offset = O(dev.flash.kind),
	 CONF_NO_BOUNDS, .names = flash_kind_choice, .help = "flash model form in use"},
	{.section = "flash", .name = "t0_us", .type = CONF_DOUBLE, .offset = O(dev.flash.par.t0_us),
	 .def = "0", .min = 0, .max = 1e6, .unit = "us",
	 .help = "parametric (required there): fixed latency per request, us"},
	{.section = "flash", .name = "xfer_bytes_per_s", .type = CONF_DOUBLE,
	 .offset = O(dev.flash.par.xfer_bytes_per_s), .def = "0", .min = 0, .max = 1e30, .unit = "B/s",
	 .help = "parametric (required there): one request's transfer rate B_xfer"},
	{.section = "flash", .name = "iops_max", .type = CONF_DOUBLE,
	 .offset = O(dev.flash.par.iops_max), .def = "0", .min = 0, .max = 1e30, .unit = "requests/s",
	 .help = "parametric (required there): request-rate cap IOPS_max"},
	{.section = "flash", .name = "max_bytes_per_s", .type = CONF_DOUBLE,
	 .offset = O(dev.flash.par.max_bytes_per_s), .def = "0", .min = 0, .max = 1e30, .unit = "B/s",
	 .help = "parametric (required there): bandwidth cap B_max"},
	{.section = "flash", .name = "softmin_p", .type = CONF_DOUBLE,
	 .offset = O(dev.flash.par.softmin_p), .def = "0", CONF_NO_BOUNDS,
	 .help = "parametric (required there): soft-minimum exponent p, [0.5, 64]"},
	{.section = "flash", .name = "alignment_bytes", .type = CONF_BYTES,
	 .offset = O(dev.flash.par.alignment_bytes), .def = "4KiB", CONF_NO_BOUNDS,
	 .help = "parametric: requests are rounded up to this"},
	{.section = "flash", .name = "chunk_bytes", .type = CONF_STR, .offset = O(chunk_text),
	 .size = SZ(chunk_text), .def = "", CONF_NO_BOUNDS,
	 .help = "tabulated (required there): chunk sizes (rows), increasing, e.g. 4KiB,8KiB"},
	{.section = "flash", .name = "parallelism", .type = CONF_STR, .offset = O(par_text),
	 .size = SZ(par_text), .def = "", CONF_NO_BOUNDS,
	 .help = "tabulated (required there): outstanding requests (columns), increasing, e.g. 1,2,4"},
	{.section = "flash", .name = "mb_per_s", .type = CONF_STR, .offset = O(table_text),
	 .size = SZ(table_text), .def = "", CONF_NO_BOUNDS,
	 .help = "tabulated (required there): throughput in MB/s (10^6 B/s), rows separated by '|'"},
	{.section = "dram", .name = "copy_bytes_per_s", .type = CONF_DOUBLE,
	 .offset = O(dev.dram.copy_bytes_per_s), .min = 0, .max = 1e30, .unit = "B/s",
	 .help = "memcpy bandwidth of the memory manager's row copies"},
	{.section = "dram", .name = "per_op_ns", .type = CONF_DOUBLE,
	 .offset = O(dev.dram.per_op_ns), .min = 0, .max = 1e9, .unit = "ns",
	 .help = "bookkeeping per insert or delete, ns"},
	{.section = "dram", .name = "h2d_bytes_per_s", .type = CONF_DOUBLE,
	 .offset = O(dev.dram.h2d_bytes_per_s), .def = "0", .min = 0, .max = 1e30, .unit = "B/s",
	 .help = "host-to-GPU bandwidth (0 = CPU backend)"},
	{.section = "dram", .name = "vram_bytes", .type = CONF_BYTES,
	 .offset = O(dev.dram.vram_bytes), .def = "0", CONF_NO_BOUNDS,
	 .help = "GPU memory capacity (required with h2d_bytes_per_s > 0; 0 = CPU backend)"},
	{.section = "dram", .name = "convert_bytes_per_s", .type = CONF_DOUBLE,
	 .offset = O(dev.dram.convert_bytes_per_s), .def = "0", .min = 0, .max = 1e30, .unit = "B/s",
	 .help = "conversion of loaded rows from the stored to the held dtype, bytes of stored rows "
		 "per second (lifsim calibrate --compute; 0 = not charged)"},
	{.section = "compute", .name = "cores", .type = CONF_INT, .offset = O(dev.compute.cores),
	 .def = "0", .min = 0, .max = 4096,
	 .help = "CPU cores (overlap = pipelined: the reader's CPU work and the kernels share them; "
		 "0 = not given)"},
	{.section = "compute", .name = "threads", .type = CONF_INT, .offset = O(dev.compute.threads),
	 .def = "0", .min = 0, .max = 4096,
	 .help = "threads the compute kernels run on (0 = all cores)"},
	{.section = "compute", .name = "flops_per_s", .type = CONF_DOUBLE,
	 .offset = O(dev.compute.flops_per_s), .min = 0, .max = 1e30, .unit = "FLOP/s",
	 .help = "arithmetic ceiling of the roofline"},
	{.section = "compute", .name = "mem_bytes_per_s", .type = CONF_DOUBLE,
	 .offset = O(dev.compute.mem_bytes_per_s), .min = 0, .max = 1e30, .unit = "B/s",
	 .help = "weight-reading bandwidth of the roofline"},
	{.section = "compute", .name = "dense_ms_per_token", .type = CONF_DOUBLE,
	 .offset = O(dev.compute.dense_ms_per_token), .def = "0", .min = 0, .max = 1e6, .unit = "ms",
	 .help = "measured attention+embeddings+head per token (0 = roofline)"},
	{.section = "compute", .name = "lut_weights_per_s", .type = CONF_DLIST,
	 .offset = O(dev.compute.lut_weights_per_s), .size = COMPUTE_MAX_BITS,
	 .count_offset = O(dev.compute.n_lut), .def = "", .min = 0, .max = 1e30, .unit = "weights/s",
	 .help = "measured LUT GEMV speed, weights/s, for bits 1,2,3,4 (lifsim bench-gemv --profile)"},
	{.section = "compute", .name = "dequant_weights_per_s", .type = CONF_DLIST,
	 .offset = O(dev.compute.dequant_weights_per_s), .size = COMPUTE_MAX_BITS,
	 .count_offset = O(dev.compute.n_dequant), .def = "", .min = 0, .max = 1e30, .unit = "weights/s",
	 .help = "measured dequantize GEMV speed, weights/s, for bits 1,2,3,4 (lifsim bench-gemv --profile)"},
	{.section = "compute", .name = "kernel_overhead_us", .type = CONF_DOUBLE,
	 .offset = O(dev.compute.kernel_overhead_us), .def = "0", CONF_NO_BOUNDS,
	 .help = "dispatch cost per kernel (operation), us (a GPU's launch; 0 on a CPU)"},
	{.section = "compute", .name = "gemv_bytes", .type = CONF_DLIST,
	 .offset = O(dev.compute.gemv_bytes), .size = COMPUTE_MAX_GEMV,
	 .count_offset = O(dev.compute.n_gemv_bytes), .def = "", CONF_NO_BOUNDS,
	 .help = "matrix sizes (bytes, increasing) of the measured GEMV table (lifsim calibrate --compute)"},
	{.section = "compute", .name = "gemv_bytes_per_s", .type = CONF_DLIST,
	 .offset = O(dev.compute.gemv_bytes_per_s), .size = COMPUTE_MAX_GEMV,
	 .count_offset = O(dev.compute.n_gemv_rate), .def = "", CONF_NO_BOUNDS,
	 .help = "achieved fp32 GEMV (sgemv) rate at each gemv_bytes, bytes/s; replaces mem_bytes_per_s"},
	{0},
};

static const char *const parametric_keys[] = {"t0_us", "xfer_bytes_per_s", "iops_max",
					      "max_bytes_per_s", "softmin_p", NULL};
static const char *const tabulated_keys[] = {"chunk_bytes", "parallelism", "mb_per_s", NULL};

/* The last entry for (section, key): the one that took effect. */
static const struct conf_entry *doc_entry(const struct conf_doc *doc, const char *section,
					  const char *key)
{
	for (size_t i = doc->n; i-- > 0;)
		if (!strcmp(doc->entries[i].section, section) && !strcmp(doc->entries[i].key, key))
			return &doc->entries[i];
	return NULL;
}

/* Prefix err's "[section] key: ..." message with the key's FILE:LINE. */
static int localize(const struct conf_doc *doc, const char *path, const char *section,
		    const char *key, struct lif_err *err)
{
	const struct conf_entry *e = key ? doc_entry(doc, section, key) : NULL;
	if (e)
		err_prefix(err, "%s:%d", e->file, e->line);
	else
		err_prefix(err, "%s", path);
	return err->code ? err->code : ERR_INVAL;
}

/* An error about (section, key) of the file, formatted like conf's. */
static int file_err(const struct conf_doc *doc, const char *path, const char *section,
		    const char *key, struct lif_err *err, const char *fmt, const char *arg)
{
	char what[512];
	snprintf(what, sizeof what, fmt, arg);
	err_set(err, ERR_INVAL, "[%s] %s: %s", section, key, what);
	return localize(doc, path, section, key, err);
}

static int any_given(const struct conf_doc *doc, const char *const *keys)
{
	for (int i = 0; keys[i]; i++)
		if (doc_entry(doc, "flash", keys[i]))
			return 1;
	return 0;
}

static int require(const struct conf_doc *doc, const char *path, const char *section,
		   const char *const *keys, const char *why, struct lif_err *err)
{
	for (int i = 0; keys[i]; i++)
		if (!doc_entry(doc, section, keys[i]))
			return err_set(err, ERR_INVAL, "%s: [%s] %s: required key is missing%s", path,
				       section, keys[i], why);
	return 0;
}

/* Parse a comma list into v (at most max); bytes or integers >= 1. */
static int parse_list(const struct conf_doc *doc, const char *path, const char *key,
		      const char *text, int bytes, double *v, int max, int *n, struct lif_err *err)
{
	size_t k;
	char **items = conf_list_split(text, &k);
	int rc = 0;
	if (!items)
		return err_set(err, ERR_NOMEM, "out of memory");
	if ((int)k > max) {
		char m[64];
		snprintf(m, sizeof m, "%d", max);
		rc = file_err(doc, path, "flash", key, err, "lists more than %s values", m);
	}
	for (size_t i = 0; i < k && !rc; i++) {
		long long x;
		int bad = bytes ? conf_parse_bytes(items[i], &x) : conf_parse_int(items[i], &x);
		if (bad || x < 1)
			rc = file_err(doc, path, "flash", key, err,
				      bytes ? "'%s' is not a byte size >= 1 (e.g. 4096, 16KiB)"
					    : "'%s' is not an integer >= 1",
				      items[i]);
		else
			v[i] = (double)x;
	}
	*n = (int)k;
	conf_list_free(items, k);
	return rc;
}

/* Parse one row of the table (n values expected) into out (bytes/s); row 0
 * is the whole table given as one flat row-major list. */
static int parse_row(const struct conf_doc *doc, const char *path, const char *text, int row,
		     int n, double *out, struct lif_err *err)
{
	size_t k;
	char **items = conf_list_split(text, &k);
	int rc = 0;
	if (!items)
		return err_set(err, ERR_NOMEM, "out of memory");
	if ((int)k != n) {
		char m[128];
		if (row)
			snprintf(m, sizeof m, "row %d has %zu values but parallelism lists %d", row, k, n);
		else
			snprintf(m, sizeof m, "has %zu values but chunk_bytes x parallelism is %d", k, n);
		rc = file_err(doc, path, "flash", "mb_per_s", err, "%s", m);
	}
	for (size_t i = 0; i < k && !rc; i++) {
		double x;
		if (conf_parse_double(items[i], &x))
			rc = file_err(doc, path, "flash", "mb_per_s", err, "'%s' is not a number",
				      items[i]);
		else if (x > 1e8) /* up to 100 TB/s; not positive: load_table says */
			rc = file_err(doc, path, "flash", "mb_per_s", err,
				      "'%s' is outside [0, 1e+08] MB/s", items[i]);
		else
			out[i] = x * 1e6;
	}
	conf_list_free(items, k);
	return rc;
}

/* mb_per_s: rows separated by '|', or one flat row-major list. */
static int parse_table(const struct conf_doc *doc, const char *path, const char *text,
		       struct flash_table *t, struct lif_err *err)
{
	if (!strchr(text, '|'))
		return parse_row(doc, path, text, 0, t->n_chunks * t->n_parallelism,
				 t->bytes_per_s, err);
	char *copy = strdup(text);
	if (!copy)
		return err_set(err, ERR_NOMEM, "out of memory");
	int rows = 0, rc = 0;
	char *save = NULL;
	for (char *r = strtok_r(copy, "|", &save); r && !rc; r = strtok_r(NULL, "|", &save)) {
		if (rows < t->n_chunks)
			rc = parse_row(doc, path, r, rows + 1, t->n_parallelism,
				       t->bytes_per_s + rows * t->n_parallelism, err);
		rows++;
	}
	free(copy);
	if (!rc && rows != t->n_chunks) {
		char m[128];
		snprintf(m, sizeof m, "has %d rows but chunk_bytes lists %d sizes", rows, t->n_chunks);
		rc = file_err(doc, path, "flash", "mb_per_s", err, "%s", m);
	}
	return rc;
}

static int load_table(const struct conf_doc *doc, const char *path, struct device_file *f,
		      struct lif_err *err)
{
	struct flash_table *t = &f->dev.flash.tab;
	int rc = parse_list(doc, path, "chunk_bytes", f->chunk_text, 1, t->chunk_bytes,
			    FLASH_MAX_CHUNKS, &t->n_chunks, err);
	if (!rc)
		rc = parse_list(doc, path, "parallelism", f->par_text, 0, t->parallelism,
				FLASH_MAX_PARALLELISM, &t->n_parallelism, err);
	if (!rc)
		rc = parse_table(doc, path, f->table_text, t, err);
	return rc;
}

/* Check the forms given and the other sections, naming FILE:LINE. */
static int check_file(const struct conf_doc *doc, const char *path, struct device_file *f,
		      int has_par, int has_tab, struct lif_err *err)
{
	const char *key = NULL;
	struct flash_model *m = &f->dev.flash;
	if (has_par && flash_ops_table[FLASH_PARAMETRIC].check(m, &key, err))
		return localize(doc, path, "flash", key, err);
	if (has_tab && flash_ops_table[FLASH_TABULATED].check(m, &key, err))
		return localize(doc, path, "flash", key, err);
	if (dram_check(&f->dev.dram, &key, err))
		return localize(doc, path, "dram", key, err);
	if (compute_check(&f->dev.compute, &key, err))
		return localize(doc, path, "compute", key, err);
	return 0;
}

static int check_header(const struct conf_doc *doc, const char *path, struct device_file *f,
			struct lif_err *err)
{
	static const char *const header[] = {"schema", "version", NULL};
	static const char *const model[] = {"model", NULL};
	if (require(doc, path, "device", header, " (is this a lifsim device profile?)", err) ||
	    require(doc, path, "flash", model, "", err))
		return ERR_INVAL;
	if (strcmp(f->schema, DEVICE_SCHEMA))
		return file_err(doc, path, "device", "schema", err,
				"'%s' is not " DEVICE_SCHEMA, f->schema);
	if (f->version != DEVICE_SCHEMA_VERSION) {
		char v[32];
		snprintf(v, sizeof v, "%d", f->version);
		return file_err(doc, path, "device", "version", err,
				"unsupported version %s (this lifsim reads version 1)", v);
	}
	return 0;
}

static void default_name(char *name, size_t cap, const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	const char *base = basename(buf);
	size_t len = strlen(base);
	if (len > 4 && !strcmp(base + len - 4, ".ini"))
		len -= 4;
	snprintf(name, cap, "%.*s", (int)len, base);
}

static int load_doc(const struct conf_doc *doc, const char *path, struct device_file *f,
		    struct lif_err *err)
{
	static const char *const dram_keys[] = {"copy_bytes_per_s", "per_op_ns", NULL};
	static const char *const compute_keys[] = {"flops_per_s", "mem_bytes_per_s", NULL};
	int rc = conf_apply(device_opts, f, doc, NULL, err);
	if (!rc)
		rc = check_header(doc, path, f, err);
	int kind = f->dev.flash.kind;
	int has_par = kind == FLASH_PARAMETRIC || any_given(doc, parametric_keys);
	int has_tab = kind == FLASH_TABULATED || any_given(doc, tabulated_keys);
	if (!rc && has_par)
		rc = require(doc, path, "flash", parametric_keys, " (parametric flash model)", err);
	if (!rc && has_tab)
		rc = require(doc, path, "flash", tabulated_keys, " (tabulated flash model)", err);
	if (!rc)
		rc = require(doc, path, "dram", dram_keys, "", err);
	if (!rc)
		rc = require(doc, path, "compute", compute_keys, "", err);
	if (!rc && has_tab)
		rc = load_table(doc, path, f, err);
	if (!rc)
		rc = check_file(doc, path, f, has_par, has_tab, err);
	if (!rc && !f->dev.name[0])
		default_name(f->dev.name, sizeof f->dev.name, path);
	return rc;
}

int device_load(const char *path, struct device *out, struct lif_err *err)
{
	struct conf_doc *doc = NULL;
	struct device_file *f = calloc(1, sizeof *f);
	int rc;
	if (!f)
		return err_set(err, ERR_NOMEM, "out of memory");
	rc = conf_defaults(device_opts, f, err);
	if (!rc)
		rc = conf_doc_read(path, &doc, err);
	if (!rc)
		rc = load_doc(doc, path, f, err);
	if (!rc)
		*out = f->dev;
	conf_doc_free(doc);
	free(f);
	return rc;
}

int device_check(const struct device *d, struct lif_err *err)
{
	const char *key = NULL;
	const struct flash_model *m = &d->flash;
	if (flash_check(m, &key, err))
		return err->code;
	if (m->kind != FLASH_PARAMETRIC && m->par.xfer_bytes_per_s != 0 &&
	    flash_ops_table[FLASH_PARAMETRIC].check(m, &key, err))
		return err->code;
	if (m->kind != FLASH_TABULATED && m->tab.n_chunks > 0 &&
	    flash_ops_table[FLASH_TABULATED].check(m, &key, err))
		return err->code;
	if (dram_check(&d->dram, &key, err) || compute_check(&d->compute, &key, err))
		return err->code;
	return 0;
}

/* ---- writing ---- */

/* v as text that reads back exactly: the fewest significant digits, with an
 * exponent only for large values (12.5e9 prints as 1.25e+10, 1250 as 1250). */
static const char *num(char *buf, size_t cap, double v)
{
	int large = fabs(v) >= 1e6;
	for (int prec = large ? 1 : 15; prec <= 17; prec++) {
		snprintf(buf, cap, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

static void write_table(FILE *f, const struct flash_table *t)
{
	char b[64];
	fprintf(f, "chunk_bytes = ");
	for (int i = 0; i < t->n_chunks; i++)
		fprintf(f, "%s%s", i ? ", " : "", num(b, sizeof b, t->chunk_bytes[i]));
	fprintf(f, "\nparallelism = ");
	for (int j = 0; j < t->n_parallelism; j++)
		fprintf(f, "%s%s", j ? ", " : "", num(b, sizeof b, t->parallelism[j]));
	fprintf(f, "\n; MB/s (10^6 B/s), one row per chunk size, one column per parallelism\n"
		   "mb_per_s = ");
	for (int i = 0; i < t->n_chunks; i++)
		for (int j = 0; j < t->n_parallelism; j++)
			fprintf(f, "%s%s", j ? ", " : i ? " | " : "",
				num(b, sizeof b, t->bytes_per_s[i * t->n_parallelism + j] / 1e6));
	fputc('\n', f);
}

static void write_parametric(FILE *f, const struct flash_params *p)
{
	char b[64];
	fprintf(f, "t0_us = %s\n", num(b, sizeof b, p->t0_us));
	fprintf(f, "xfer_bytes_per_s = %s\n", num(b, sizeof b, p->xfer_bytes_per_s));
	fprintf(f, "iops_max = %s\n", num(b, sizeof b, p->iops_max));
	fprintf(f, "max_bytes_per_s = %s\n", num(b, sizeof b, p->max_bytes_per_s));
	fprintf(f, "softmin_p = %s\n", num(b, sizeof b, p->softmin_p));
	fprintf(f, "alignment_bytes = %lld\n", (long long)p->alignment_bytes);
}

int device_write(FILE *f, const struct device *d, struct lif_err *err)
{
	char b[64];
	const struct flash_model *m = &d->flash;
	fprintf(f, "; lifsim device profile (see models/device.h)\n[device]\nschema = %s\n"
		   "version = %d\nname = %s\n\n[flash]\nmodel = %s\n",
		DEVICE_SCHEMA, DEVICE_SCHEMA_VERSION, d->name, flash_ops_table[m->kind].name);
	if (m->kind == FLASH_PARAMETRIC || m->par.xfer_bytes_per_s != 0)
		write_parametric(f, &m->par);
	if (m->kind == FLASH_TABULATED || m->tab.n_chunks > 0)
		write_table(f, &m->tab);
	fprintf(f, "\n[dram]\ncopy_bytes_per_s = %s\n", num(b, sizeof b, d->dram.copy_bytes_per_s));
	fprintf(f, "per_op_ns = %s\n", num(b, sizeof b, d->dram.per_op_ns));
	fprintf(f, "h2d_bytes_per_s = %s\n", num(b, sizeof b, d->dram.h2d_bytes_per_s));
	if (d->dram.vram_bytes > 0)
		fprintf(f, "vram_bytes = %lld\n", (long long)d->dram.vram_bytes);
	if (d->dram.convert_bytes_per_s > 0)
		fprintf(f, "convert_bytes_per_s = %s\n", num(b, sizeof b, d->dram.convert_bytes_per_s));
	fprintf(f, "\n[compute]\nflops_per_s = %s\n", num(b, sizeof b, d->compute.flops_per_s));
	if (d->compute.cores > 0)
		fprintf(f, "cores = %d\n", d->compute.cores);
	if (d->compute.threads > 0)
		fprintf(f, "threads = %d\n", d->compute.threads);
	fprintf(f, "mem_bytes_per_s = %s\n", num(b, sizeof b, d->compute.mem_bytes_per_s));
	fprintf(f, "dense_ms_per_token = %s\n", num(b, sizeof b, d->compute.dense_ms_per_token));
	if (d->compute.kernel_overhead_us != 0)
		fprintf(f, "kernel_overhead_us = %s\n", num(b, sizeof b, d->compute.kernel_overhead_us));
	const char *lname[] = {"lut_weights_per_s", "dequant_weights_per_s", "gemv_bytes",
			       "gemv_bytes_per_s"};
	const double *lv[] = {d->compute.lut_weights_per_s, d->compute.dequant_weights_per_s,
			      d->compute.gemv_bytes, d->compute.gemv_bytes_per_s};
	const int ln[] = {d->compute.n_lut, d->compute.n_dequant, d->compute.n_gemv_bytes,
			  d->compute.n_gemv_rate};
	for (int k = 0; k < 4; k++) {
		if (!ln[k])
			continue;
		fprintf(f, "%s = ", lname[k]);
		for (int i = 0; i < ln[k]; i++)
			fprintf(f, "%s%s", i ? ", " : "", num(b, sizeof b, lv[k][i]));
		fputc('\n', f);
	}
	if (ferror(f))
		return err_set(err, ERR_IO, "write error");
	return 0;
}

int device_write_ini(const char *path, const struct device *d, struct lif_err *err)
{
	char tmp[4096];
	if (device_check(d, err))
		return err->code;
	if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
		return err_set(err, ERR_INVAL, "%s: path too long", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return err_set(err, ERR_IO, "%s: cannot create a temporary file: %s", path,
			       strerror(errno));
	FILE *f = fchmod(fd, 0644) ? NULL : fdopen(fd, "w");
	int rc = f ? device_write(f, d, err) : err_set(err, ERR_IO, "fdopen: %s", strerror(errno));
	if (!rc && (fflush(f) || fsync(fd)))
		rc = err_set(err, ERR_IO, "%s", strerror(errno));
	if (f ? fclose(f) : close(fd))
		rc = rc ? rc : err_set(err, ERR_IO, "%s", strerror(errno));
	if (!rc && rename(tmp, path))
		rc = err_set(err, ERR_IO, "cannot rename to %s: %s", path, strerror(errno));
	if (rc) {
		unlink(tmp);
		err_prefix(err, "%s", path);
	}
	return rc;
}
