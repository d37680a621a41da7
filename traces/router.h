/*
 * router: MoE router traces, the `lifsim-trace` schema from version 2
 * (traces/FORMAT.md, "Router traces", is the normative description).
 *
 * A router trace records, for every generated token and every MoE layer, the
 * top-k experts the router selected (in the router's order: descending gate
 * weight) and their gate weights; optionally the fraction of each selected
 * expert's neurons that were active (activation sparsity inside experts).
 * It is an HDF5 file with the trace schema's root attributes plus `experts`
 * and `experts_per_token`, and datasets `router_experts`, `router_weights`
 * (and optionally `expert_density` and `router_inputs`) instead of `active`.
 *
 * In memory the trace is layer-major, which is what the expert cache and the
 * statistics iterate over. router_write() writes atomically (PATH.tmp, then
 * rename); router_load() validates everything (schema, version, shapes,
 * ids in [0, experts) and distinct within a row, weights finite and >= 0,
 * densities in [0, 1]) and names the file and the problem on failure.
 */
#ifndef LIFSIM_ROUTER_H
#define LIFSIM_ROUTER_H

#include <stdint.h>

#include "sim/base/err.h"
#include "traces/trace.h"

#define ROUTER_MAX_EXPERTS 4096
#define ROUTER_MAX_TOPK 64

/* Root attributes of a router trace: a plain value. */
struct router_meta {
	char model[64];       /* models/llms/NAME.ini */
	int layers;           /* MoE layers L (the model's dense layers are not stored) */
	int experts;          /* routed experts per layer E */
	int top_k;            /* experts per token and layer k */
	int d_expert;         /* one expert's intermediate width (stored as d_ffn) */
	int64_t tokens;
	int source;           /* enum trace_source */
	char generator[2048]; /* "key=value ..." of the generator, or the recorder's settings */
	uint64_t seed;
	int has_density;      /* expert_density present */
	int d_model;          /* router_inputs' width (the recorder's --inputs), 0: absent */
};

/* A whole router trace, layer-major. */
struct router_trace {
	struct router_meta meta;
	int32_t *token_ids; /* (tokens) */
	int16_t *ids;       /* (layers, tokens, top_k) selected experts, router order */
	float *weights;     /* (layers, tokens, top_k) gate weights */
	float *density;     /* (layers, tokens, top_k) active fraction of each expert, or NULL */
	float *inputs;      /* (layers, tokens, d_model) the router's input vectors, or NULL */
};

/* Allocate a zeroed trace for meta (generators, tests); density when
 * meta->has_density, inputs when meta->d_model > 0. NULL with err set on bad dimensions or no memory. */
struct router_trace *router_trace_new(const struct router_meta *meta, struct lif_err *err);
void router_trace_free(struct router_trace *rt);

/* Check the contents (ids, weights, densities); `what` prefixes messages. */
int router_trace_check(const struct router_trace *rt, const char *what, struct lif_err *err);

/* Write rt to path atomically. */
int router_write(const char *path, const struct router_trace *rt, struct lif_err *err);

/* Validate and load. NULL with err set on any problem. */
struct router_trace *router_load(const char *path, struct lif_err *err);

/* 1 when path is a lifsim trace holding router datasets, 0 when it is not
 * (or cannot be opened: the caller's own loader then names the problem). */
int router_is_router_trace(const char *path);

static inline const int16_t *router_ids(const struct router_trace *rt, int layer, int64_t token)
{
	return rt->ids + ((size_t)layer * rt->meta.tokens + token) * rt->meta.top_k;
}

/* The router input of (layer, token): d_model floats (inputs present). */
static inline const float *router_input(const struct router_trace *rt, int layer, int64_t token)
{
	return rt->inputs + ((size_t)layer * rt->meta.tokens + token) * rt->meta.d_model;
}

static inline const float *router_weights(const struct router_trace *rt, int layer,
					  int64_t token)
{
	return rt->weights + ((size_t)layer * rt->meta.tokens + token) * rt->meta.top_k;
}

#endif
