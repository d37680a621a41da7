#include "sim/core/winor.h"
#include "sim/base/err.h"

#include <stdlib.h>
#include <string.h>

void winor_free(struct winor *w)
{
	free(w->block), free(w->suffix), free(w->prefix);
}

int winor_init(struct winor *w, int k, int nw)
{
	memset(w, 0, sizeof *w);
	w->k = k, w->nw = nw;
	w->block = calloc((size_t)(k > 0 ? k : 1) * nw, sizeof *w->block);
	w->suffix = calloc((size_t)(k + 1) * nw, sizeof *w->suffix);
	w->prefix = calloc(nw, sizeof *w->prefix);
	return w->block && w->suffix && w->prefix ? 0 : ERR_NOMEM;
}

void winor_push(struct winor *w, const uint64_t *q, uint64_t *u)
{
	const int k = w->k, nw = w->nw;
	if (k == 0) {
		memset(u, 0, nw * sizeof *u);
		return;
	}
	int i = (int)(w->pos % k); /* index in the current block */
	memcpy(w->block + (size_t)i * nw, q, nw * sizeof *q);
	const uint64_t *suf = w->suffix + (size_t)(i + 1) * nw;
	for (int j = 0; j < nw; j++) {
		w->prefix[j] |= q[j];
		u[j] = suf[j] | w->prefix[j];
	}
	w->pos++;
	if (i == k - 1) { /* block complete: its suffix ORs serve the next block */
		memset(w->suffix + (size_t)k * nw, 0, nw * sizeof *w->suffix);
		for (int r = k - 1; r >= 0; r--)
			for (int j = 0; j < nw; j++)
				w->suffix[(size_t)r * nw + j] =
					w->block[(size_t)r * nw + j] | w->suffix[(size_t)(r + 1) * nw + j];
		memset(w->prefix, 0, nw * sizeof *w->prefix);
	}
}
