/* Fuzz target: a device profile INI (models/devices/NAME.ini). */
#include "fuzz_common.h"
#include "models/device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct device d;
	struct lif_err err = {0};
	device_load(fuzz_file(data, size, ".ini"), &d, &err);
	return 0;
}
