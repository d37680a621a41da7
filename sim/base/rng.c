#include "sim/base/rng.h"

#include <gsl/gsl_cdf.h>

void rng_stream_seed(struct rng_stream *st, gsl_rng *parent)
{
	/* 16 bits per draw: every gsl_rng type has at least that range */
	for (int i = 0; i < 4; i++) {
		st->s[i] = 0;
		for (int k = 0; k < 4; k++)
			st->s[i] = st->s[i] << 16 | gsl_rng_uniform_int(parent, 65536);
	}
	if (!(st->s[0] | st->s[1] | st->s[2] | st->s[3]))
		st->s[0] = 0x9E3779B97F4A7C15ull; /* xoshiro must not be all zero */
}

void rng_normal_table_fill(struct rng_normal_table *t)
{
	for (unsigned i = 0; i < RNG_NORMAL_N; i++)
		t->z[i] = (float)gsl_cdf_ugaussian_Pinv((i + 0.5) / RNG_NORMAL_N);
}
