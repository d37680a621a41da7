/* Fuzz target: a trace (HDF5, traces/FORMAT.md), every dataset loaded, read
 * from memory (fuzz_h5). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lif_err err = {0};
	trace_free(trace_load(fuzz_h5(data, size),
			      TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, &err));
	fuzz_h5_done();
	fuzz_no_open_handles();
	return 0;
}
