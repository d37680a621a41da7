/*
 * synth: seeded synthetic activation traces with the structure of real ones.
 *
 * Each FFN neuron i of a layer has a latent pre-activation that evolves over
 * tokens; the neuron is active when it is above zero:
 *
 *   z_i(t) = mu_i + sqrt(rho) * g_G(i)(t) + sqrt(1 - rho) * e_i(t)
 *   e_i(t) = phi * e_i(t-1) + sqrt(1 - phi^2) * n_i(t)      n ~ N(0, 1)
 *   g_G(t) = phi * g_G(t-1) + sqrt(1 - phi^2) * m_G(t)      (one per group)
 *
 * so z_i is N(mu_i, 1) at every token (the AR processes start stationary),
 * P(active) = Phi(mu_i), and:
 *   - frequency: P(active) follows a power law over a random ranking of the
 *     neurons, p_i = c (rank_i + r0)^-alpha capped at p_max, with c solved so
 *     that the layer's mean equals 1 - sparsity of the model description;
 *   - co-activation: neurons in the same group (group_size, random members)
 *     share the factor g, with correlation rho;
 *   - persistence: phi near 1 keeps a neuron active (or near threshold) for
 *     several tokens, so s_agg(k) grows far slower than k times the per-token
 *     fraction, as windowing needs.
 * The near-threshold band, z in (-margin, +margin), is kept as magnitude codes
 * (traces/trace.h) so a modeled predictor's mistakes persist over tokens.
 *
 * Determinism: one xoshiro stream per layer is seeded from a gsl_rng seeded
 * with `seed`, before any parallel work: the same seed gives the same trace
 * for any thread count.
 */
#ifndef LIFSIM_SYNTH_H
#define LIFSIM_SYNTH_H

#include <stdint.h>

#include "models/llm.h"
#include "sim/base/conf.h"
#include "sim/base/err.h"
#include "traces/trace.h"

struct synth_params {
	int64_t tokens;
	int64_t seed;
	double phi;       /* per-token AR(1) coefficient of the latent (persistence) */
	double rho;       /* share of latent variance from the neuron's group factor */
	int group_size;   /* neurons per co-activation group */
	double alpha;     /* power-law exponent of activation frequency over rank */
	double r0;        /* rank offset of the power law (flattens the head) */
	double p_max;     /* cap on any neuron's activation probability */
	double margin;    /* half-width of the stored near-threshold band, in latent sd */
	int magnitudes;   /* store the band (needed by the modeled predictor) */
};

/* Option table: section [synth]; drives defaults, --help and the generator
 * string stored in the trace. */
extern const struct conf_opt synth_opts[];

/* Fill p with the documented defaults. */
void synth_defaults(struct synth_params *p);

/* Progress callback: done and total token counts. */
typedef void (*synth_progress_fn)(void *ctx, long long done, long long total);

/* Generate a trace for model m into memory (layer-major, as trace_load
 * gives). Caller frees with trace_free. */
struct trace *synth_generate(const struct llm_desc *m, const struct synth_params *p,
			     int threads, struct lif_err *err);

/* Generate and write a trace file at path (atomically). */
int synth_write(const struct llm_desc *m, const struct synth_params *p, const char *path,
		int threads, synth_progress_fn progress, void *progress_ctx, struct lif_err *err);

#endif
