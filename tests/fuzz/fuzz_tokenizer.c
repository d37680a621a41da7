/* Fuzz target: a checkpoint's tokenizer files as `lifsim record --prompt-file`
 * reads them (tokenizer.json, or vocab.json and merges.txt;
 * traces/record/tokenizer.h), then a text encoded and every id it gave, and
 * the first ids of the vocabulary, decoded.
 * Input: the files packed as fuzz_dir describes; an entry named prompt.txt
 * is the text (else a fixed English sentence). */
#include "fuzz_common.h"
#include "sim/base/util.h"
#include "traces/record/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lif_err err = {0};
	const char *dir = fuzz_dir(data, size);
	struct tokenizer *t = tok_open(dir, 0, &err);
	if (!t)
		return 0;
	char path[600], out[4096];
	snprintf(path, sizeof path, "%s/prompt.txt", dir);
	struct lif_err e2 = {0};
	char *text = access(path, F_OK) ? NULL : util_read_file(path, 1 << 20, NULL, &e2);
	int32_t *ids = NULL;
	int n = tok_encode(t, text ? text : "The dog's bark isn't loud,  but  \t12345 caf\xc3\xa9!\n",
			   &ids, &err);
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i < n; i++)
		tok_decode_append(t, ids[i], out, &len, sizeof out);
	for (int32_t id = -1; id < 300; id++)
		tok_decode_append(t, id, out, &len, sizeof out);
	if (tok_vocab_size(t) < 0)
		abort();
	free(ids);
	free(text);
	tok_free(t);
	return 0;
}
