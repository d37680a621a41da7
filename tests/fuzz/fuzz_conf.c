/* Fuzz target: the INI reader (experiment, model and device files share it). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_doc *doc = NULL;
	struct lif_err err = {0};
	if (!conf_doc_read(fuzz_file(data, size, ".ini"), &doc, &err))
		conf_doc_free(doc);
	return 0;
}
