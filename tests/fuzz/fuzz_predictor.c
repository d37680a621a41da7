/* Fuzz target: a low-rank predictor file (HDF5, traces/predictor/PREDICTOR.md). */
#include "fuzz_common.h"
#include "traces/predictor/predictor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lif_err err = {0};
	predictor_free(predictor_load(fuzz_h5(data, size), &err));
	fuzz_h5_done();
	fuzz_no_open_handles();
	return 0;
}
