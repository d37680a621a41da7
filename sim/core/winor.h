#ifndef LIFSIM_CORE_WINOR_H
#define LIFSIM_CORE_WINOR_H
/* A sliding-window OR over a stream of bit-set rows (the window of k
 * tokens' predicted sets), shared by the step-by-step reference (step.c)
 * and the packed pass (pass.c). */
#include <stdint.h>

/* The union of the last k rows of a stream of bit sets, in O(1) row
 * operations per row (amortized): the stream is cut into blocks of k rows;
 * a window is a suffix of the previous block (suffix ORs, computed once per
 * block) plus a prefix of the current one (a running OR). */
struct winor {
	int k, nw;
	int64_t pos;        /* rows pushed so far */
	uint64_t *block;    /* (k, nw) rows of the current block */
	uint64_t *suffix;   /* (k + 1, nw) suffix ORs of the previous block; row k is 0 */
	uint64_t *prefix;   /* (nw) OR of the current block so far */
};

/* Allocate the window for k rows (k = 0: every push gives the empty set)
 * of nw words each; 0 or ERR_NOMEM. */
int winor_init(struct winor *w, int k, int nw);
void winor_free(struct winor *w);
/* Push row q; u receives the OR of the last k rows (q included). */
void winor_push(struct winor *w, const uint64_t *q, uint64_t *u);

#endif
