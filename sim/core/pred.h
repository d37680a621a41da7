/*
 * pred: which FFN neurons a token loads — the predictor, one const vtable per
 * mode (ARCHITECTURE.md, "Decisions the simulator models"):
 *   none     every neuron (dense; the naive baselines);
 *   oracle   exactly the trace's active set;
 *   modeled  the active set with a target recall and false-positive rate,
 *            whose mistakes are the neurons nearest the threshold (the
 *            trace's band: level 3, then 2, then 1, ties broken by a fixed
 *            per-neuron priority drawn from `seed`). Since the band evolves
 *            smoothly, a neuron flagged by mistake now is likely flagged
 *            again next token, as a real low-rank predictor's mistakes are;
 *   random   the same rates with mistakes drawn independently per token (the
 *            naive error model; shows why correlated errors matter);
 *   lowrank  trained low-rank predictors (traces/predictor/predictor.h) applied to the
 *            trace's FFN inputs; layers without one fall back to oracle.
 * Pure: no I/O.
 */
#ifndef LIFSIM_PRED_H
#define LIFSIM_PRED_H

#include <stdint.h>

#include "sim/base/err.h"
#include "traces/trace.h"

enum pred_kind { PRED_NONE, PRED_ORACLE, PRED_MODELED, PRED_RANDOM, PRED_LOWRANK };

struct predictor;

struct pred_params {
	int kind;       /* enum pred_kind */
	double recall;  /* modeled/random: fraction of active neurons predicted */
	double fp_rate; /* modeled/random: fraction of inactive neurons predicted */
	uint64_t seed;  /* modeled/random: priorities and draws */
	const struct predictor *lowrank; /* lowrank: the trained predictors (borrowed) */
};

/* What a predictor achieved over the whole trace. */
struct pred_quality {
	double recall;          /* predicted & active / active */
	double fp_rate;         /* predicted & inactive / inactive */
	double predicted_frac;  /* predicted / all neurons */
	int64_t fp_shortfall;   /* false positives wanted beyond the band (drawn outside it) */
};

struct pred_ops {
	const char *name;
	int kind;
	int trace_sets; /* predicts the trace's active sets (shared, not copied) */
	int has_model;  /* a predictor model of predictor_rank sits in DRAM */
	int has_rates;  /* draws mistakes at a recall and fp_rate from a seed */
	int trained;    /* applies trained predictors (predictor_file) to the trace's
			 * FFN inputs */
	int needs_band; /* errs on the trace's near-threshold band */
	/* Predicted sets of layer `layer`, all tokens: out (tokens, row_bytes). */
	int (*predict_layer)(const struct trace *t, const struct pred_params *p, int layer,
			     uint8_t *out, int64_t *fp_shortfall, struct lif_err *err);
};

extern const struct pred_ops *const pred_modes[];
const struct pred_ops *pred_find(const char *name);
const struct pred_ops *pred_by_kind(int kind);
/* The name of pred_modes[i], or NULL past the last: the INI choices (a
 * conf_names_fn). */
const char *pred_choice(int i);

/* Predicted sets of every layer (layers, tokens, row_bytes), layer-major like
 * trace->bits; the caller frees. q (may be NULL) receives the achieved
 * quality. Deterministic for any thread count. */
uint8_t *pred_sets(const struct trace *t, const struct pred_params *p, int threads,
		   struct pred_quality *q, struct lif_err *err);

/* The fixed priority of neuron i of layer `layer` under seed: among the
 * neurons of one band level, the modeled predictor's mistakes are those of
 * highest priority (ties broken by the higher id). */
uint32_t pred_priority(uint64_t seed, int layer, int i);

/* Count bits with AVX-512 when the CPU has it (on = 1, the default) or word
 * by word (on = 0): the tests compare the two. */
void pred_use_simd(int on);

/* What predicted sets (layers, tokens, row_bytes) achieve on t (recall,
 * fp_rate, predicted_frac; fp_shortfall is left as is). */
void pred_measure(const struct trace *t, const uint8_t *sets, struct pred_quality *q);

/* The same by parts (a trace streamed by blocks): add n bytes of active bits
 * and predicted sets to the counts c (active, true positive, false positive,
 * predicted; integers, so any split gives the same sums), then turn the
 * counts of the whole trace t (its meta) into q. */
void pred_count(const uint8_t *bits, const uint8_t *sets, size_t n, int64_t c[4]);
void pred_quality_of(const struct trace *t, const int64_t c[4], struct pred_quality *q);

#endif
