/* fuzz_common: what every libFuzzer target shares: the library's start-up
 * and the input written to a file (lifsim's parsers read files). */
#ifndef LIFSIM_FUZZ_COMMON_H
#define LIFSIM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <hdf5.h>

#include "sim/base/conf.h"
#include "traces/trace.h"

/* A file holding data (one per process, rewritten on each input). */
static const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
	static char path[256];
	static int ready;
	if (!ready) {
		snprintf(path, sizeof path, "/tmp/lifsim-fuzz-%ld%s", (long)getpid(), suffix);
		trace_init();
		conf_init();
		ready = 1;
	}
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	return path;
}

/* Every HDF5 identifier a reader opened is closed again, whatever the input
 * (a handle lifsim leaves open is a crash here, not a leak LeakSanitizer
 * could miss: libhdf5 keeps open identifiers reachable). */
static inline void fuzz_no_open_handles(void)
{
	if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0)
		abort();
}

#endif
