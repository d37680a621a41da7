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
 *
 * The reader's CPU work (issue 14): place[l], the conversion of layer l's
 * loaded rows from the stored to the held dtype, runs on the reader thread
 * after its reads, before layer l may compute:
 *   rd_end[l]    = io_end[l] + place[l]         (the reader's next reads
 *                                                 start after it)
 *   cpu_start[l] = max(cpu_end[l-1], rd_end[l])
 * and overlap = none adds it to the sum. The CPU is a resource: when the
 * compute's kernels take every core (`contended`, models/compute.h's
 * compute_cpu_contended), a reader conversion that runs while layer l
 * computes takes a core from a kernel split statically over all cores, and
 * the kernel finishes at its slowest thread's pace: layer l's compute
 * stalls for the conversion's length (the compute lane lengthens by every
 * reader CPU interval inside it). With a free core it runs beside the
 * compute. So a compute-bound token with conversions p costs io[0] +
 * place[0] + sum(cpu) + sum(place[1..]) + tail when contended, io[0] +
 * place[0] + sum(cpu) + tail when not.
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

/* The same with the reader's CPU work place (L entries >= 0, or NULL: none)
 * and the CPU contended (1) or with a core free for the reader (0). */
double timeline_token_cpu_ns(int overlap, const double *io, const double *place, const double *cpu,
			     int L, int depth, double tail, int contended);

#endif
