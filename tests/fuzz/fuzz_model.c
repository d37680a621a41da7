/* Fuzz target: a model description INI (models/llms/NAME.ini). */
#include "fuzz_common.h"
#include "models/llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct llm_desc d;
	struct lif_err err = {0};
	llm_load(fuzz_file(data, size, ".ini"), &d, &err);
	return 0;
}
