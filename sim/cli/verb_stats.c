/* lifsim stats: statistics of a trace, as a tidy CSV and a short summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/cli/verbs.h"
#include "traces/router_stats.h"
#include "traces/stats.h"

static void stats_usage(FILE *f)
{
	fprintf(f, "usage: lifsim stats TRACE.h5 [-o STATS.csv] [--coact-samples N] [--seed S]\n\n"
		   "Trace statistics (definitions in traces/stats.h): sparsity per layer; s_agg(k),\n"
		   "the incremental load per token and the resident fraction for windows\n"
		   "k = 0..32; the neuron frequency distribution; closest-friend co-activation.\n\n"
		   "  -o, --output FILE     tidy CSV: metric,layer,k,x,value (layer 'all' = mean)\n"
		   "  --coact-samples N     neurons sampled per layer for closest friends (default 256, 0 = skip)\n"
		   "  --seed S              sampling seed (default 1)\n"
		   "  --one-pass            only load the trace's bits (active sets and band) and\n"
		   "                        count them: the floor of any computation over the trace\n"
		   "                        (make bench prints the sweep and stats beside it)\n\n"
		   "On a router trace (MoE; traces/router_stats.h): expert popularity, reuse\n"
		   "distance, repeat probability, co-selection, one-layer-ahead predictability and\n"
		   "the whole LRU hit-rate curve against cache size (experts per layer) from one\n"
		   "pass of stack distances; the CSV is metric,layer,x,value.\n");
}

static void stats_progress(void *ctx, long long done, long long total)
{
	cli_progress(ctx, "stats", done, total);
}

static void print_router_summary(const struct router_stats *r, const struct router_meta *m)
{
	const struct router_stats_layer *a = &r->all;
	printf("router trace: %s (%s), %lld tokens x %d MoE layers, top-%d of %d experts\n",
	       m->model, m->source == TRACE_SOURCE_RECORDED ? "recorded" : "synthetic",
	       (long long)r->tokens, r->layers, r->top_k, r->experts);
	printf("popularity: the top 10%% of experts make %.1f%% of selections (uniform %.1f%%)\n",
	       100 * a->top_share, 100.0 * (r->experts / 10 > 0 ? r->experts / 10 : 1) / r->experts);
	printf("reuse: %.1f%% of selections repeat the previous token's expert (random %.1f%%); "
	       "%.1f%% are first uses\n", 100 * a->repeat, 100.0 * r->top_k / r->experts,
	       100 * a->reuse_first);
	printf("co-selection: P(best partner | expert) %.3f (independent %.3f)\n", a->cosel_best,
	       a->cosel_random);
	if (a->next_layer_acc >= 0)
		printf("next layer: %.1f%% of its experts predicted from this layer's (popularity alone "
		       "%.1f%%)\n", 100 * a->next_layer_acc, 100 * a->next_layer_pop);
	printf("LRU hit rate by cache size (experts per layer):");
	for (int c = r->top_k; c <= r->experts; c *= 2)
		printf(" %d: %.1f%%", c, 100 * a->lru_hit[c]);
	printf("\n");
}

static int stats_router(const char *path, const char *out, const struct cli_global *g)
{
	struct lif_err err = {0};
	struct router_trace *rt = router_load(path, &err);
	if (!rt)
		return cli_fail("stats", &err);
	struct router_stats r;
	int rc = router_stats_compute(rt, &r, &err);
	if (!rc && out)
		rc = router_stats_write_csv(&r, out, &err);
	if (!rc && !g->quiet)
		print_router_summary(&r, &rt->meta);
	router_stats_free(&r);
	router_trace_free(rt);
	return rc ? cli_fail("stats", &err) : 0;
}

static void print_summary(const struct stats_result *r, const struct trace_meta *m)
{
	const struct stats_layer *a = &r->all;
	double min = 1, max = 0;
	for (int l = 0; l < r->layers; l++) {
		min = r->layer[l].sparsity < min ? r->layer[l].sparsity : min;
		max = r->layer[l].sparsity > max ? r->layer[l].sparsity : max;
	}
	printf("trace: %s (%s), %lld tokens x %d layers x %d neurons\n", m->model,
	       m->source == TRACE_SOURCE_RECORDED ? "recorded" : "synthetic", (long long)r->tokens,
	       r->layers, r->d_ffn);
	printf("sparsity: mean %.4f (layers %.4f .. %.4f); active per token %.2f%%\n", a->sparsity,
	       min, max, 100 * (1 - a->sparsity));
	const char *target = strstr(m->generator, " sparsity=");
	if (m->source == TRACE_SOURCE_SYNTHETIC && target) {
		double want = strtod(target + 10, NULL);
		printf("  model description's sparsity %.4f (published, see the model file): active "
		       "fraction %+.1f%% off\n", want, 100 * ((1 - a->sparsity) / (1 - want) - 1));
	}
	printf("window k   s_agg(k)   load/token   load/active\n");
	static const int ks[] = {0, 1, 2, 4, 5, 8, 16, 32};
	for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
		int k = ks[i];
		if (k > r->max_k)
			break;
		if (a->sparsity < 1)
			printf("  %4d    %7.2f%%    %7.3f%%      %5.3f\n", k, 100 * a->s_agg[k],
			       100 * a->load[k], a->load[k] / (1 - a->sparsity));
		else /* no neuron is ever active: a ratio to the active set has no value */
			printf("  %4d    %7.2f%%    %7.3f%%      -\n", k, 100 * a->s_agg[k],
			       100 * a->load[k]);
	}
	if (a->sparsity >= 1)
		printf("windowing: no neuron is ever active in this trace\n");
	else if (r->max_k >= 5)
		printf("windowing: a token loads %.1f%% of its active set with k = 5 (load(5) / active)\n",
		       100 * a->load[5] / (1 - a->sparsity));
	printf("frequency: top 1%% of neurons fire %.1f%% of activations, top 10%% fire %.1f%%; "
	       "%.1f%% never fire\n", 100 * a->top_share[1], 100 * a->top_share[3],
	       100 * a->freq_hist[0]);
	if (a->coact_n)
		printf("closest friend: P(friend | neuron) mean %.3f, median %.3f; friend is a top-1%% "
		       "hot neuron for %.1f%% of neurons (%d sampled)\n", a->friend_prob_mean,
		       a->friend_prob_median, 100 * a->friend_hot_frac, a->coact_n);
}

/* Set bits of n bytes, 8 at a time. */
static long long count_bits(const uint8_t *p, size_t n)
{
	long long c = 0;
	size_t j = 0;
	for (; j + 8 <= n; j += 8) {
		uint64_t w;
		memcpy(&w, p + j, 8);
		c += __builtin_popcountll(w);
	}
	for (; j < n; j++)
		c += __builtin_popcount(p[j]);
	return c;
}

/* --one-pass: load (decompress) the bits once and count them. */
static int stats_one_pass(const char *path, const struct cli_global *g)
{
	struct lif_err err = {0};
	struct trace *t = trace_load_threads(path, TRACE_LOAD_MAGNITUDES, g->threads, &err);
	if (!t)
		return cli_fail("stats", &err);
	size_t rows = (size_t)t->meta.layers * t->meta.tokens;
	long long act = count_bits(t->bits, rows * t->row_bytes);
	long long band = t->band ? count_bits(t->band, rows * 2 * t->row_bytes) : 0;
	if (!g->quiet)
		printf("one pass: %lld active bits, %lld band bits over %zu rows of %d bytes\n", act,
		       band, rows, t->row_bytes);
	trace_free(t);
	return 0;
}

int verb_stats(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {
		{"output", required_argument, 0, 'o'}, {"coact-samples", required_argument, 0, 'c'},
		{"seed", required_argument, 0, 's'},   {"help", no_argument, 0, 'h'},
		{"one-pass", no_argument, 0, 'P'},
		{0},
	};
	int one_pass = 0;
	struct stats_opts o;
	const char *out = NULL;
	long long v;
	int c;
	stats_default_opts(&o);
	o.progress = stats_progress, o.progress_ctx = (void *)g;
	while ((c = cli_getopt("stats", argc, argv, "o:h", longopts)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'c': if (cli_int("stats", "--coact-samples", optarg, 0, 1 << 20, &v)) return CLI_EXIT_USAGE; o.coact_samples = (int)v; break;
		case 's': if (cli_int("stats", "--seed", optarg, 0, (1ll << 62), &v)) return CLI_EXIT_USAGE; o.seed = (uint64_t)v; break;
		case 'h': stats_usage(stdout); return 0;
		case 'P': one_pass = 1; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return cli_failf("stats", "expected one TRACE.h5 argument (see lifsim stats --help)");
	if (one_pass)
		return stats_one_pass(argv[optind], g);
	if (router_is_router_trace(argv[optind]))
		return stats_router(argv[optind], out, g);
	struct lif_err err = {0};
	struct trace *t = trace_load_threads(argv[optind], 0, g->threads, &err);
	if (!t)
		return cli_fail("stats", &err);
	struct stats_result r;
	int rc = stats_compute(t, &o, g->threads, &r, &err);
	if (!rc && out)
		rc = stats_write_csv(&r, out, &err);
	if (!rc && !g->quiet)
		print_summary(&r, &t->meta);
	stats_result_free(&r);
	trace_free(t);
	return rc ? cli_fail("stats", &err) : 0;
}
