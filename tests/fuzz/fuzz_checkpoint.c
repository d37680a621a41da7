/* Fuzz target: a Hugging Face checkpoint directory as `lifsim record` loads
 * it (config.json, model.safetensors or shards and their index;
 * traces/record/model.h), then run for three tokens (a prompt chunk of two,
 * then one decode step) with the trace's taps: whatever the loader accepts,
 * the engine must run on without reading or writing out of bounds.
 * Input: one flags byte (bit 0: keep half-precision weights as they are,
 * MODEL_HALF_WEIGHTS), then the files packed as fuzz_dir describes. */
#include "fuzz_common.h"
#include "traces/record/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct lif_err err = {0};
	struct model *m = model_open(fuzz_dir(data + 1, size - 1), 3, 1,
				     data[0] & 1 ? MODEL_HALF_WEIGHTS : 0, &err);
	if (!m)
		return 0;
	const struct model_config *c = model_get_config(m);
	size_t per_tok = (size_t)c->layers * ((size_t)c->d_model + (size_t)c->d_ffn);
	float *buf = malloc(2 * per_tok * sizeof *buf + 1);
	if (!buf)
		abort();
	struct model_tap tap = {buf, buf + 2 * (size_t)c->layers * c->d_model};
	int32_t ids[2] = {0, c->vocab - 1};
	model_forward(m, ids, 2, 0, &tap); /* model_batch(m) is 3 */
	model_forward(m, ids + 1, 1, 2, &tap);
	free(buf);
	model_free(m);
	return 0;
}
