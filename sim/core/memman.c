#include "sim/core/memman.h"

#include <stdlib.h>

struct memman *memman_new(int d_ffn, struct lif_err *err)
{
	struct memman *m = calloc(1, sizeof *m);
	if (m) {
		m->d_ffn = d_ffn;
		m->row_neuron = malloc(d_ffn * sizeof *m->row_neuron);
		m->neuron_row = malloc(d_ffn * sizeof *m->neuron_row);
		m->dying = calloc(d_ffn, 1);
	}
	if (!m || !m->row_neuron || !m->neuron_row || !m->dying) {
		memman_free(m);
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	for (int i = 0; i < d_ffn; i++)
		m->neuron_row[i] = -1;
	return m;
}

void memman_free(struct memman *m)
{
	if (!m)
		return;
	free(m->row_neuron);
	free(m->neuron_row);
	free(m->dying);
	free(m);
}

int32_t memman_insert(struct memman *m, int32_t neuron)
{
	int32_t r = m->used++;
	m->row_neuron[r] = neuron;
	m->neuron_row[neuron] = r;
	if (m->used > m->peak)
		m->peak = m->used;
	return r;
}

int memman_delete(struct memman *m, const int32_t *neurons, int n, struct memman_move *moves)
{
	int nm = 0;
	for (int k = 0; k < n; k++)
		m->dying[m->neuron_row[neurons[k]]] = 1;
	int32_t keep = m->used - n; /* rows [0, keep) stay */
	int32_t last = m->used - 1;
	for (int k = 0; k < n; k++) {
		int32_t hole = m->neuron_row[neurons[k]];
		m->neuron_row[neurons[k]] = -1;
		if (hole >= keep)
			continue; /* at the end: truncated, nothing to copy */
		while (m->dying[last])
			last--;
		/* copy the last used live row into the hole */
		int32_t moved = m->row_neuron[last];
		m->row_neuron[hole] = moved;
		m->neuron_row[moved] = hole;
		m->dying[last] = 1; /* its old slot is now free */
		moves[nm].src = last, moves[nm++].dst = hole;
		last--;
	}
	for (int32_t r = keep; r < m->used; r++)
		m->dying[r] = 0;
	for (int k = 0; k < nm; k++) /* filled holes are live again */
		m->dying[moves[k].dst] = 0;
	m->used = keep;
	return nm;
}
