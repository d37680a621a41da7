#include "traces/stats.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base/atomic.h"
#include "sim/base/util.h"
#include "traces/actlist.h"

const double stats_freq_edges[STATS_FREQ_BINS] = {0, 0.001, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0};
const double stats_top_fracs[STATS_TOP_SHARES] = {0.001, 0.01, 0.05, 0.1, 0.2, 0.5};

void stats_default_opts(struct stats_opts *o)
{
	o->coact_samples = 256;
	o->coact_min_count = 2;
	o->seed = 1;
	o->progress = NULL;
	o->progress_ctx = NULL;
}

/* Windowed statistics of one layer: s_agg(k), load(k) by age histograms. */
static int layer_windows(const struct trace *t, const struct actlist *a, int max_k,
			 struct stats_layer *out)
{
	const int64_t T = t->meta.tokens;
	const int d = t->meta.d_ffn, K = max_k + 1; /* ages 0..K tracked */
	int64_t *last = malloc(d * sizeof *last);
	int64_t hist[STATS_MAX_K + 3] = {0};    /* neurons by age (t - last active) */
	double sagg_acc[STATS_MAX_K + 3] = {0}, load_acc[STATS_MAX_K + 2] = {0};
	int64_t sagg_n[STATS_MAX_K + 3] = {0}, load_n[STATS_MAX_K + 2] = {0};
	if (!last)
		return ERR_NOMEM;
	for (int i = 0; i < d; i++)
		last[i] = INT64_MIN / 2;
	for (int64_t k = 0; k < T; k++) {
		int64_t gaps[STATS_MAX_K + 3] = {0}; /* active now, by gap since last (capped) */
		memmove(hist + 1, hist, K * sizeof *hist); /* everyone ages one token */
		hist[0] = 0;
		for (int64_t p = a->start[k]; p < a->start[k + 1]; p++) {
			int i = a->ids[p];
			int64_t gap = k - last[i];
			int gi = gap > K ? K + 1 : (int)gap;
			gaps[gi]++;
			if (gap <= K)
				hist[gap]--; /* its age bucket at this token was `gap` */
			hist[0]++;
			last[i] = k;
		}
		/* s_agg(w) = neurons with age < w, for windows that fit (k >= w - 1) */
		int64_t cum = 0;
		for (int w = 1; w <= K; w++) {
			cum += hist[w - 1];
			if (k >= w - 1)
				sagg_acc[w] += (double)cum / d, sagg_n[w]++;
		}
		/* load(w) = active now with gap > w, for full windows (k >= w) */
		int64_t above = 0;
		for (int g = K + 1; g >= 1; g--) {
			above += gaps[g];
			int w = g - 1;
			if (w <= max_k && k >= w)
				load_acc[w] += (double)above / d, load_n[w]++;
		}
	}
	out->s_agg[0] = 0;
	for (int w = 1; w <= K; w++)
		out->s_agg[w] = sagg_n[w] ? sagg_acc[w] / sagg_n[w] : NAN;
	for (int w = 0; w <= max_k; w++)
		out->load[w] = load_n[w] ? load_acc[w] / load_n[w] : NAN;
	free(last);
	return 0;
}

static int cmp_desc_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return (a < b) - (a > b);
}

/* Frequency histogram and top-x activation shares; counts (d) per neuron. */
static int layer_frequency(const int64_t *counts, int d, int64_t T, struct stats_layer *out,
			   int64_t *hot_cut)
{
	int64_t *sorted = malloc(d * sizeof *sorted), total = 0;
	if (!sorted)
		return ERR_NOMEM;
	memset(out->freq_hist, 0, sizeof out->freq_hist);
	for (int i = 0; i < d; i++) {
		double f = T ? (double)counts[i] / T : 0;
		int b = 0;
		while (b < STATS_FREQ_BINS - 1 && f > stats_freq_edges[b])
			b++;
		out->freq_hist[b] += 1.0 / d;
		sorted[i] = counts[i];
		total += counts[i];
	}
	qsort(sorted, d, sizeof *sorted, cmp_desc_i64);
	for (int s = 0; s < STATS_TOP_SHARES; s++) {
		int n = (int)ceil(stats_top_fracs[s] * d);
		int64_t sum = 0;
		for (int i = 0; i < n && i < d; i++)
			sum += sorted[i];
		out->top_share[s] = total ? (double)sum / total : 0;
	}
	*hot_cut = sorted[(int)ceil(0.01 * d) - 1 < 0 ? 0 : (int)ceil(0.01 * d) - 1];
	out->sparsity = 1 - (double)total / ((double)T * d);
	free(sorted);
	return 0;
}

/* Closest friends of a seeded sample of neurons. */
static int layer_friends(const struct trace *t, const struct actlist *a,
			 const int64_t *counts, int64_t hot_cut, const struct stats_opts *o,
			 int layer, struct stats_layer *out)
{
	const int d = t->meta.d_ffn;
	const int64_t T = t->meta.tokens;
	int32_t *cand = malloc(d * sizeof *cand), *co = calloc(d, sizeof *co);
	uint8_t *is_friend = calloc(d, 1);
	double *probs = malloc((o->coact_samples + 1) * sizeof *probs);
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	int nc = 0, rc = 0, hot = 0, distinct = 0;
	if (!cand || !co || !is_friend || !probs || !rng) {
		rc = ERR_NOMEM;
		goto out;
	}
	gsl_rng_set(rng, o->seed * 1000003u + (unsigned)layer);
	for (int i = 0; i < d; i++)
		if (counts[i] >= o->coact_min_count)
			cand[nc++] = i;
	int n = nc < o->coact_samples ? nc : o->coact_samples;
	for (int s = 0; s < n; s++) { /* partial Fisher-Yates: a sample without repeats */
		int j = s + (int)gsl_rng_uniform_int(rng, nc - s);
		int32_t tmp = cand[s];
		cand[s] = cand[j], cand[j] = tmp;
	}
	for (int s = 0; s < n; s++) {
		int i = cand[s], best = -1;
		for (int64_t k = 0; k < T; k++) {
			const uint8_t *row = trace_active(t, layer, k);
			if (!trace_bit(row, i))
				continue;
			for (int64_t p = a->start[k]; p < a->start[k + 1]; p++)
				co[a->ids[p]]++;
		}
		co[i] = 0;
		for (int j = 0; j < d; j++) {
			if (co[j] && (best < 0 || co[j] > co[best]))
				best = j;
		}
		probs[s] = best >= 0 ? (double)co[best] / counts[i] : 0;
		if (best >= 0) {
			hot += counts[best] >= hot_cut;
			distinct += !is_friend[best];
			is_friend[best] = 1;
		}
		memset(co, 0, d * sizeof *co);
	}
	out->coact_n = n;
	if (n) {
		double sum = 0;
		for (int s = 0; s < n; s++)
			sum += probs[s];
		qsort(probs, n, sizeof *probs, util_cmp_double);
		out->friend_prob_mean = sum / n;
		out->friend_prob_median = n % 2 ? probs[n / 2] : 0.5 * (probs[n / 2 - 1] + probs[n / 2]);
		out->friend_hot_frac = (double)hot / n;
		out->friends_distinct_frac = (double)distinct / n;
	}
out:
	free(cand), free(co), free(is_friend), free(probs);
	gsl_rng_free(rng);
	return rc;
}

static int stats_layer_compute(const struct trace *t, const struct stats_opts *o, int layer,
			       int max_k, struct stats_layer *out)
{
	struct actlist a = {0};
	const int d = t->meta.d_ffn;
	int64_t *counts = calloc(d, sizeof *counts), hot_cut = 0;
	int rc = counts ? actlist_build(t, layer, t->meta.tokens, &a) : ERR_NOMEM;
	if (!rc)
		actlist_counts(&a, d, counts);
	if (!rc)
		rc = layer_windows(t, &a, max_k, out);
	if (!rc)
		rc = layer_frequency(counts, d, t->meta.tokens, out, &hot_cut);
	if (!rc && o->coact_samples > 0)
		rc = layer_friends(t, &a, counts, hot_cut, o, layer, out);
	actlist_free(&a);
	free(counts);
	return rc;
}

/* Mean of every field over layers. */
static void stats_average(struct stats_result *r)
{
	struct stats_layer *m = &r->all;
	memset(m, 0, sizeof *m);
	for (int l = 0; l < r->layers; l++) {
		const struct stats_layer *s = &r->layer[l];
		m->sparsity += s->sparsity / r->layers;
		for (int k = 0; k <= STATS_MAX_K + 1; k++)
			m->s_agg[k] += s->s_agg[k] / r->layers;
		for (int k = 0; k <= STATS_MAX_K; k++)
			m->load[k] += s->load[k] / r->layers;
		for (int b = 0; b < STATS_FREQ_BINS; b++)
			m->freq_hist[b] += s->freq_hist[b] / r->layers;
		for (int b = 0; b < STATS_TOP_SHARES; b++)
			m->top_share[b] += s->top_share[b] / r->layers;
		m->coact_n += s->coact_n;
		m->friend_prob_mean += s->friend_prob_mean / r->layers;
		m->friend_prob_median += s->friend_prob_median / r->layers;
		m->friend_hot_frac += s->friend_hot_frac / r->layers;
		m->friends_distinct_frac += s->friends_distinct_frac / r->layers;
	}
}

int stats_compute(const struct trace *t, const struct stats_opts *o, int threads,
		  struct stats_result *out, struct lif_err *err)
{
	memset(out, 0, sizeof *out);
	if (t->meta.tokens < 2)
		return err_set(err, ERR_INVAL, "trace has %lld tokens; statistics need at least 2",
			       (long long)t->meta.tokens);
	snprintf(out->model, sizeof out->model, "%s", t->meta.model);
	out->layers = t->meta.layers;
	out->d_ffn = t->meta.d_ffn;
	out->tokens = t->meta.tokens;
	out->max_k = t->meta.tokens - 1 < STATS_MAX_K ? (int)t->meta.tokens - 1 : STATS_MAX_K;
	out->layer = calloc(out->layers, sizeof *out->layer);
	if (!out->layer)
		return err_set(err, ERR_NOMEM, "out of memory");
	int bad = 0;
	long long done = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad)
	for (int l = 0; l < out->layers; l++) {
		bad |= stats_layer_compute(t, o, l, out->max_k, &out->layer[l]) != 0;
		if (o->progress) {
#pragma omp critical(stats_progress)
			o->progress(o->progress_ctx, ++done, out->layers);
		}
	}
	if (bad) {
		stats_result_free(out);
		return err_set(err, ERR_NOMEM, "out of memory computing statistics");
	}
	stats_average(out);
	return 0;
}

void stats_result_free(struct stats_result *r)
{
	free(r->layer);
	r->layer = NULL;
}

static void csv_layer(FILE *f, const struct stats_result *r, const struct stats_layer *s,
		      const char *layer)
{
	fprintf(f, "sparsity_frac,%s,,,%.6f\n", layer, s->sparsity);
	for (int k = 0; k <= r->max_k + 1; k++)
		fprintf(f, "s_agg_frac,%s,%d,,%.6f\n", layer, k, s->s_agg[k]);
	for (int k = 0; k <= r->max_k; k++)
		fprintf(f, "load_frac_per_token,%s,%d,,%.6f\n", layer, k, s->load[k]);
	for (int k = 0; k <= r->max_k; k++)
		fprintf(f, "resident_frac,%s,%d,,%.6f\n", layer, k, s->s_agg[k]);
	for (int b = 0; b < STATS_FREQ_BINS; b++)
		fprintf(f, "neurons_frac_by_freq,%s,,%g,%.6f\n", layer, stats_freq_edges[b],
			s->freq_hist[b]);
	for (int b = 0; b < STATS_TOP_SHARES; b++)
		fprintf(f, "activation_share_of_top_frac,%s,,%g,%.6f\n", layer, stats_top_fracs[b],
			s->top_share[b]);
	if (!s->coact_n)
		return;
	fprintf(f, "closest_friend_prob_mean,%s,,,%.6f\n", layer, s->friend_prob_mean);
	fprintf(f, "closest_friend_prob_median,%s,,,%.6f\n", layer, s->friend_prob_median);
	fprintf(f, "closest_friend_is_hot_frac,%s,,,%.6f\n", layer, s->friend_hot_frac);
	fprintf(f, "closest_friend_distinct_frac,%s,,,%.6f\n", layer, s->friends_distinct_frac);
}

int stats_write_csv(const struct stats_result *r, const char *path, struct lif_err *err)
{
	struct atomic_file af;
	if (atomic_open(&af, path, err))
		return ERR_IO;
	fprintf(af.fp, "metric,layer,k,x,value\n");
	csv_layer(af.fp, r, &r->all, "all");
	char name[16];
	for (int l = 0; l < r->layers; l++) {
		snprintf(name, sizeof name, "%d", l);
		csv_layer(af.fp, r, &r->layer[l], name);
	}
	return atomic_commit(&af, err);
}
