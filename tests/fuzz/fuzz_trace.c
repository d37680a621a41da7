/* Fuzz target: a trace (HDF5, traces/FORMAT.md), every dataset loaded. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lif_err err = {0};
	trace_free(trace_load(fuzz_file(data, size, ".h5"),
			      TRACE_LOAD_MAGNITUDES | TRACE_LOAD_INPUTS, &err));
	fuzz_no_open_handles();
	return 0;
}
