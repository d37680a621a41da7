/*
 * tokenizer: text <-> token ids for the recorder.
 *
 * Two kinds:
 *  - byte: ids are the UTF-8 bytes of the text (config.json has
 *    "lifsim_tokenizer": "byte"; the project's own small model uses it);
 *  - GPT-2 byte-level BPE, from vocab.json + merges.txt or from a
 *    tokenizer.json whose model is BPE with a ByteLevel pre-tokenizer (OPT,
 *    GPT-2). Text is split with GPT-2's pre-tokenizer pattern
 *    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *    where, without a Unicode database, every non-ASCII code point counts as a
 *    letter (\p{L}); ASCII text is split exactly as GPT-2 does. Each piece's
 *    bytes are mapped to GPT-2's printable byte alphabet and merged by rank.
 *    Llama-3-style tokenizer.json files load, but their own split pattern is
 *    not reproduced (GPT-2's is used). No BOS token is added: put one in
 *    --tokens-file if the model wants it.
 */
#ifndef LIFSIM_TOKENIZER_H
#define LIFSIM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "sim/base/err.h"

struct tokenizer;

/* The byte tokenizer (needs vocab >= 256). */
struct tokenizer *tok_new_byte(struct lif_err *err);

/* The tokenizer found in a checkpoint directory: byte if `byte` is set, else
 * tokenizer.json or vocab.json + merges.txt. NULL with err naming what is
 * missing or malformed. */
struct tokenizer *tok_open(const char *dir, int byte, struct lif_err *err);
void tok_free(struct tokenizer *t);

/* Encode text into a new array of ids (*ids, caller frees); returns the
 * count or a negative ERR_*. */
int tok_encode(const struct tokenizer *t, const char *text, int32_t **ids, struct lif_err *err);

/* Append the text of token `id` to buf (len bytes used, cap total); keeps
 * buf NUL-terminated and truncates silently at cap. Unknown ids append
 * nothing. */
void tok_decode_append(const struct tokenizer *t, int32_t id, char *buf, size_t *len, size_t cap);

/* Largest id the tokenizer can produce + 1. */
int tok_vocab_size(const struct tokenizer *t);

#endif
