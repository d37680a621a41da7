#include "traces/actlist.h"

#include <stdlib.h>
#include <string.h>

int actlist_build(const struct trace *t, int layer, int64_t tokens, struct actlist *a)
{
	int64_t total = 0;
	memset(a, 0, sizeof *a);
	a->tokens = tokens;
	a->start = malloc((tokens + 1) * sizeof *a->start);
	for (int64_t k = 0; a->start && k < tokens; k++) {
		const uint8_t *row = trace_active(t, layer, k);
		for (int j = 0; j < t->row_bytes; j++)
			total += __builtin_popcount(row[j]);
	}
	a->ids = malloc((total + 1) * sizeof *a->ids);
	if (!a->start || !a->ids)
		return ERR_NOMEM;
	total = 0;
	for (int64_t k = 0; k < tokens; k++) {
		const uint8_t *row = trace_active(t, layer, k);
		a->start[k] = total;
		for (int j = 0; j < t->row_bytes; j++)
			for (unsigned b = row[j]; b; b &= b - 1)
				a->ids[total++] = j * 8 + __builtin_ctz(b);
	}
	a->start[tokens] = total;
	return 0;
}

void actlist_free(struct actlist *a)
{
	free(a->start);
	free(a->ids);
	a->start = NULL;
	a->ids = NULL;
}

void actlist_counts(const struct actlist *a, int d_ffn, int64_t *counts)
{
	memset(counts, 0, d_ffn * sizeof *counts);
	for (int64_t p = 0; p < a->start[a->tokens]; p++)
		counts[a->ids[p]]++;
}
