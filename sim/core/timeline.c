/* timeline: see sim/core/timeline.h. */
#include "sim/core/timeline.h"

#include <math.h>

double timeline_token_ns(int overlap, const double *io, const double *cpu, int L, int depth,
			 double tail)
{
	if (overlap != TIMELINE_PIPELINED) {
		double s = tail;
		for (int l = 0; l < L; l++)
			s += io[l] + cpu[l];
		return s;
	}
	/* cpu_start of the last `depth` layers, in a ring (depth <= L is all that
	 * matters: reads never wait for a layer before the first) */
	double ring[64];
	int d = depth < 1 ? 1 : depth > 64 ? 64 : depth;
	double io_end = 0, cpu_end = 0;
	for (int l = 0; l < L; l++) {
		double start = io_end;
		if (l >= d)
			start = fmax(start, ring[(l - d) % d]);
		io_end = start + io[l];
		double cs = fmax(cpu_end, io_end);
		ring[l % d] = cs;
		cpu_end = cs + cpu[l];
	}
	return cpu_end + tail;
}
