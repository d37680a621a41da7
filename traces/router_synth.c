#include "traces/router_synth.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define O(f) CONF_OFF(struct router_synth_params, f)

const struct conf_opt router_synth_opts[] = {
	{.section = "synth", .name = "tokens", .type = CONF_I64, .offset = O(tokens), .def = "1000",
	 .min = 1, .max = 1e9, .help = "tokens to generate"},
	{.section = "synth", .name = "seed", .type = CONF_I64, .offset = O(seed), .def = "1",
	 .min = 0, .max = 9.2e18, .help = "random seed"},
	{.section = "synth", .name = "zipf", .type = CONF_DOUBLE, .offset = O(zipf), .def = "0.5",
	 .min = 0, .max = 4,
	 .help = "MoE: popularity exponent over expert rank (0 = uniform) [assumption]"},
	{.section = "synth", .name = "repeat", .type = CONF_DOUBLE, .offset = O(repeat),
	 .def = "0.35", .min = 0, .max = 1,
	 .help = "MoE: P(a slot copies an expert of the previous token) [assumption]"},
	{.section = "synth", .name = "layer_corr", .type = CONF_DOUBLE, .offset = O(layer_corr),
	 .def = "0.3", .min = 0, .max = 1,
	 .help = "MoE: P(a slot follows the previous layer's choice) [assumption]"},
	{.section = "synth", .name = "gate_sigma", .type = CONF_DOUBLE, .offset = O(gate_sigma),
	 .def = "0.5", .min = 0, .max = 10,
	 .help = "MoE: standard deviation of the log gate weights [assumption]"},
	{0},
};

void router_synth_defaults(struct router_synth_params *p)
{
	struct lif_err e = {0};
	memset(p, 0, sizeof *p);
	conf_defaults(router_synth_opts, p, &e);
}

/* Per layer: the popularity sampler and the partner permutation. */
struct layer_gen {
	gsl_ran_discrete_t *pop;
	size_t *partner; /* (experts) */
};

static int layer_gen_init(struct layer_gen *g, int E, double zipf, gsl_rng *rng)
{
	double *w = malloc(E * sizeof *w);
	size_t *rank = malloc(E * sizeof *rank);
	g->partner = malloc(E * sizeof *g->partner);
	if (!w || !rank || !g->partner) {
		free(w);
		free(rank);
		return -1;
	}
	for (int e = 0; e < E; e++)
		rank[e] = g->partner[e] = e;
	gsl_ran_shuffle(rng, rank, E, sizeof *rank);
	gsl_ran_shuffle(rng, g->partner, E, sizeof *g->partner);
	for (int e = 0; e < E; e++)
		w[e] = pow((double)rank[e] + 1, -zipf);
	g->pop = gsl_ran_discrete_preproc(E, w);
	free(w);
	free(rank);
	return g->pop ? 0 : -1;
}

static int in_row(const int16_t *row, int n, int e)
{
	for (int i = 0; i < n; i++)
		if (row[i] == e)
			return 1;
	return 0;
}

/* A random element of set (n) not in row (filled), or -1. */
static int pick_from(const int16_t *set, int n, const int16_t *row, int filled, gsl_rng *rng,
		     const size_t *map)
{
	int cand[ROUTER_MAX_TOPK], c = 0;
	for (int i = 0; i < n; i++) {
		int e = map ? (int)map[set[i]] : set[i];
		if (!in_row(row, filled, e))
			cand[c++] = e;
	}
	return c ? cand[gsl_rng_uniform_int(rng, c)] : -1;
}

/* One row: slots, then gate weights, then router order. */
static void gen_row(struct router_trace *rt, int l, int64_t t, const struct layer_gen *g,
		    const struct router_synth_params *p, gsl_rng *rng)
{
	int k = rt->meta.top_k;
	int16_t *row = rt->ids + ((size_t)l * rt->meta.tokens + t) * k;
	float *w = rt->weights + ((size_t)l * rt->meta.tokens + t) * k;
	for (int i = 0; i < k; i++) {
		int e = -1;
		double u = gsl_rng_uniform(rng);
		if (t > 0 && u < p->repeat)
			e = pick_from(router_ids(rt, l, t - 1), k, row, i, rng, NULL);
		else if (l > 0 && u < p->repeat + (1 - p->repeat) * p->layer_corr)
			e = pick_from(router_ids(rt, l - 1, t), k, row, i, rng, g[l].partner);
		while (e < 0 || in_row(row, i, e))
			e = (int)gsl_ran_discrete(rng, g[l].pop);
		row[i] = (int16_t)e;
	}
	double sum = 0, x[ROUTER_MAX_TOPK];
	for (int i = 0; i < k; i++)
		sum += x[i] = exp(gsl_ran_gaussian(rng, p->gate_sigma));
	for (int i = 0; i < k; i++) /* insertion sort by descending weight */
		for (int j = i; j > 0 && x[j] > x[j - 1]; j--) {
			double tx = x[j]; x[j] = x[j - 1]; x[j - 1] = tx;
			int16_t te = row[j]; row[j] = row[j - 1]; row[j - 1] = te;
		}
	for (int i = 0; i < k; i++)
		w[i] = (float)(x[i] / sum);
}

static void describe(struct router_meta *meta, const struct llm_desc *m,
		     const struct router_synth_params *p)
{
	snprintf(meta->model, sizeof meta->model, "%s", m->name);
	meta->layers = m->moe_layers, meta->experts = m->experts, meta->top_k = m->experts_per_token;
	meta->d_expert = m->d_expert, meta->tokens = p->tokens, meta->seed = (uint64_t)p->seed;
	meta->source = TRACE_SOURCE_SYNTHETIC;
	snprintf(meta->generator, sizeof meta->generator,
		 "lifsim-router-synth-v1 tokens=%lld seed=%lld zipf=%.17g repeat=%.17g "
		 "layer_corr=%.17g gate_sigma=%.17g", (long long)p->tokens, (long long)p->seed,
		 p->zipf, p->repeat, p->layer_corr, p->gate_sigma);
}

struct router_trace *router_synth_generate(const struct llm_desc *m,
					   const struct router_synth_params *p,
					   struct lif_err *err)
{
	if (!llm_is_moe(m)) {
		err_set(err, ERR_INVAL, "%s: not a mixture-of-experts model (experts = 0)", m->name);
		return NULL;
	}
	struct router_meta meta = {0};
	describe(&meta, m, p);
	struct router_trace *rt = router_trace_new(&meta, err);
	struct layer_gen *g = calloc(meta.layers, sizeof *g);
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	int rc = !rt || !g || !rng;
	if (rng)
		gsl_rng_set(rng, (unsigned long)p->seed);
	for (int l = 0; !rc && l < meta.layers; l++)
		rc = layer_gen_init(&g[l], meta.experts, p->zipf, rng);
	for (int64_t t = 0; !rc && t < meta.tokens; t++) /* token-major: layer l-1 first */
		for (int l = 0; l < meta.layers; l++)
			gen_row(rt, l, t, g, p, rng);
	for (int l = 0; g && l < meta.layers; l++) {
		if (g[l].pop)
			gsl_ran_discrete_free(g[l].pop);
		free(g[l].partner);
	}
	free(g);
	gsl_rng_free(rng);
	if (rc) {
		if (rt)
			err_set(err, ERR_NOMEM, "router synth: out of memory");
		router_trace_free(rt);
		return NULL;
	}
	return rt;
}
