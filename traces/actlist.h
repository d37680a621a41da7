/*
 * actlist: the active neurons of one layer of a trace as lists per token
 * (CSR: ids[start[k] .. start[k+1]) are token k's active neurons, ascending),
 * the form co-activation and frequency statistics iterate over.
 */
#ifndef LIFSIM_ACTLIST_H
#define LIFSIM_ACTLIST_H

#include <stdint.h>

#include "traces/trace.h"

struct actlist {
	int64_t tokens;
	int64_t *start; /* (tokens + 1) */
	int32_t *ids;   /* (start[tokens]) */
};

/* Lists of the first `tokens` tokens of `layer` (tokens <= trace tokens).
 * Returns 0 or ERR_NOMEM; free with actlist_free either way. */
int actlist_build(const struct trace *t, int layer, int64_t tokens, struct actlist *a);
void actlist_free(struct actlist *a);

/* Activation count of each neuron (d_ffn) over the lists' tokens. */
void actlist_counts(const struct actlist *a, int d_ffn, int64_t *counts);

#endif
