#include "models/dram.h"

#include <math.h>

static int bad(const char **key, const char *name, struct lif_err *err, const char *what,
	       double v)
{
	*key = name;
	return err_set(err, ERR_RANGE, "[dram] %s: %s (got %g)", name, what, v);
}

int dram_check(const struct dram_model *m, const char **key, struct lif_err *err)
{
	if (!(m->copy_bytes_per_s > 0) || !isfinite(m->copy_bytes_per_s))
		return bad(key, "copy_bytes_per_s", err, "must be a rate > 0", m->copy_bytes_per_s);
	if (!(m->per_op_ns >= 0) || !isfinite(m->per_op_ns))
		return bad(key, "per_op_ns", err, "must be a time >= 0", m->per_op_ns);
	if (!(m->h2d_bytes_per_s >= 0) || !isfinite(m->h2d_bytes_per_s))
		return bad(key, "h2d_bytes_per_s", err, "must be a rate >= 0 (0 = CPU backend)",
			   m->h2d_bytes_per_s);
	if (!(m->convert_bytes_per_s >= 0) || !isfinite(m->convert_bytes_per_s))
		return bad(key, "convert_bytes_per_s", err, "must be a rate >= 0 (0 = not charged)",
			   m->convert_bytes_per_s);
	if (m->vram_bytes < 0)
		return bad(key, "vram_bytes", err, "must be a size >= 0", (double)m->vram_bytes);
	if (dram_is_gpu(m) && m->vram_bytes == 0)
		return bad(key, "vram_bytes", err,
			   "a GPU backend (h2d_bytes_per_s > 0) needs its VRAM capacity, e.g. 24GiB",
			   (double)m->vram_bytes);
	if (!dram_is_gpu(m) && m->vram_bytes > 0)
		return bad(key, "vram_bytes", err,
			   "is for a GPU backend; set h2d_bytes_per_s too, or leave vram_bytes out",
			   (double)m->vram_bytes);
	return 0;
}

int dram_is_gpu(const struct dram_model *m)
{
	return m->h2d_bytes_per_s > 0;
}

double dram_time_ns(const struct dram_model *m, double bytes_copied, double ops, double h2d_bytes)
{
	double t = 0;
	if (bytes_copied > 0)
		t += bytes_copied / m->copy_bytes_per_s * 1e9;
	if (ops > 0)
		t += ops * m->per_op_ns;
	if (h2d_bytes > 0 && dram_is_gpu(m))
		t += h2d_bytes / m->h2d_bytes_per_s * 1e9;
	return t;
}

double dram_convert_ns(const struct dram_model *m, double stored_bytes, int converts)
{
	if (!converts || !(m->convert_bytes_per_s > 0) || !(stored_bytes > 0))
		return 0;
	return stored_bytes / m->convert_bytes_per_s * 1e9;
}
