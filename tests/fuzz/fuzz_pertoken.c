/* Fuzz target: a sweep point's per-token detail (HDF5, sim/sweep/pertoken.h),
 * read and printed as lifsim tokens does. */
#include "fuzz_common.h"
#include "sim/sweep/pertoken.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	if (!sink && !(sink = fopen("/dev/null", "w")))
		abort();
	struct lif_err err = {0};
	pertoken_print_csv(fuzz_h5(data, size), sink, &err);
	fuzz_h5_done();
	fuzz_no_open_handles();
	return 0;
}
