/* Fuzz target: a low-rank predictor file (HDF5, traces/predictor/PREDICTOR.md). */
#include "fuzz_common.h"
#include "traces/predictor/predictor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lif_err err = {0};
	predictor_free(predictor_load(fuzz_file(data, size, ".h5"), &err));
	fuzz_no_open_handles();
	return 0;
}
