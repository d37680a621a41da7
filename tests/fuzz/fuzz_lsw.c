/* Fuzz target: a weight file's header and tables (.lsw, sim/real/wfile.h),
 * opened and checked as replay does before reading any slot. */
#include "fuzz_common.h"
#include "sim/real/wfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lif_err err = {0};
	wfile_close(wfile_open(fuzz_file(data, size, ".lsw"), &err));
	return 0;
}
