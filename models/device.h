/*
 * device: a hardware profile for the cost model (models/devices/NAME.ini).
 *
 * A profile is an INI file, schema "lifsim-device" version 1, with four
 * sections (`lifsim device --help` prints every key):
 *   [device]   schema = lifsim-device, version = 1, optional name (default:
 *              the file's base name without .ini);
 *   [flash]    model = parametric | tabulated, and the keys of the form(s)
 *              given (see models/flash.h for the models):
 *                parametric: t0_us, xfer_bytes_per_s, iops_max,
 *                            max_bytes_per_s, softmin_p, alignment_bytes;
 *                tabulated:  chunk_bytes = 4KiB, 8KiB, ...   (increasing)
 *                            parallelism = 1, 2, 4, ...      (increasing)
 *                            mb_per_s = row | row | ...      one row per chunk
 *                              size, one comma-separated value per
 *                              parallelism, in MB/s (10^6 bytes/s); a flat
 *                              row-major list without '|' is accepted too;
 *              a profile may carry both forms (a table and a parametric
 *              fit); every form present is checked, `model` picks the one
 *              used (so NAME-parametric.ini can `include = NAME.ini` and
 *              override `model`);
 *   [dram]     copy_bytes_per_s, per_op_ns, h2d_bytes_per_s (0 = CPU),
 *              vram_bytes (the GPU's memory; required with h2d_bytes_per_s),
 *              optional convert_bytes_per_s (the stored-to-held dtype
 *              conversion of loaded rows, models/dram.h; 0 = not charged);
 *   [compute]  flops_per_s, mem_bytes_per_s, dense_ms_per_token (0 =
 *              roofline); optional lut_weights_per_s and
 *              dequant_weights_per_s, four measured rates each (bits 1..4,
 *              models/compute.h), written by `lifsim bench-gemv --profile`;
 *              optional kernel_overhead_us (per-kernel dispatch, a GPU's) and
 *              the measured GEMV table gemv_bytes, gemv_bytes_per_s,
 *              and cores, threads (the CPU the pipelined reader shares with
 *              the kernels; 0 = not given, all cores), written by `lifsim
 *              calibrate --compute`
 *              (models/compute.h: the per-operation model).
 * Includes and ${VAR} work as everywhere (sim/base/conf.h). Every error names
 * the file, the line and the key: "FILE:LINE: [section] key: problem".
 *
 * struct device is a plain value with fixed-size arrays: copy it freely (the
 * sweep runner copies one per point).
 */
#ifndef LIFSIM_DEVICE_H
#define LIFSIM_DEVICE_H

#include <stdio.h>

#include "models/compute.h"
#include "models/dram.h"
#include "models/flash.h"
#include "sim/base/conf.h"
#include "sim/base/err.h"

#define DEVICE_SCHEMA "lifsim-device"
#define DEVICE_SCHEMA_VERSION 1

struct device {
	char name[64];
	struct flash_model flash;
	struct dram_model dram;
	struct compute_model compute;
};

/* The option table of the INI format (for --help). */
extern const struct conf_opt device_opts[];

/* Load and check a profile. *out is written only on success. */
int device_load(const char *path, struct device *out, struct lif_err *err);

/* Check a device built in memory (e.g. by calibrate): the flash form in use,
 * any other form that is filled, DRAM and compute. Messages name the key. */
int device_check(const struct device *d, struct lif_err *err);

/* Write d as a profile that device_load reads back to the same value. */
int device_write(FILE *f, const struct device *d, struct lif_err *err);

/* device_write to PATH atomically (a temporary file in the same directory,
 * then rename); on failure PATH is untouched. */
int device_write_ini(const char *path, const struct device *d, struct lif_err *err);

#endif
