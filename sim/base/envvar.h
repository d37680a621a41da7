/*
 * envvar: lifsim's own environment variables (lifsim(1), ENVIRONMENT).
 *
 * main() checks every one that is set before a verb runs, so a bad value is
 * a usage error naming the variable, never a silent default deep inside a
 * sweep. The getters parse the same way and return the default when the
 * variable is unset (or, in library code that runs without main's check,
 * invalid).
 */
#ifndef LIFSIM_ENVVAR_H
#define LIFSIM_ENVVAR_H
#include <stdint.h>
#include "sim/base/err.h"

/* 0 when every set LIFSIM_* variable lifsim reads has a valid value; else
 * ERR_INVAL with "LIFSIM_X='value': problem" in err. */
int envvar_check(struct lif_err *err);
/* LIFSIM_STREAM_BLOCK: tokens per block of a streamed trace (>= 1); 0 when
 * unset. */
int64_t envvar_stream_block(void);
/* LIFSIM_MEM_LIMIT: bytes (conf_parse_bytes' forms, >= 1) of memory lifsim
 * may claim; 0 when unset. */
uint64_t envvar_mem_limit(void);
/* LIFSIM_HDF5_TIME_LIMIT: seconds, 0.01 to 86400; 30 when unset. */
double envvar_hdf5_time_limit(void);
#define ENVVAR_HDF5_TIME_MIN 0.01
#define ENVVAR_HDF5_TIME_MAX 86400.0
#define ENVVAR_HDF5_TIME_DEFAULT 30.0

#endif
