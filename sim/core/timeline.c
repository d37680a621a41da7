/* timeline: see sim/core/timeline.h. */
#include "sim/core/timeline.h"

#include <math.h>
#include <stddef.h>

#define RING 64

double timeline_token_ns(int overlap, const double *io, const double *cpu, int L, int depth,
			 double tail)
{
	return timeline_token_cpu_ns(overlap, io, NULL, cpu, L, depth, tail, 0);
}

double timeline_token_cpu_ns(int overlap, const double *io, const double *place, const double *cpu,
			     int L, int depth, double tail, int contended)
{
	if (overlap != TIMELINE_PIPELINED) {
		double s = tail;
		for (int l = 0; l < L; l++)
			s += io[l] + (place ? place[l] : 0) + cpu[l];
		return s;
	}
	/* cpu_start of the last `depth` layers and the reader's conversion
	 * intervals [ps, pe) of the layers it has run ahead, in rings (depth <= L
	 * is all that matters: reads never wait for a layer before the first) */
	double cs_ring[RING], ps[RING], pe[RING];
	int d = depth < 1 ? 1 : depth > RING - 1 ? RING - 1 : depth;
	double rd_end = 0, cpu_end = 0;
	int next = 0; /* the reader's next layer */
	for (int l = 0; l < L; l++) {
		/* the reader runs up to layer l + d: layer j's reads wait for layer
		 * j - d's compute to start, known once layer l (>= j - d) starts;
		 * first up to l itself */
		for (; next <= l; next++) {
			double start = rd_end;
			if (next >= d)
				start = fmax(start, cs_ring[(next - d) % RING]);
			ps[next % RING] = start + io[next];
			rd_end = pe[next % RING] = ps[next % RING] + (place ? place[next] : 0);
		}
		double cs = fmax(cpu_end, pe[l % RING]);
		cs_ring[l % RING] = cs;
		for (; next < L && next <= l + d; next++) {
			double start = next >= d ? fmax(rd_end, cs_ring[(next - d) % RING]) : rd_end;
			ps[next % RING] = start + io[next];
			rd_end = pe[next % RING] = ps[next % RING] + (place ? place[next] : 0);
		}
		double t = cs, rem = cpu[l];
		/* contended: layer l's compute stalls during every reader conversion
		 * that begins before it would end (in order; a stall pushes the end) */
		for (int j = l + 1; contended && place && j < next; j++) {
			double a = ps[j % RING], b = pe[j % RING];
			if (!(b > a) || a >= t + rem)
				continue;
			if (a > t)
				rem -= a - t, t = a;
			t = fmax(t, b);
		}
		cpu_end = t + rem;
	}
	return cpu_end + tail;
}
