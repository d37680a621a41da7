/*
 * memman: the paper's DRAM memory manager for one layer (Alizadeh et al.,
 * arXiv 2312.11514, sec. 3.3): a preallocated matrix of rows, one per
 * resident neuron (a row holds the neuron's bundle: up column, down row),
 * with `num_used` rows in use and a map between neurons and rows.
 *   insert: append the new neuron's row at num_used (read from flash
 *           straight into place; no copy);
 *   delete: the matrix stays dense: the deleted rows that are not at the end
 *           are filled by copying the last used rows into the holes, so a
 *           delete costs one row copy unless the row was already at the end.
 * Pure bookkeeping: the simulator counts the copies, replay performs them on
 * real memory in the order given (moves[i]: copy row src to row dst).
 */
#ifndef LIFSIM_MEMMAN_H
#define LIFSIM_MEMMAN_H

#include <stdint.h>

#include "sim/base/err.h"

struct memman_move {
	int32_t src, dst; /* rows */
};

struct memman {
	int d_ffn;
	int32_t used;        /* num_used */
	int32_t peak;        /* largest num_used so far: the preallocation needed (Req_i) */
	int32_t *row_neuron; /* (d_ffn) neuron in each used row */
	int32_t *neuron_row; /* (d_ffn) row of each neuron, -1 if not resident */
	uint8_t *dying;      /* (d_ffn) scratch for deletes */
};

struct memman *memman_new(int d_ffn, struct lif_err *err);
void memman_free(struct memman *m);

/* Append neuron (not resident) as the last row; returns its row. */
int32_t memman_insert(struct memman *m, int32_t neuron);

/* Delete the n given resident neurons; the copies that keep the matrix dense
 * go to moves (room for n) and their count is returned. */
int memman_delete(struct memman *m, const int32_t *neurons, int n, struct memman_move *moves);

#endif
