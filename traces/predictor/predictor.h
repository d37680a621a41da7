/*
 * predictor: trained low-rank activation predictors, HDF5 schema
 * "lifsim-predictor" v1 (traces/predictor/PREDICTOR.md is the normative description).
 *
 * One predictor per FFN layer, as in "LLM in a flash" (arXiv 2312.11514,
 * section 3.1): from the layer's FFN input x (d_model) it predicts which of
 * the d_ffn neurons will be active,
 *     z = (x A) B + c,  A: (d_model, rank), B: (rank, d_ffn), c: (d_ffn),
 *     neuron i predicted active  <=>  sigmoid(z_i) > 0.5  <=>  z_i > 0.
 *
 * Training (predictor_train) uses the first (1 - holdout) of a trace's tokens
 * (ffn_inputs and active sets, trace loaded with TRACE_LOAD_INPUTS):
 *   1. standardise the inputs per feature;
 *   2. initialise by reduced-rank ridge regression of the +-1 targets on the
 *      inputs (Cholesky of the Gram matrix, eigenvectors of the fitted
 *      cross-covariance: the best rank-r least-squares fit);
 *   3. calibrate each neuron (discriminant slope, balanced-error threshold);
 *   4. refine with Adam on the balanced binary cross-entropy: for neuron i
 *      with training active rate p_i, positives weigh 1/(2 p_i) and negatives
 *      1/(2 (1 - p_i)), so both classes count equally (the paper's balanced
 *      loss); each layer's minibatch order from a generator seeded, in layer
 *      order, by the caller's gsl_rng;
 *   5. reset thresholds to the balanced-error optimum; fold the
 *      standardisation into A and c.
 * Layers train in parallel (o->threads). Matrix products go through CBLAS
 * (OpenBLAS sgemm); the same trace, options and rng seed give the same
 * predictor whatever o->threads, provided the BLAS itself is deterministic
 * (OpenBLAS is with one thread: the CLI sets OpenBLAS to one thread and
 * parallelises over layers instead).
 *
 * Evaluation (predictor_eval) compares predictions with the trace's active
 * sets on the training tokens and on the held-out tokens (the last `holdout`
 * fraction), per layer.
 */
#ifndef LIFSIM_PREDICTOR_H
#define LIFSIM_PREDICTOR_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

#include "sim/base/err.h"
#include "traces/trace.h"

#define PREDICTOR_SCHEMA "lifsim-predictor"
/* v2: Fletcher32 checksums on every dataset, HDF5 1.10 format; v1 still read */
#define PREDICTOR_SCHEMA_VERSION 2
#define PREDICTOR_MAX_RANK 4096

struct predictor;

/* How to train: a plain value. */
struct predictor_train_opts {
	int rank;             /* r, 1 <= r <= min(d_model, PREDICTOR_MAX_RANK) */
	double holdout;       /* last fraction of tokens not trained on, [0, 1) */
	const int *layers;    /* layers to train (NULL: all) */
	int nlayers;          /* entries in layers */
	int epochs;           /* Adam passes over the training tokens (0: LS init only) */
	int batch_tokens;     /* minibatch size */
	double lr;            /* Adam learning rate */
	double ridge;         /* ridge penalty of the initial fit, relative to the Gram diagonal */
	uint64_t seed;        /* recorded in the file; the caller seeds rng with it */
	int threads;          /* layers trained in parallel (OpenMP); results do not depend on it */
	const char *trace_path; /* recorded in the file (may be NULL) */
	/* optional progress report: called after each (layer, epoch) */
	void (*progress)(void *ctx, long long done, long long total);
	void *progress_ctx;
};

/* Defaults: rank 64, holdout 0.2, all layers, 20 epochs,
 * batch 256, lr 1e-2, ridge 1e-3, 1 thread. */
void predictor_train_opts_default(struct predictor_train_opts *o);

/* Train on t (loaded with TRACE_LOAD_INPUTS). Fills *out (caller frees). */
int predictor_train(const struct trace *t, const struct predictor_train_opts *o, gsl_rng *rng,
		    struct predictor **out, struct lif_err *err);

/* Write p to path (through "PATH.tmp" and a rename). */
int predictor_save(const struct predictor *p, const char *path, struct lif_err *err);

/* Read and validate a predictor file; NULL with err naming the file and the
 * problem. */
struct predictor *predictor_load(const char *path, struct lif_err *err);

void predictor_free(struct predictor *p);

/* Shape of a predictor (a plain value). */
struct predictor_info {
	int layers;           /* layers of the model (trained or not) */
	int d_model, d_ffn, rank;
	int ntrained;         /* layers that have a predictor */
	double holdout;       /* what training held out */
	int64_t train_tokens; /* tokens trained on */
	uint64_t seed;
	char model[64];
	char trace[1024];     /* trace trained on */
};
void predictor_get_info(const struct predictor *p, struct predictor_info *info);

/* 1 if layer has a trained predictor. */
int predictor_has_layer(const struct predictor *p, int layer);

/* Predict the active set of one token at one layer: x (d_model) in, bits
 * (ceil(d_ffn / 8), bit i = neuron i, padding bits zero) out. Returns 0, or
 * ERR_RANGE when the layer has no predictor. Thread-safe: p is not modified. */
int predictor_apply(const struct predictor *p, int layer, const float *x /* (d_model) */,
		    uint8_t *bits /* packed (ceil(d_ffn/8)) */);

/* Same for n tokens: x (n, d_model) -> bits (n, ceil(d_ffn / 8)). */
int predictor_apply_many(const struct predictor *p, int layer, int64_t n, const float *x,
			 uint8_t *bits);

/* Confusion counts and rates of one layer on one split of a trace. */
struct predictor_eval_row {
	int layer;
	int split;            /* 0 = training tokens, 1 = held-out tokens */
	int64_t tokens;
	int64_t tp, fp, fn, tn;
	double true_active;   /* fraction of neurons truly active */
	double pred_active;   /* fraction predicted active */
	double recall;        /* tp / (tp + fn) */
	double precision;     /* tp / (tp + fp) */
	double fn_rate;       /* fn / (tp + fn) = 1 - recall */
	double fp_rate;       /* fp / (fp + tn) */
};

/* Evaluate p on t (loaded with TRACE_LOAD_INPUTS) with the last `holdout` of
 * the tokens as the held-out split (holdout 1: every token is held out).
 * Fills rows (caller-owned, room for 2 * layers), one per trained layer and
 * non-empty split, and *nrows. */
int predictor_eval(const struct predictor *p, const struct trace *t, double holdout,
		   struct predictor_eval_row *rows, int *nrows, struct lif_err *err);

/* Parse a layer list "0,3,5-7" for a model with `layers` layers into out
 * (room for layers entries, sorted, unique). */
int predictor_parse_layers(const char *s, int layers, int *out, int *n, struct lif_err *err);

#endif
