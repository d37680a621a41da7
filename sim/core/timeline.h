/*
 * timeline: one token's layers on two resources, the flash reader and the
 * CPU (or GPU) that does the memory manager's work and the compute.
 *
 * overlap = none (the paper's accounting, and lifsim's until issue 14): the
 * parts run one after another, total = sum of I/O + memory + compute.
 *
 * overlap = pipelined: reads for layer l + 1 (chosen by a lookahead
 * predictor: the simulator uses the same predicted set, so it is an upper
 * bound on what overlap buys) run while layer l computes, at most `depth`
 * layers ahead (the bounded buffers: reads of layer l may start once layer
 * l - depth has started computing; depth = 1 is one layer's buffer). With
 * io[l] the flash time of layer l's reads and cpu[l] its compute and
 * memory-manager time:
 *   io_start[l]  = max(io_end[l-1], cpu_start[l-depth])   (0 for the first)
 *   io_end[l]    = io_start[l] + io[l]
 *   cpu_start[l] = max(cpu_end[l-1], io_end[l])           (layer l needs its rows)
 *   cpu_end[l]   = cpu_start[l] + cpu[l]
 *   total        = cpu_end[L-1] + tail
 * where tail is what runs after the last layer (head, embeddings, a
 * measured dense override, the memory manager's deletes). A token starts
 * with empty pipes: the next token's reads cannot start before its
 * predictor's input, this token's output, exists.
 *
 * So an I/O-bound token costs sum(io) + cpu[L-1] + tail, a compute-bound one
 * io[0] + sum(cpu) + tail, a balanced one (io = cpu = x) (L + 1) x + tail.
 * Pure: no clock, no I/O.
 */
#ifndef LIFSIM_TIMELINE_H
#define LIFSIM_TIMELINE_H

enum timeline_overlap { TIMELINE_NONE = 0, TIMELINE_PIPELINED = 1 };
#define TIMELINE_OVERLAP_CHOICES "none|pipelined"

/* One token's time in ns for L >= 1 layers; io and cpu have L entries >= 0,
 * depth >= 1. overlap = none: the plain sum. */
double timeline_token_ns(int overlap, const double *io, const double *cpu, int L, int depth,
			 double tail);

#endif
