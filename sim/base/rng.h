/*
 * rng: fast seeded random streams for bulk generation.
 *
 * Every random number in lifsim descends from a gsl_rng seeded by the
 * experiment. Bulk generators (synthetic traces draw ~10^9 normals) derive
 * one xoshiro256** stream per independent unit of work (a layer, a sweep
 * point) from that gsl_rng, in a fixed order before any parallel section, so
 * results do not depend on the number of threads. Normals come from a
 * 4096-entry inverse-CDF table (quantile midpoints, |z| <= 3.54; it fits in
 * L1), 5 per 64-bit draw: plenty for activation statistics, whose latent
 * steps are sums of many such draws, and ~10x faster than exact sampling.
 */
#ifndef LIFSIM_RNG_H
#define LIFSIM_RNG_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

struct rng_stream {
	uint64_t s[4];
};

/* Seed a stream from the parent generator (consumes 16 draws of it). */
void rng_stream_seed(struct rng_stream *st, gsl_rng *parent);

static inline uint64_t rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** next 64 bits. */
static inline uint64_t rng_next(struct rng_stream *st)
{
	uint64_t *s = st->s;
	uint64_t r = rng_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rng_rotl(s[3], 45);
	return r;
}

/* Uniform double in [0, 1). */
static inline double rng_uniform(struct rng_stream *st)
{
	return (double)(rng_next(st) >> 11) * 0x1.0p-53;
}

/* The normal quantile table: RNG_NORMAL_N floats. */
#define RNG_NORMAL_BITS 12
#define RNG_NORMAL_N (1u << RNG_NORMAL_BITS)

struct rng_normal_table {
	float z[RNG_NORMAL_N];
};

/* Fill the table (allocate it on the heap: 256 KiB). */
void rng_normal_table_fill(struct rng_normal_table *t);

#endif
