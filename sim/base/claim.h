/*
 * claim: sizes read from files are claims until checked.
 *
 * Every dimension a file states (tokens, layers, neurons, tensor shapes,
 * header lengths) is bounded by its reader, checked against what the file
 * actually stores, and multiplied here with overflow checks before anything
 * is allocated. claim_memory() then compares what a command will hold in
 * memory with what the machine can give it, so a small hostile file ends in
 * a clear message ("FILE: claims ...: needs X GiB, Y GiB available") rather
 * than an overflowed buffer or the OOM killer.
 */
#ifndef LIFSIM_CLAIM_H
#define LIFSIM_CLAIM_H

#include <stddef.h>
#include <stdint.h>

#include "sim/base/err.h"

/* *out = a * b (and * c); return -1 on overflow of size_t (out untouched). */
int claim_mul(size_t *out, size_t a, size_t b);
int claim_mul3(size_t *out, size_t a, size_t b, size_t c);
/* *acc += a, -1 on overflow. */
int claim_add(size_t *acc, size_t a);

/* Bytes of memory the process can use: the least of MemAvailable
 * (/proc/meminfo, else physical pages), the cgroup v2 memory.max minus
 * memory.current, and the LIFSIM_MEM_LIMIT environment variable (bytes, with
 * the conf byte suffixes: 512MiB, 8GB), when set. */
uint64_t claim_memory_available(void);

/* ERR_NOMEM "PATH: WHAT needs N GiB of memory, M GiB available" when
 * need_bytes exceeds what is available; 0 otherwise. */
int claim_memory(const char *path, const char *what, uint64_t need_bytes, struct lif_err *err);

/* The byte count as a short human string ("1.5 GiB", "512 KiB", "12 B"). */
void claim_format_bytes(char *buf, size_t cap, uint64_t bytes);

/* 0 when path is a regular file (following links); otherwise ERR_IO with
 * "PATH: cannot open: ..." or ERR_INVAL "PATH: is a directory, not a file" /
 * "is not a regular file". */
int claim_regular_file(const char *path, struct lif_err *err);

#endif
