#include "sim/core/sim.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim/base/claim.h"
#include "sim/core/pass.h"
#include "sim/core/planner.h"
#include "sim/core/spec.h"
#include "sim/core/step.h"
#include "sim/core/timeline.h"
#include "sim/base/util.h"
#include "traces/actlist.h"

/* [sim] dtype and compute_dtype: the model's dtypes, then one more choice
 * (LLM_NDTYPES) for "as the model" / "as stored". */
static const char *dtype_or_model(int i)
{
	return i == LLM_NDTYPES ? "model" : llm_dtype_choice(i);
}

static const char *dtype_or_stored(int i)
{
	return i == LLM_NDTYPES ? "stored" : llm_dtype_choice(i);
}

#define O(f) CONF_OFF(struct sim_params, f)
const struct conf_opt sim_opts[] = {
	{.section = "sim", .name = "strategy", .type = CONF_ENUM, .offset = O(strategy),
	 .def = "sparse", CONF_NO_BOUNDS, .choices = "sparse|naive",
	 .help = "sparse: load predicted neurons on demand; naive: read every non-resident weight per token"},
	{.section = "sim", .name = "predictor", .type = CONF_ENUM, .offset = O(predictor),
	 .def = "oracle", CONF_NO_BOUNDS, .names = pred_choice,
	 .help = "which neurons a token loads (sim/core/pred.h)"},
	{.section = "sim", .name = "recall", .type = CONF_DOUBLE, .offset = O(recall),
	 .def = "0.95", .min = 0, .max = 1,
	 .help = "modeled/random predictor: fraction of active neurons predicted (paper: about 0.95)"},
	{.section = "sim", .name = "fp_rate", .type = CONF_DOUBLE, .offset = O(fp_rate),
	 .def = "0.07", .min = 0, .max = 1,
	 .help = "modeled/random predictor: fraction of inactive neurons predicted (paper: about 0.07)"},
	{.section = "sim", .name = "predictor_seed", .type = CONF_I64, .offset = O(predictor_seed),
	 .def = "1", .min = 0, .max = 9.2e18,
	 .help = "seed of the predictor's mistakes (shared by points, so they differ only in their knobs)"},
	{.section = "sim", .name = "predictor_file", .type = CONF_STR, .offset = O(predictor_file),
	 .size = 512, .def = "", CONF_NO_BOUNDS,
	 .help = "lowrank: trained predictors (lifsim predictor train), relative to the experiment"},
	{.section = "sim", .name = "predictor_rank", .type = CONF_INT, .offset = O(predictor_rank),
	 .def = "128", .min = 0, .max = 1 << 20,
	 .help = "rank of each layer's low-rank predictor, whose DRAM and compute are counted (0: none)"},
	{.section = "sim", .name = "predictor_rank_last", .type = CONF_INT,
	 .offset = O(predictor_rank_last), .def = "0", .min = 0, .max = 1 << 20,
	 .help = "rank of the predictors of the last predictor_last_layers layers (the paper: OPT 1024, Falcon 1152)"},
	{.section = "sim", .name = "predictor_last_layers", .type = CONF_INT,
	 .offset = O(predictor_last_layers), .def = "0", .min = 0, .max = LLM_MAX_LAYERS,
	 .help = "how many last layers take predictor_rank_last (the paper: 4)"},
	{.section = "sim", .name = "window", .type = CONF_INT, .offset = O(window), .def = "5",
	 .min = 0, .max = 1 << 20,
	 .help = "k: neurons predicted in the k previous tokens stay resident (0: no reuse)"},
	{.section = "sim", .name = "layout", .type = CONF_ENUM, .offset = O(layout),
	 .def = "rowcol", CONF_NO_BOUNDS, .names = layout_choice,
	 .help = "placement of neurons on flash (sim/core/layout.h)"},
	{.section = "sim", .name = "bundle", .type = CONF_INT, .offset = O(bundle), .def = "1",
	 .min = 1, .max = 1 << 20, .help = "neurons per read unit in the layout"},
	{.section = "sim", .name = "layout_train_tokens", .type = CONF_INT,
	 .offset = O(layout_train_tokens), .def = "100", .min = 1, .max = 1 << 30,
	 .help = "first tokens the ordering layouts and the hot hybrid policy learn from"},
	{.section = "sim", .name = "merge", .type = CONF_BOOL, .offset = O(merge), .def = "true",
	 CONF_NO_BOUNDS,
	 .help = "merge neighbouring reads into one (false: one read per unit, as the paper)"},
	{.section = "sim", .name = "max_gap", .type = CONF_BYTES, .offset = O(max_gap), .def = "0",
	 CONF_NO_BOUNDS,
	 .help = "merge reads whose gap is at most this many bytes (0: touching only)"},
	{.section = "sim", .name = "parallelism", .type = CONF_INT, .offset = O(parallelism),
	 .def = "32", .min = 1, .max = 4096, .help = "outstanding reads (the paper: 32 threads)"},
	{.section = "sim", .name = "hybrid", .type = CONF_STR, .offset = O(hybrid), .size = 16,
	 .def = "0", CONF_NO_BOUNDS,
	 .help = "fraction of FFN neurons pinned in DRAM, or auto (fill the DRAM budget)"},
	{.section = "sim", .name = "hybrid_policy", .type = CONF_ENUM, .offset = O(hybrid_policy),
	 .def = "hot", CONF_NO_BOUNDS, .choices = "hot|first",
	 .help = "which neurons are pinned: the most frequent per layer, or whole first layers"},
	{.section = "sim", .name = "naive_keep_dense", .type = CONF_BOOL,
	 .offset = O(naive_keep_dense), .def = "false", CONF_NO_BOUNDS,
	 .help = "naive strategy: attention and embeddings stay in DRAM (else the whole model is read)"},
	{.section = "sim", .name = "naive_chunk", .type = CONF_BYTES, .offset = O(naive_chunk),
	 .def = "64MiB", .min = 4096, .max = 1e12,
	 .help = "naive strategy: bytes per sequential read"},
	{.section = "sim", .name = "dram_budget", .type = CONF_BYTES, .offset = O(dram_budget),
	 .def = "0", .min = 0, .max = 1e15, .help = "DRAM available, bytes (0: unlimited)"},
	{.section = "sim", .name = "dram_budget_frac", .type = CONF_DOUBLE,
	 .offset = O(dram_budget_frac), .def = "0", .min = 0, .max = 10,
	 .help = "DRAM available as a fraction of the model's bytes as held in DRAM (compute_dtype; 0: unused)"},
	{.section = "sim", .name = "dtype", .type = CONF_ENUM, .offset = O(dtype), .def = "model",
	 CONF_NO_BOUNDS, .names = dtype_or_model,
	 .help = "type of the weights on flash (model: as its description says)"},
	{.section = "sim", .name = "compute_dtype", .type = CONF_ENUM, .offset = O(compute_dtype),
	 .def = "stored", CONF_NO_BOUNDS, .names = dtype_or_stored,
	 .help = "type of the weights in DRAM and compute (stored: as on flash; the paper's CPU runs are fp32)"},
	{.section = "sim", .name = "bits", .type = CONF_INT, .offset = O(bits), .def = "0",
	 .min = 0, .max = 4,
	 .help = "bits per attention/FFN linear weight, 1..4 in the low-bit GEMV format (0: dtype)"},
	{.section = "sim", .name = "group", .type = CONF_ENUM, .offset = O(group), .def = "64",
	 CONF_NO_BOUNDS, .choices = "32|64", .help = "bits > 0: weights per fp16 scale and centre"},
	{.section = "sim", .name = "kernel", .type = CONF_ENUM, .offset = O(kernel), .def = "lut",
	 CONF_NO_BOUNDS, .names = compute_kernel_choice,
	 .help = "bits > 0: the GEMV kernel whose measured speed ([compute] of the device) costs compute"},
	{.section = "sim", .name = "ffn_rows", .type = CONF_ENUM, .offset = O(ffn_rows),
	 .def = "window", CONF_NO_BOUNDS, .choices = "window|predicted",
	 .help = "FFN compute runs over the used rows of the matrix (window) or the predicted rows only"},
	{.section = "sim", .name = "warmup_tokens", .type = CONF_INT, .offset = O(warmup_tokens),
	 .def = "0", .min = 0, .max = 1 << 30,
	 .help = "first tokens left out of the means (cold start)"},
	{.section = "sim", .name = "overlap", .type = CONF_ENUM, .offset = O(overlap),
	 .def = "none", CONF_NO_BOUNDS, .choices = TIMELINE_OVERLAP_CHOICES,
	 .help = "none: I/O, memory management and compute one after another (the paper); "
		 "pipelined: reads of layer l+1 during layer l's compute (sim/core/timeline.h)"},
	{.section = "sim", .name = "pipeline_depth", .type = CONF_INT, .offset = O(pipeline_depth),
	 .def = "1", .min = 1, .max = 64,
	 .help = "pipelined: layers whose reads may run ahead of compute (the read buffers)"},
	{.section = "sim", .name = "spec_lambda", .type = CONF_INT, .offset = O(spec_lambda),
	 .def = "0", .min = 0, .max = 16,
	 .help = "speculative decoding: tokens the draft model proposes per verification step (0: off)"},
	{.section = "sim", .name = "spec_alpha", .type = CONF_DOUBLE, .offset = O(spec_alpha),
	 .def = "0.8", .min = 0, .max = 1,
	 .help = "speculative decoding: probability that the target accepts a drafted token"},
	{.section = "sim", .name = "draft_model", .type = CONF_STR, .offset = O(draft_model),
	 .size = 512, .def = "", CONF_NO_BOUNDS,
	 .help = "speculative decoding: the draft model's description (relative to the experiment)"},
	{.section = "sim", .name = "context_tokens", .type = CONF_I64, .offset = O(context_tokens),
	 .def = "128", .min = 0, .max = 1e9,
	 .help = "KV-cache length before the first token (the paper: a 128-token prompt)"},
	{0},
};

void sim_default_params(struct sim_params *p)
{
	memset(p, 0, sizeof *p);
	conf_defaults(sim_opts, p, NULL);
}

/* ---------------------------------------------------------------- cache */

struct pred_entry {
	struct pred_params key;
	const uint8_t *sets; /* (layers, tokens, row_bytes); the trace's own bits for oracle */
	uint8_t *owned;      /* sets when the cache made them (freed with it) */
	struct pred_quality q;
};

struct layout_entry {
	int kind, bundle, train, format; /* format: weight_format() */
	struct layout *layout;
};

struct freq_entry {
	int train;
	int64_t *counts; /* (layers, d_ffn) */
};

#define CACHE_MAX 64
#define DECISIONS_MAX 512

struct decisions;
static void decisions_free(struct decisions *d);
struct hint_key;
struct matrix;
static void matrix_free(struct matrix *m);

#define BUILDING_MAX 256

/* A build in progress (sim_cache.building). */
struct inflight {
	int tag;          /* what kind of key */
	const void *key;  /* the builder's key; NULL: slot free */
};

struct sim_cache {
	const struct trace *t;
	struct llm_desc m;
	pthread_mutex_t lock;
	struct pred_entry preds[CACHE_MAX];
	struct layout_entry layouts[CACHE_MAX];
	struct freq_entry freqs[CACHE_MAX];
	struct decisions *dec[DECISIONS_MAX];
	char lowrank_path[CACHE_MAX][512];
	const struct predictor *lowrank[CACHE_MAX];
	int npred, nlayout, nfreq, ndec, nlowrank;
	int reference; /* decide through sim/core/step.h (tests) */
	/* keys being built by some thread: the others wait for them (a sweep's
	 * neighbouring points share keys) instead of building them again */
	pthread_cond_t built;
	struct inflight building[BUILDING_MAX];
	int nbuilding;
	struct matrix *mat[DECISIONS_MAX];
	int nmat;
	/* the points a sweep will run (sim_cache_hint): their decisions are
	 * built a predictor and pinned set at a time, in one pass */
	struct sim_params *hints;
	size_t nhints;
	struct hint_key *hkeys; /* (nhints) their decision keys, made on first use */
	/* streamed (sim_cache_new_stream): t is the metadata only (meta_t) */
	int streaming;
	struct sim_source src;
	struct trace meta_t;
	pthread_mutex_t wlock;  /* whole: taken with or without c->lock, never the reverse */
	struct trace *whole;    /* the whole trace, read on first use */
	struct trace *prefix;   /* the first tokens (layouts, hot pinning; under c->lock) */
	int64_t stream_peak;    /* sim_cache_stream_peak_bytes */
};

/* The trace with its bits where cache_trace has been called before. */
#define BITS(c) ((c)->streaming ? (const struct trace *)(c)->whole : (c)->t)

/* A trace of tokens [t0, t0 + n) read from c's source (band when it has one
 * and want_band) into t, a trace of at least as many tokens read by it
 * before (its buffers reused: a stream's blocks), or NULL: a new one. */
static struct trace *source_read_into(struct sim_cache *c, struct trace *t, int64_t t0, int64_t n,
				      int want_band, struct lif_err *err)
{
	const size_t rows = (size_t)c->meta_t.meta.layers * (size_t)n, rb = (size_t)c->meta_t.row_bytes;
	int band = want_band && c->src.has_band, fresh = !t;
	if (fresh) { /* the bits, and the band's two bytes per bit (n <= the trace's checked tokens) */
		char what[96];
		snprintf(what, sizeof what, "reading %lld tokens of the trace", (long long)n);
		if (claim_memory(c->src.path ? c->src.path : "trace", what,
				 (uint64_t)rows * rb * (band ? 3 : 1) + 2, err))
			return NULL;
	}
	if (fresh && (t = calloc(1, sizeof *t))) {
		*t = c->meta_t;
		t->bits = trace_alloc(rows * rb + 1);
		t->band = band ? trace_alloc(2 * rows * rb + 1) : NULL;
		t->token_ids = NULL, t->inputs = NULL;
		if (!band)
			t->meta.has &= ~TRACE_HAS_MAGNITUDES;
	}
	if (t)
		t->meta.tokens = n, t->first_token = t0;
	int rc = !t || !t->bits || (band && !t->band) ? err_set(err, ERR_NOMEM, "out of memory reading "
							      "%lld tokens of the trace", (long long)n)
			 : c->src.read(c->src.ctx, t0, n, t->bits, t->band, err);
	if (rc && fresh) {
		trace_free(t);
		return NULL;
	}
	return rc ? NULL : t;
}

/* A trace of tokens [t0, t0 + n) read from c's source (band when it has one
 * and want_band). */
static struct trace *source_read(struct sim_cache *c, int64_t t0, int64_t n, int want_band,
				 struct lif_err *err)
{
	return source_read_into(c, NULL, t0, n, want_band, err);
}

/* The trace with its bits: c->t, or for a streamed cache the whole trace,
 * read on first use. */
static const struct trace *cache_trace(struct sim_cache *c, struct lif_err *err)
{
	if (!c->streaming)
		return c->t;
	pthread_mutex_lock(&c->wlock);
	if (!c->whole)
		c->whole = source_read(c, 0, c->meta_t.meta.tokens, 1, err);
	const struct trace *t = c->whole;
	pthread_mutex_unlock(&c->wlock);
	return t;
}

/* Under c->lock: a trace holding at least the first train tokens (train as
 * layout_train_tokens; 0: all), all a layout or the hot pinning learns from. */
static const struct trace *cache_prefix(struct sim_cache *c, int64_t train, struct lif_err *err)
{
	const int64_t T = c->meta_t.meta.tokens, n = train > 0 && train < T ? train : T;
	if (!c->streaming)
		return c->t;
	if (c->src.block >= T) /* one block: the whole trace, shared with the groups */
		return cache_trace(c, err);
	pthread_mutex_lock(&c->wlock);
	const struct trace *w = c->whole;
	pthread_mutex_unlock(&c->wlock);
	if (w)
		return w;
	if (!c->prefix || c->prefix->meta.tokens < n) {
		struct trace *p = source_read(c, 0, n, 0, err);
		if (!p)
			return NULL;
		trace_free(c->prefix);
		c->prefix = p;
	}
	return c->prefix;
}

/* Under c->lock: wait while another thread builds (tag, key), then claim it;
 * returns the slot to release (-1: none free, build anyway). *found is
 * re-looked up after every wait. */
static int inflight_claim(struct sim_cache *c, int tag, const void *key, size_t n,
			  const void *(*lookup)(struct sim_cache *, const void *), const void **found)
{
	for (;;) {
		*found = lookup(c, key);
		int busy = 0;
		for (int i = 0; i < c->nbuilding && !*found && !busy; i++)
			busy = c->building[i].key && c->building[i].tag == tag &&
			       !memcmp(c->building[i].key, key, n);
		if (*found || !busy)
			break;
		pthread_cond_wait(&c->built, &c->lock);
	}
	if (*found || c->nbuilding == BUILDING_MAX)
		return -1;
	c->building[c->nbuilding] = (struct inflight){tag, key};
	return c->nbuilding++;
}

/* Under c->lock: the build of slot is over (published or failed). */
static void inflight_release(struct sim_cache *c, int slot)
{
	if (slot < 0)
		return;
	c->building[slot].key = NULL;
	while (c->nbuilding > 0 && !c->building[c->nbuilding - 1].key)
		c->nbuilding--;
	pthread_cond_broadcast(&c->built);
}

void sim_cache_set_reference(struct sim_cache *c, int on)
{
	c->reference = on;
}

int sim_cache_add_predictor(struct sim_cache *c, const char *path, const struct predictor *p,
			    struct lif_err *err)
{
	pthread_mutex_lock(&c->lock);
	int rc = 0, i;
	for (i = 0; i < c->nlowrank && strcmp(c->lowrank_path[i], path); i++)
		;
	if (i == c->nlowrank && c->nlowrank == CACHE_MAX)
		rc = err_set(err, ERR_RANGE, "more than %d predictor files in one sweep", CACHE_MAX);
	else if (i == c->nlowrank) {
		snprintf(c->lowrank_path[i], sizeof c->lowrank_path[i], "%s", path);
		c->lowrank[c->nlowrank++] = p;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static const struct predictor *find_lowrank(struct sim_cache *c, const char *path)
{
	const struct predictor *p = NULL;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nlowrank && !p; i++)
		if (!strcmp(c->lowrank_path[i], path))
			p = c->lowrank[i];
	pthread_mutex_unlock(&c->lock);
	return p;
}

struct sim_cache *sim_cache_new(const struct trace *t, const struct llm_desc *m,
				struct lif_err *err)
{
	if (t->meta.layers != m->layers || t->meta.d_ffn != m->d_ffn) {
		err_set(err, ERR_INVAL, "the trace is %d layers x %d neurons but model %s is %d x %d",
			t->meta.layers, t->meta.d_ffn, m->name, m->layers, m->d_ffn);
		return NULL;
	}
	struct sim_cache *c = calloc(1, sizeof *c);
	if (!c) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	c->t = t;
	c->m = *m;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->built, NULL);
	return c;
}

struct sim_cache *sim_cache_new_stream(const struct trace *meta, const struct sim_source *src,
				       const struct llm_desc *m, struct lif_err *err)
{
	if (!src->read || src->block < 1)
		return err_set(err, ERR_INVAL, "a trace source needs a read and a block of at least 1 token"),
		       NULL;
	struct sim_cache *c = sim_cache_new(meta, m, err);
	if (!c)
		return NULL;
	c->streaming = 1;
	c->src = *src;
	c->meta_t = *meta;
	c->meta_t.bits = c->meta_t.band = NULL, c->meta_t.inputs = NULL, c->meta_t.token_ids = NULL;
	c->meta_t.first_token = 0;
	c->t = &c->meta_t;
	pthread_mutex_init(&c->wlock, NULL);
	return c;
}

int64_t sim_cache_stream_peak_bytes(struct sim_cache *c)
{
	pthread_mutex_lock(&c->lock);
	int64_t b = c->stream_peak;
	pthread_mutex_unlock(&c->lock);
	return b;
}

void sim_cache_free(struct sim_cache *c)
{
	if (!c)
		return;
	if (c->streaming) {
		trace_free(c->whole), trace_free(c->prefix);
		pthread_mutex_destroy(&c->wlock);
	}
	for (int i = 0; i < c->npred; i++)
		free(c->preds[i].owned);
	for (int i = 0; i < c->nlayout; i++)
		layout_free(c->layouts[i].layout);
	for (int i = 0; i < c->nfreq; i++)
		free(c->freqs[i].counts);
	for (int i = 0; i < c->ndec; i++)
		decisions_free(c->dec[i]);
	for (int i = 0; i < c->nmat; i++)
		matrix_free(c->mat[i]);
	free(c->hints), free(c->hkeys);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->built);
	free(c);
}

int sim_cache_hint(struct sim_cache *c, const struct sim_params *p, size_t n, struct lif_err *err)
{
	int rc = 0;
	pthread_mutex_lock(&c->lock);
	if (!c->hints && n > 0) {
		if (!(c->hints = malloc(n * sizeof *c->hints)))
			rc = err_set(err, ERR_NOMEM, "out of memory");
		else
			memcpy(c->hints, p, n * sizeof *p), c->nhints = n;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static const struct pred_entry *cache_pred(struct sim_cache *c, const struct pred_params *key,
					   int threads, struct lif_err *err)
{
	const struct pred_entry *found = NULL;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->npred && !found; i++)
		if (!memcmp(&c->preds[i].key, key, sizeof *key))
			found = &c->preds[i];
	if (!found && c->npred == CACHE_MAX)
		err_set(err, ERR_RANGE, "more than %d predictor configurations in one sweep", CACHE_MAX);
	else if (!found) { /* built under the lock: every point of it needs it next */
		struct pred_entry *e = &c->preds[c->npred];
		const struct trace *t = cache_trace(c, err);
		e->key = *key;
		if (!t)
			e->sets = NULL;
		else if (pred_by_kind(key->kind)->trace_sets) { /* no copy */
			e->sets = t->bits, e->owned = NULL;
			e->q = (struct pred_quality){0};
			pred_measure(t, e->sets, &e->q);
		} else
			e->sets = e->owned = pred_sets(t, key, threads, &e->q, err);
		if (e->sets)
			found = &c->preds[c->npred++];
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

/* What the bytes of a neuron depend on: dtype, weight bits and group. */
static int weight_format(const struct llm_desc *m)
{
	return m->dtype | m->weight_bits << 4 | m->weight_group << 8;
}

static const struct layout *cache_layout(struct sim_cache *c, const struct llm_desc *ms, int kind,
					 int bundle, int train, int threads, struct lif_err *err)
{
	const struct layout *found = NULL;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nlayout && !found; i++)
		if (c->layouts[i].kind == kind && c->layouts[i].bundle == bundle &&
		    c->layouts[i].format == weight_format(ms) &&
		    (c->layouts[i].train == train || !layout_by_kind(kind)->needs_trace))
			found = c->layouts[i].layout;
	if (!found && c->nlayout == CACHE_MAX)
		err_set(err, ERR_RANGE, "more than %d layouts in one sweep", CACHE_MAX);
	else if (!found) {
		const struct trace *t = layout_by_kind(kind)->needs_trace ? cache_prefix(c, train, err) : c->t;
		struct layout *l = t ? layout_new(kind, ms, t, bundle, train, threads, err) : NULL;
		if (l) {
			c->layouts[c->nlayout++] = (struct layout_entry){kind, bundle, train, weight_format(ms), l};
			found = l;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

static const int64_t *cache_freq(struct sim_cache *c, int train, struct lif_err *err)
{
	const int64_t *found = NULL;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nfreq && !found; i++)
		if (c->freqs[i].train == train)
			found = c->freqs[i].counts;
	if (!found && c->nfreq < CACHE_MAX) {
		const struct trace *t = cache_prefix(c, train, err);
		int64_t n = t && train < t->meta.tokens ? train : t ? t->meta.tokens : 0;
		int64_t *counts = t ? calloc((size_t)t->meta.layers * t->meta.d_ffn, sizeof *counts) : NULL;
		for (int l = 0; counts && l < t->meta.layers; l++) {
			struct actlist a;
			if (actlist_build(t, l, n, &a)) {
				free(counts);
				counts = NULL;
			} else {
				actlist_counts(&a, t->meta.d_ffn, counts + (size_t)l * t->meta.d_ffn);
			}
			actlist_free(&a);
		}
		if (counts)
			c->freqs[c->nfreq++] = (struct freq_entry){train, counts};
		found = counts;
	}
	if (!found)
		err_set(err, ERR_NOMEM, "out of memory counting neuron frequencies");
	pthread_mutex_unlock(&c->lock);
	return found;
}

/* ---------------------------------------------------------------- pinning */

/* Pinned neurons (layers, row_bytes) for a fraction of the FFN; counts per
 * neuron (hot policy). Returns the number pinned. */
static int64_t pin_neurons(const struct llm_desc *m, int policy, double frac,
			   const int64_t *counts, uint8_t *pinned, int32_t *order)
{
	const int d = m->d_ffn, rb = (d + 7) / 8;
	int64_t total = (int64_t)llround(frac * (double)m->layers * d), done = 0;
	memset(pinned, 0, (size_t)m->layers * rb);
	for (int l = 0; l < m->layers && done < total; l++) {
		int64_t want = policy == SIM_HYBRID_FIRST ? total - done
							  : (int64_t)llround(frac * d * (l + 1.0)) -
								    (int64_t)llround(frac * d * (double)l);
		want = want > d ? d : want;
		if (counts)
			layout_order_by_count(counts + (size_t)l * d, d, order);
		else
			for (int i = 0; i < d; i++)
				order[i] = i;
		for (int64_t k = 0; k < want; k++)
			trace_set_bit(pinned + (size_t)l * rb, order[k]);
		done += want;
	}
	return done;
}

/* ---------------------------------------------------------------- decisions */

/* Everything that decides what a point reads, copies and computes; the
 * device, the parallelism and the compute type only cost it. Points with
 * equal keys share one set of decisions (a sweep over parallelism or devices
 * simulates the windows once). Built with memset, compared with memcmp. */
struct decision_key {
	int strategy;
	struct pred_params pred;
	int window, layout, bundle, train, merge, format, pin_policy, keep_dense; /* weight_format */
	int64_t max_gap, naive_chunk;
	double pin_frac;
};

/* The decisions of a point, per token t and layer l. */
struct decisions {
	struct decision_key key;
	int64_t T;
	int L;
	int64_t *loaded, *copies, *ops, *window_rows, *useful, *bytes; /* (T) */
	int32_t *used_rows, *pred_rows; /* (T, L): matrix rows in use (+ pinned), predicted rows */
	int64_t *ext_start;  /* (T * L + 1): row (t, l)'s reads are [ext_start, ext_start + 1) */
	int64_t *ext_size;   /* distinct read sizes of a row ... */
	int32_t *ext_count;  /* ... and how many reads of that size */
	size_t n_ext, cap_ext;
	int64_t window_peak_rows;  /* sum over layers of the matrices' peaks */
	double hybrid_frac;
	struct pred_quality q;
};

static void decisions_free(struct decisions *d)
{
	if (!d)
		return;
	free(d->loaded), free(d->copies), free(d->ops), free(d->window_rows), free(d->useful);
	free(d->bytes), free(d->used_rows), free(d->pred_rows), free(d->ext_start);
	free(d->ext_size), free(d->ext_count);
	free(d);
}

static struct decisions *decisions_new(const struct decision_key *key, int64_t T, int L)
{
	struct decisions *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->key = *key, d->T = T, d->L = L;
	d->loaded = calloc(T, sizeof *d->loaded);
	d->copies = calloc(T, sizeof *d->copies);
	d->ops = calloc(T, sizeof *d->ops);
	d->window_rows = calloc(T, sizeof *d->window_rows);
	d->useful = calloc(T, sizeof *d->useful);
	d->bytes = calloc(T, sizeof *d->bytes);
	d->used_rows = calloc((size_t)T * L, sizeof *d->used_rows);
	d->pred_rows = calloc((size_t)T * L, sizeof *d->pred_rows);
	d->ext_start = calloc((size_t)T * L + 1, sizeof *d->ext_start);
	d->cap_ext = 1024;
	d->ext_size = malloc(d->cap_ext * sizeof *d->ext_size);
	d->ext_count = malloc(d->cap_ext * sizeof *d->ext_count);
	if (!d->loaded || !d->copies || !d->ops || !d->window_rows || !d->useful || !d->bytes ||
	    !d->used_rows || !d->pred_rows || !d->ext_start || !d->ext_size || !d->ext_count) {
		decisions_free(d);
		return NULL;
	}
	return d;
}

/* Room for `need` (size, count) pairs in d: the capacity at least doubles. */
static int grow_ext(struct decisions *d, size_t need)
{
	if (need <= d->cap_ext)
		return 0;
	size_t cap = need > 2 * d->cap_ext ? need : 2 * d->cap_ext;
	int64_t *s = realloc(d->ext_size, cap * sizeof *s);
	if (s)
		d->ext_size = s;
	int32_t *c = realloc(d->ext_count, cap * sizeof *c);
	if (c)
		d->ext_count = c;
	if (!s || !c)
		return ERR_NOMEM;
	d->cap_ext = cap;
	return 0;
}

/* Add `count` reads of `size` bytes to the row being filled (rows are filled
 * in (t, l) order, so the open row is [ext_start[row], n_ext)). */
static int decisions_add_reads(struct decisions *d, size_t row, int64_t size, int32_t count)
{
	for (size_t i = (size_t)d->ext_start[row]; i < d->n_ext; i++)
		if (d->ext_size[i] == size) {
			d->ext_count[i] += count;
			return 0;
		}
	if (grow_ext(d, d->n_ext + 1))
		return ERR_NOMEM;
	d->ext_size[d->n_ext] = size;
	d->ext_count[d->n_ext++] = count;
	return 0;
}

/* The planner's extents of row (t, l) as (size, count) pairs. */
static int record_reads(struct decisions *dc, size_t row, const struct planner *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		if (decisions_add_reads(dc, row, pl->ext[i].bytes, 1))
			return ERR_NOMEM;
	return 0;
}

/* One layer's reads over all tokens through the fast pass (sim/core/pass.h);
 * the matrix comes from cache_matrix. */
static int simulate_layer_fast(struct decisions *dc, const struct trace *t, const uint8_t *pred,
			       const uint8_t *pinned, const struct layout *layout, int l, int col,
			       struct lif_err *err)
{
	const int rb = t->row_bytes, L = dc->L;
	const struct decision_key *key = &dc->key;
	struct pass_layer *s = pass_layer_new(layout, l, t->meta.d_ffn, t->meta.tokens, key->window,
					      key->merge ? key->max_gap : -1,
					      pinned ? pinned + (size_t)l * rb : NULL, PASS_READS, err);
	if (!s)
		return err->code ? err->code : ERR_NOMEM;
	int rc = 0;
	for (int64_t tok = 0; !rc && tok < t->meta.tokens; tok++) {
		const size_t row = (size_t)tok * L + col;
		struct pass_out o;
		dc->ext_start[row] = (int64_t)dc->n_ext;
		rc = pass_layer_next(s, pred + ((size_t)l * t->meta.tokens + tok) * rb, &o, err);
		for (int i = 0; !rc && i < o.nsizes; i++)
			if (decisions_add_reads(dc, row, o.sizes[i], o.counts[i]))
				rc = err_set(err, ERR_NOMEM, "out of memory");
		dc->bytes[tok] += o.bytes_read;
		dc->useful[tok] += o.useful_bytes;
	}
	pass_layer_free(s);
	return rc;
}

/* One layer over all tokens through the stepper (sim/core/step.h): the
 * reference the fast pass is tested against. */
static int simulate_layer(struct decisions *dc, const struct trace *t, const uint8_t *pred,
			  const uint8_t *pinned, const struct layout *layout, int l, int col,
			  struct lif_err *err)
{
	const int rb = t->row_bytes, L = dc->L;
	const struct decision_key *key = &dc->key;
	struct step_layer *s = step_layer_new(layout, l, t->meta.tokens, key->window,
					      key->merge ? key->max_gap : -1,
					      pinned ? pinned + (size_t)l * rb : NULL, err);
	if (!s)
		return err->code ? err->code : ERR_NOMEM;
	int rc = 0;
	for (int64_t tok = 0; !rc && tok < t->meta.tokens; tok++) {
		const size_t row = (size_t)tok * L + col;
		struct step_out o;
		dc->ext_start[row] = (int64_t)dc->n_ext;
		rc = step_layer_next(s, pred + ((size_t)l * t->meta.tokens + tok) * rb, &o, err);
		if (!rc && record_reads(dc, row, o.plan))
			rc = err_set(err, ERR_NOMEM, "out of memory");
		if (rc)
			break;
		dc->bytes[tok] += o.plan->bytes_read;
		dc->useful[tok] += o.plan->useful_bytes;
		dc->loaded[tok] += o.nload;
		dc->used_rows[row] = o.used_rows;
		dc->pred_rows[row] = (int32_t)o.npred;
		dc->copies[tok] += o.nmoves;
		dc->ops[tok] += o.nload + o.ndie;
		dc->window_rows[tok] += o.window_rows;
	}
	dc->window_peak_rows += step_layer_peak_rows(s);
	step_layer_free(s);
	return rc;
}

/* One layer's decisions in a one-column decisions object. */
static struct decisions *simulate_one_layer(const struct decision_key *key, const struct trace *t,
					    const uint8_t *pred, const uint8_t *pinned,
					    const struct layout *layout, int l, int reference,
					    struct lif_err *err)
{
	struct decisions *q = decisions_new(key, t->meta.tokens, 1);
	int rc = !q ? err_set(err, ERR_NOMEM, "out of memory")
	       : reference ? simulate_layer(q, t, pred, pinned, layout, l, 0, err)
			   : simulate_layer_fast(q, t, pred, pinned, layout, l, 0, err);
	if (rc) {
		decisions_free(q);
		return NULL;
	}
	q->ext_start[t->meta.tokens] = (int64_t)q->n_ext;
	return q;
}

/* Append one-layer decisions q[l] (their rows 0..nb: tokens t0..t0 + nb)
 * into dc's (t, l) rows, in (t, l) order; each row is one layer's row, its
 * read sizes distinct already. */
static int append_rows(struct decisions *dc, const struct decisions *const *q, int64_t t0, int64_t nb)
{
	size_t need = dc->n_ext;
	for (int l = 0; l < dc->L; l++)
		need += q[l]->n_ext;
	if (grow_ext(dc, need))
		return ERR_NOMEM;
	for (int64_t k = 0; k < nb; k++) {
		const int64_t tok = t0 + k;
		for (int l = 0; l < dc->L; l++) {
			const struct decisions *ql = q[l];
			const size_t row = (size_t)tok * dc->L + l;
			const int64_t i0 = ql->ext_start[k], m = ql->ext_start[k + 1] - i0;
			dc->ext_start[row] = (int64_t)dc->n_ext;
			memcpy(dc->ext_size + dc->n_ext, ql->ext_size + i0, m * sizeof *dc->ext_size);
			memcpy(dc->ext_count + dc->n_ext, ql->ext_count + i0, m * sizeof *dc->ext_count);
			dc->n_ext += m;
			dc->used_rows[row] = ql->used_rows[k];
			dc->pred_rows[row] = ql->pred_rows[k];
			dc->loaded[tok] += ql->loaded[k], dc->copies[tok] += ql->copies[k];
			dc->ops[tok] += ql->ops[k], dc->window_rows[tok] += ql->window_rows[k];
			dc->useful[tok] += ql->useful[k], dc->bytes[tok] += ql->bytes[k];
		}
	}
	return 0;
}

/* Interleave whole-trace one-layer decisions into dc's (t, l) rows. */
static int merge_layers(struct decisions *dc, struct decisions *const *per)
{
	int rc = append_rows(dc, (const struct decisions *const *)per, 0, dc->T);
	if (rc)
		return rc;
	for (int l = 0; l < dc->L; l++)
		dc->window_peak_rows += per[l]->window_peak_rows;
	dc->ext_start[(size_t)dc->T * dc->L] = (int64_t)dc->n_ext;
	return 0;
}

/* The sparse strategy: layers are independent, so they run in parallel (a
 * sweep's points already do; then this runs on one thread). */
static int simulate_sparse(struct decisions *dc, const struct trace *t, const uint8_t *pred,
			   const uint8_t *pinned, const struct layout *layout, int reference,
			   int threads, struct lif_err *err)
{
	struct decisions **per = calloc(dc->L, sizeof *per);
	struct lif_err *errs = calloc(dc->L, sizeof *errs);
	int bad = !per || !errs, rc = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad) if (!bad)
	for (int l = 0; l < dc->L; l++)
		bad |= !(per[l] = simulate_one_layer(&dc->key, t, pred, pinned, layout, l, reference,
							   &errs[l]));
	for (int l = 0; bad && errs && l < dc->L; l++)
		if (errs[l].code) {
			rc = err_set(err, errs[l].code, "%s", errs[l].msg);
			break;
		}
	if (bad && !rc)
		rc = err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && merge_layers(dc, per))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (int l = 0; per && l < dc->L; l++)
		decisions_free(per[l]);
	free(per);
	free(errs);
	return rc;
}

/* The naive strategy: every non-resident byte, in sequential chunks,
 * recorded on layer 0's row of each token. */
static int simulate_naive(struct decisions *dc, const struct llm_desc *ms, int64_t resident,
			  struct lif_err *err)
{
	int64_t bytes = ms->total_bytes - resident, chunk = dc->key.naive_chunk;
	int64_t n = bytes > 0 ? (bytes + chunk - 1) / chunk : 0;
	for (int64_t tok = 0; tok < dc->T; tok++)
		for (int l = 0; l < dc->L; l++) {
			const size_t row = (size_t)tok * dc->L + l;
			dc->ext_start[row] = (int64_t)dc->n_ext;
			if (l == 0 && n > 1 && decisions_add_reads(dc, row, chunk, (int32_t)(n - 1)))
				return err_set(err, ERR_NOMEM, "out of memory");
			if (l == 0 && n > 0 && decisions_add_reads(dc, row, bytes - chunk * (n - 1), 1))
				return err_set(err, ERR_NOMEM, "out of memory");
			dc->used_rows[row] = dc->pred_rows[row] = ms->d_ffn;
		}
	dc->ext_start[(size_t)dc->T * dc->L] = (int64_t)dc->n_ext;
	for (int64_t tok = 0; tok < dc->T; tok++) {
		dc->bytes[tok] = dc->useful[tok] = bytes > 0 ? bytes : 0;
		dc->loaded[tok] = (int64_t)ms->layers * ms->d_ffn;
	}
	return 0;
}

/* The pinned neurons of key ((layers, row_bytes), NULL when none) and the
 * fraction of the FFN they are. */
static int make_pinned(struct sim_cache *c, const struct decision_key *key, uint8_t **pinned,
		       double *frac, struct lif_err *err)
{
	*pinned = NULL, *frac = 0;
	if (!(key->pin_frac > 0))
		return 0;
	const int64_t *counts = key->pin_policy == SIM_HYBRID_HOT ? cache_freq(c, key->train, err) : NULL;
	uint8_t *pin = calloc((size_t)c->m.layers * c->t->row_bytes, 1);
	int32_t *order = malloc(c->m.d_ffn * sizeof *order);
	int rc = 0;
	if (!pin || !order || (key->pin_policy == SIM_HYBRID_HOT && !counts)) {
		rc = err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
		free(pin);
	} else {
		*frac = (double)pin_neurons(&c->m, key->pin_policy, key->pin_frac, counts, pin, order) /
			((double)c->m.layers * c->m.d_ffn);
		*pinned = pin;
	}
	free(order);
	return rc;
}

/* ---------------------------------------------------------------- matrix */

/* What the memory manager does depends on the predicted sets, the pinned
 * neurons and the window only: the layouts, bundles and merging of a sweep
 * share it. Built with memset, compared with memcmp. */
struct matrix_key {
	struct pred_params pred;
	double pin_frac;
	int pin_policy, pin_train, window;
};

struct matrix {
	struct matrix_key key;
	int32_t *used_rows, *pred_rows;               /* (T, L) as in struct decisions */
	int64_t *loaded, *copies, *ops, *window_rows; /* (T) summed over layers */
	int64_t peak_rows;                            /* sum over layers of the peaks */
};

static void matrix_free(struct matrix *m)
{
	if (!m)
		return;
	free(m->used_rows), free(m->pred_rows);
	free(m->loaded), free(m->copies), free(m->ops), free(m->window_rows);
	free(m);
}

static void matrix_key_of(const struct decision_key *key, struct matrix_key *mk)
{
	memset(mk, 0, sizeof *mk);
	mk->pred = key->pred;
	mk->pin_frac = key->pin_frac, mk->pin_policy = key->pin_policy;
	mk->pin_train = key->pin_frac > 0 && key->pin_policy == SIM_HYBRID_HOT ? key->train : 0;
	mk->window = key->window;
}

/* One layer: rows (T, L) column l; per-token counts into per (4, T). */
static int matrix_layer(struct matrix *m, const struct trace *t, const uint8_t *pred,
			const uint8_t *pinned, int l, int64_t *per, struct lif_err *err)
{
	const int64_t T = t->meta.tokens;
	const int L = t->meta.layers, rb = t->row_bytes;
	struct pass_layer *s = pass_layer_new(NULL, l, t->meta.d_ffn, T, m->key.window, -1,
					      pinned ? pinned + (size_t)l * rb : NULL, PASS_MATRIX, err);
	if (!s)
		return err->code ? err->code : ERR_NOMEM;
	int rc = 0;
	for (int64_t tok = 0; !rc && tok < T; tok++) {
		struct pass_out o;
		rc = pass_layer_next(s, pred + ((size_t)l * T + tok) * rb, &o, err);
		m->used_rows[(size_t)tok * L + l] = o.used_rows;
		m->pred_rows[(size_t)tok * L + l] = (int32_t)o.npred;
		per[tok] = o.nload, per[T + tok] = o.nmoves;
		per[2 * T + tok] = o.nload + o.ndie, per[3 * T + tok] = o.window_rows;
	}
	per[4 * T] = pass_layer_peak_rows(s);
	pass_layer_free(s);
	return rc;
}

/* The matrix of mk over every layer (layers in parallel). */
static struct matrix *matrix_build(const struct trace *t, const struct matrix_key *mk,
				   const uint8_t *pred, const uint8_t *pinned, int threads,
				   struct lif_err *err)
{
	const int64_t T = t->meta.tokens;
	const int L = t->meta.layers;
	struct matrix *m = calloc(1, sizeof *m);
	int64_t *per = malloc(((size_t)4 * T + 1) * L * sizeof *per);
	struct lif_err *errs = calloc(L, sizeof *errs);
	int bad = !m || !per || !errs;
	if (m) {
		m->key = *mk;
		m->used_rows = malloc((size_t)T * L * sizeof *m->used_rows + 1);
		m->pred_rows = malloc((size_t)T * L * sizeof *m->pred_rows + 1);
		m->loaded = calloc(T + 1, sizeof *m->loaded), m->copies = calloc(T + 1, sizeof *m->copies);
		m->ops = calloc(T + 1, sizeof *m->ops), m->window_rows = calloc(T + 1, sizeof *m->window_rows);
		bad |= !m->used_rows || !m->pred_rows || !m->loaded || !m->copies || !m->ops ||
		       !m->window_rows;
	}
	const int nomem = bad;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad) if (!nomem)
	for (int l = 0; l < L; l++)
		bad |= nomem || matrix_layer(m, t, pred, pinned, l, per + (size_t)l * (4 * T + 1),
					     &errs[l]) != 0;
	for (int l = 0; !bad && l < L; l++) {
		const int64_t *q = per + (size_t)l * (4 * T + 1);
		for (int64_t tok = 0; tok < T; tok++) {
			m->loaded[tok] += q[tok], m->copies[tok] += q[T + tok];
			m->ops[tok] += q[2 * T + tok], m->window_rows[tok] += q[3 * T + tok];
		}
		m->peak_rows += q[4 * T];
	}
	for (int l = 0; bad && errs && l < L && !err->code; l++)
		if (errs[l].code)
			err_set(err, errs[l].code, "%s", errs[l].msg);
	if (bad && !err->code)
		err_set(err, ERR_NOMEM, "out of memory");
	free(per), free(errs);
	if (bad) {
		matrix_free(m);
		return NULL;
	}
	return m;
}

static const void *lookup_matrix(struct sim_cache *c, const void *key)
{
	for (int i = 0; i < c->nmat; i++)
		if (!memcmp(&c->mat[i]->key, key, sizeof c->mat[i]->key))
			return c->mat[i];
	return NULL;
}

/* The matrix of a sparse point's decisions, built on first use and shared;
 * *owned when the cache is full and the caller must free it. */
static const struct matrix *cache_matrix(struct sim_cache *c, const struct decision_key *key,
					 const uint8_t *pred, const uint8_t *pinned, int threads,
					 int *owned, struct lif_err *err)
{
	struct matrix_key mk;
	const struct matrix *found = NULL;
	matrix_key_of(key, &mk);
	*owned = 0;
	pthread_mutex_lock(&c->lock);
	int slot = inflight_claim(c, 1, &mk, sizeof mk, lookup_matrix, (const void **)&found);
	pthread_mutex_unlock(&c->lock);
	if (found)
		return found;
	struct matrix *m = matrix_build(BITS(c), &mk, pred, pinned, threads, err);
	pthread_mutex_lock(&c->lock);
	if (m && c->nmat < DECISIONS_MAX)
		c->mat[c->nmat++] = m;
	else
		*owned = m != NULL;
	inflight_release(c, slot);
	pthread_mutex_unlock(&c->lock);
	return m;
}

/* The sparse strategy's decisions: the reads per layout (simulate_sparse)
 * and the shared matrix, or everything through the reference stepper. */
static int decide_sparse(struct sim_cache *c, struct decisions *dc, const uint8_t *pred,
			 const uint8_t *pinned, const struct layout *lay, int threads,
			 struct lif_err *err)
{
	if (c->reference)
		return simulate_sparse(dc, BITS(c), pred, pinned, lay, 1, threads, err);
	int owned = 0;
	const struct matrix *m = cache_matrix(c, &dc->key, pred, pinned, threads, &owned, err);
	int rc = m ? simulate_sparse(dc, BITS(c), pred, pinned, lay, 0, threads, err)
		   : (err->code ? err->code : ERR_NOMEM);
	const size_t rows = (size_t)dc->T * dc->L;
	if (!rc) {
		memcpy(dc->used_rows, m->used_rows, rows * sizeof *dc->used_rows);
		memcpy(dc->pred_rows, m->pred_rows, rows * sizeof *dc->pred_rows);
		memcpy(dc->loaded, m->loaded, dc->T * sizeof *dc->loaded);
		memcpy(dc->copies, m->copies, dc->T * sizeof *dc->copies);
		memcpy(dc->ops, m->ops, dc->T * sizeof *dc->ops);
		memcpy(dc->window_rows, m->window_rows, dc->T * sizeof *dc->window_rows);
		dc->window_peak_rows = m->peak_rows;
	}
	if (owned)
		matrix_free((struct matrix *)m);
	return rc;
}

/* Cached for the sweep: give back the arrays' growth room. */
static void decisions_shrink(struct decisions *dc)
{
	int64_t *sz = dc->n_ext ? realloc(dc->ext_size, dc->n_ext * sizeof *sz) : NULL;
	int32_t *ct = dc->n_ext ? realloc(dc->ext_count, dc->n_ext * sizeof *ct) : NULL;
	dc->ext_size = sz ? sz : dc->ext_size, dc->ext_count = ct ? ct : dc->ext_count;
	dc->cap_ext = dc->n_ext ? dc->n_ext : dc->cap_ext; /* no more reads are added */
}

/* Build the decisions of key (not cached). */
static struct decisions *decide(struct sim_cache *c, const struct decision_key *key,
				const struct llm_desc *ms, int threads, struct lif_err *err)
{
	struct decisions *dc = decisions_new(key, c->t->meta.tokens, c->m.layers);
	uint8_t *pinned = NULL;
	int rc = dc ? make_pinned(c, key, &pinned, &dc->hybrid_frac, err)
		    : err_set(err, ERR_NOMEM, "out of memory");
	if (!rc && key->strategy == SIM_SPARSE) {
		const struct pred_entry *pe = cache_pred(c, &key->pred, threads, err);
		const struct layout *lay =
			pe ? cache_layout(c, ms, key->layout, key->bundle, key->train, threads, err) : NULL;
		rc = pe && lay ? decide_sparse(c, dc, pe->sets, pinned, lay, threads, err)
			       : (err->code ? err->code : ERR_NOMEM);
		if (pe)
			dc->q = pe->q;
	} else if (!rc) {
		/* flash holds the model at its stored dtype */
		int64_t resident = (key->keep_dense ? ms->embed_bytes + ms->attn_bytes : 0) +
				   (int64_t)llround(dc->hybrid_frac * (double)ms->ffn_bytes);
		rc = simulate_naive(dc, ms, resident, err);
		dc->q = (struct pred_quality){1, 0, 1, 0};
	}
	free(pinned);
	if (rc) {
		decisions_free(dc);
		return NULL;
	}
	decisions_shrink(dc);
	return dc;
}

/* ---------------------------------------------------------------- groups */

static int point_models(const struct sim_cache *c, const struct sim_params *p, struct llm_desc *ms,
			struct llm_desc *mc, struct lif_err *err);
static void point_key(struct sim_cache *c, const struct sim_params *p, double pin_frac, int format,
		      struct decision_key *key);
static const void *lookup_decisions(struct sim_cache *c, const void *key);

/* A hinted point's decision key and model as stored (ok = 0: not a point
 * that groups: not sparse, hybrid = auto, or invalid). A low-rank point's
 * key names its predictors, which are registered as points run: it is made
 * again at each use. */
struct hint_key {
	int ok, lowrank;
	struct decision_key key;
	struct llm_desc ms;
};

static void hint_key_make(struct sim_cache *c, const struct sim_params *p, struct hint_key *h)
{
	struct llm_desc hc;
	struct lif_err e = {0};
	double frac = 0;
	memset(h, 0, sizeof *h);
	h->lowrank = pred_by_kind(p->predictor)->trained;
	if (p->strategy != SIM_SPARSE || !strcmp(p->hybrid, "auto") ||
	    conf_parse_double(p->hybrid, &frac) || sim_check_params(p, &c->m, &e) ||
	    point_models(c, p, &h->ms, &hc, &e))
		return;
	point_key(c, p, frac, weight_format(&h->ms), &h->key);
	h->ok = 1;
}

/* The hinted points' keys, made once (NULL: out of memory). */
static const struct hint_key *hint_keys(struct sim_cache *c)
{
	pthread_mutex_lock(&c->lock);
	struct hint_key *k = c->hkeys;
	pthread_mutex_unlock(&c->lock);
	if (k)
		return k;
	if (!(k = malloc(c->nhints * sizeof *k)))
		return NULL;
	for (size_t h = 0; h < c->nhints; h++)
		hint_key_make(c, &c->hints[h], &k[h]);
	pthread_mutex_lock(&c->lock);
	if (!c->hkeys)
		c->hkeys = k, k = NULL;
	pthread_mutex_unlock(&c->lock);
	free(k);
	return c->hkeys;
}

/* One member of a group: a decision key, the model as stored (its layout's
 * bytes), its layout, the inflight slot it holds and what it builds. */
struct member {
	struct decision_key key;
	struct llm_desc ms;
	const struct layout *layout;
	int slot, wi;                /* wi: index of its window in the group's windows */
	struct decisions *dc;
	struct decisions **per;      /* (L) one-layer decisions */
};

/* Do a and b share the predicted sets, the pinned neurons and the window
 * (the memory manager: everything but the layout and the reads)? A group is
 * one window: its members' one-layer decisions are held until they merge,
 * so a group of every window would hold them for the whole sweep at once. */
static int same_group(const struct decision_key *a, const struct decision_key *b, int any_window)
{
	struct matrix_key ma, mb;
	matrix_key_of(a, &ma), matrix_key_of(b, &mb);
	if (any_window) /* streamed: a group is every window (nothing is held per layer) */
		ma.window = mb.window = 0;
	return a->strategy == SIM_SPARSE && b->strategy == SIM_SPARSE && !memcmp(&ma, &mb, sizeof ma);
}

/* One layer of every member: one window pass (the matrix and the need set)
 * per distinct window, every layout's reads planned from its window's need. */
static int group_layer(const struct trace *t, const uint8_t *pred, const uint8_t *pinned,
		       struct member *g, int n, const int *windows, int nw, int l,
		       struct lif_err *err)
{
	const int64_t T = t->meta.tokens;
	const int rb = t->row_bytes;
	struct pass_layer **win = calloc(nw, sizeof *win);
	struct pass_reads **rd = calloc(n, sizeof *rd);
	int rc = win && rd ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	for (int w = 0; !rc && w < nw; w++)
		if (!(win[w] = pass_layer_new(NULL, l, t->meta.d_ffn, T, windows[w], -1,
					      pinned ? pinned + (size_t)l * rb : NULL, PASS_MATRIX, err)))
			rc = err->code ? err->code : ERR_NOMEM;
	for (int i = 0; !rc && i < n; i++)
		if (!(rd[i] = pass_reads_new(g[i].layout, l, g[i].key.merge ? g[i].key.max_gap : -1, err)) ||
		    !(g[i].per[l] = decisions_new(&g[i].key, T, 1)))
			rc = err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
	struct pass_runs runs;
	for (int64_t tok = 0; !rc && tok < T; tok++)
		for (int w = 0; !rc && w < nw; w++) {
			struct pass_out o, r;
			rc = pass_layer_next(win[w], pred + ((size_t)l * T + tok) * rb, &o, err);
			const uint64_t *need = pass_layer_need(win[w]);
			runs.valid = 0; /* a new need set: its runs are counted once */
			for (int i = 0; !rc && i < n; i++) {
				if (g[i].wi != w)
					continue;
				struct decisions *q = g[i].per[l];
				q->ext_start[tok] = (int64_t)q->n_ext;
				rc = pass_reads_plan_shared(rd[i], need, o.nload, &runs, &r, err);
				for (int k = 0; !rc && k < r.nsizes; k++)
					if (decisions_add_reads(q, tok, r.sizes[k], r.counts[k]))
						rc = err_set(err, ERR_NOMEM, "out of memory");
				q->bytes[tok] = r.bytes_read, q->useful[tok] = r.useful_bytes;
				q->loaded[tok] = o.nload, q->copies[tok] = o.nmoves;
				q->ops[tok] = o.nload + o.ndie, q->window_rows[tok] = o.window_rows;
				q->used_rows[tok] = o.used_rows, q->pred_rows[tok] = (int32_t)o.npred;
			}
		}
	for (int i = 0; !rc && i < n; i++) {
		struct decisions *q = g[i].per[l];
		q->ext_start[T] = (int64_t)q->n_ext;
		q->window_peak_rows = pass_layer_peak_rows(win[g[i].wi]);
	}
	for (int w = 0; win && w < nw; w++)
		pass_layer_free(win[w]);
	for (int i = 0; rd && i < n; i++)
		pass_reads_free(rd[i]);
	free(win), free(rd);
	return rc;
}

#define GROUP_WINDOWS 64 /* distinct windows one group build handles */

/* Does the group build of key stream its trace by blocks? Not when the
 * trace is one block: then it is read whole once (cache_trace) and every
 * group decides from it as an unstreamed cache does, sharing the predicted
 * sets, grouped by window (streamed, a group takes every window, whose
 * one-layer block decisions would then be the whole decisions twice). */
static int group_streams(const struct sim_cache *c, const struct decision_key *key)
{
	return c->streaming && c->src.block < c->t->meta.tokens &&
	       !pred_by_kind(key->pred.kind)->trained;
}

/* The group of key: key itself (g[0]), then every hinted point that shares
 * its predicted sets, pinned neurons and window (same_group; streamed: any
 * of GROUP_WINDOWS windows), once each. Returns the members in g. */
static int group_gather(struct sim_cache *c, const struct decision_key *key, const struct llm_desc *ms,
			struct member *g)
{
	const int any = group_streams(c, key);
	int windows[GROUP_WINDOWS] = {key->window}, nw = 1;
	int n = 0;
	g[n++] = (struct member){.key = *key, .ms = *ms, .slot = -1};
	const struct hint_key *hk = hint_keys(c); /* hints are read-only once set */
	for (size_t h = 0; hk && h < c->nhints; h++) {
		struct hint_key again;
		const struct hint_key *x = &hk[h];
		if (x->lowrank) /* its predictors may have been registered since */
			hint_key_make(c, &c->hints[h], &again), x = &again;
		int dup = !x->ok || !same_group(&x->key, key, any);
		for (int i = 0; i < n && !dup; i++)
			dup = !memcmp(&g[i].key, &x->key, sizeof x->key);
		int w = 0;
		while (!dup && w < nw && windows[w] != x->key.window)
			w++;
		if (!dup && w == nw && nw == GROUP_WINDOWS)
			dup = 1; /* a later group takes it */
		else if (!dup && w == nw)
			windows[nw++] = x->key.window;
		if (!dup)
			g[n++] = (struct member){.key = x->key, .ms = x->ms, .slot = -1};
	}
	return n;
}

/* Claim g[1..n-1] for building, skipping what is built or in flight (key,
 * g[0], is claimed by the caller). Returns the members kept, compacted. */
static int group_claim(struct sim_cache *c, struct member *g, int n)
{
	pthread_mutex_lock(&c->lock);
	int m = 1;
	for (int i = 1; i < n; i++) {
		int busy = lookup_decisions(c, &g[i].key) != NULL || c->nbuilding == BUILDING_MAX;
		for (int b = 0; b < c->nbuilding && !busy; b++)
			busy = c->building[b].key && c->building[b].tag == 0 &&
			       !memcmp(c->building[b].key, &g[i].key, sizeof g[i].key);
		if (busy)
			continue;
		g[m] = g[i];
		c->building[c->nbuilding] = (struct inflight){0, &g[m].key};
		g[m++].slot = c->nbuilding++;
	}
	pthread_mutex_unlock(&c->lock);
	return m;
}

/* Each member's layout, decisions and per-layer slots, and the distinct
 * windows of the group (windows[0..*nw-1]; member i's is windows[g[i].wi]). */
static int group_prepare(struct sim_cache *c, struct member *g, int n, int *windows, int *nw, int threads,
			 struct lif_err *err)
{
	const int L = c->m.layers;
	int rc = 0;
	for (int i = 0; !rc && i < n; i++) {
		struct member *x = &g[i];
		x->layout = cache_layout(c, &x->ms, x->key.layout, x->key.bundle, x->key.train, threads, err);
		x->dc = x->layout ? decisions_new(&x->key, c->t->meta.tokens, L) : NULL;
		x->per = x->dc ? calloc(L, sizeof *x->per) : NULL;
		if (!x->per)
			rc = err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
		int w = 0;
		while (w < *nw && windows[w] != x->key.window)
			w++;
		if (!rc && w == *nw && *nw == GROUP_WINDOWS)
			rc = err_set(err, ERR_RANGE, "more than %d windows in one sweep", *nw);
		else if (!rc && w == *nw)
			windows[(*nw)++] = x->key.window;
		x->wi = w;
	}
	return rc;
}

/* Every layer of every member, layers in parallel over the threads. */
static int group_layers(struct sim_cache *c, const struct pred_entry *pe, const uint8_t *pinned,
			struct member *g, int n, const int *windows, int nw, int threads, struct lif_err *err)
{
	const int L = c->m.layers;
	struct lif_err *errs = calloc(L, sizeof *errs);
	int bad = !errs;
	const int nomem = bad;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad) if (!nomem)
	for (int l = 0; l < L; l++)
		bad |= nomem || group_layer(BITS(c), pe->sets, pinned, g, n, windows, nw, l, &errs[l]) != 0;
	for (int l = 0; bad && errs && l < L && !err->code; l++)
		if (errs[l].code)
			err_set(err, errs[l].code, "%s", errs[l].msg);
	free(errs);
	return bad ? (err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory")) : 0;
}

/* Merge each member's layers into its decisions (when rc is 0) and free them. */
static int group_merge(struct sim_cache *c, struct member *g, int n, int rc, double hybrid_frac,
		       const struct pred_quality *q, int merged, struct lif_err *err)
{
	for (int i = 0; i < n; i++) {
		struct member *x = &g[i];
		if (!rc && !merged && merge_layers(x->dc, x->per))
			rc = err_set(err, ERR_NOMEM, "out of memory");
		for (int l = 0; x->per && l < c->m.layers; l++)
			decisions_free(x->per[l]);
		free(x->per);
		if (x->dc) {
			x->dc->hybrid_frac = hybrid_frac;
			x->dc->q = q ? *q : x->dc->q;
			decisions_shrink(x->dc);
		}
	}
	return rc;
}

/* Publish g[1..n-1]'s decisions (when rc is 0) and release their claims. */
static void group_publish(struct sim_cache *c, struct member *g, int n, int rc)
{
	pthread_mutex_lock(&c->lock);
	for (int i = 1; i < n; i++) {
		if (!rc && c->ndec < DECISIONS_MAX && !lookup_decisions(c, &g[i].key))
			c->dec[c->ndec++] = g[i].dc;
		else
			decisions_free(g[i].dc);
		inflight_release(c, g[i].slot);
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------- streaming */

/* One layer of a streamed group: what it carries from block to block. */
struct stream_layer {
	struct pass_layer **win;   /* (nw) the window passes */
	struct pass_reads **rd;    /* (n) each member's read planner */
	struct decisions **blk;    /* (n) each member's decisions of the block (one column) */
	uint8_t *pred;             /* (block, row_bytes) predicted sets, unless the trace's */
	int64_t cnt[4], shortfall; /* prediction quality (pred_count) */
	struct lif_err err;
};

static void stream_layers_free(struct stream_layer *S, int L, int n, int nw)
{
	for (int l = 0; S && l < L; l++) {
		for (int w = 0; S[l].win && w < nw; w++)
			pass_layer_free(S[l].win[w]);
		for (int i = 0; S[l].rd && i < n; i++)
			pass_reads_free(S[l].rd[i]);
		for (int i = 0; S[l].blk && i < n; i++)
			decisions_free(S[l].blk[i]);
		free(S[l].win), free(S[l].rd), free(S[l].blk), free(S[l].pred);
	}
	free(S);
}

/* Each layer's passes, planners and block decisions; *bytes: what they take. */
static struct stream_layer *stream_layers_new(const struct sim_cache *c, const uint8_t *pinned,
					      const struct member *g, int n, const int *windows,
					      int nw, int64_t B, int own_pred, int64_t *bytes,
					      struct lif_err *err)
{
	const int L = c->m.layers, rb = c->t->row_bytes, d = c->t->meta.d_ffn;
	const int64_t T = c->t->meta.tokens;
	struct stream_layer *S = calloc(L, sizeof *S);
	int rc = S ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	*bytes = (int64_t)L * (int64_t)sizeof *S;
	for (int l = 0; !rc && l < L; l++) {
		struct stream_layer *x = &S[l];
		x->win = calloc(nw, sizeof *x->win), x->rd = calloc(n, sizeof *x->rd);
		x->blk = calloc(n, sizeof *x->blk);
		x->pred = own_pred ? malloc((size_t)B * rb + 1) : NULL;
		if (!x->win || !x->rd || !x->blk || (own_pred && !x->pred))
			rc = err_set(err, ERR_NOMEM, "out of memory");
		*bytes += (int64_t)(nw + 2 * n) * (int64_t)sizeof(void *) + (own_pred ? B * rb : 0);
		for (int w = 0; !rc && w < nw; w++) {
			if (!(x->win[w] = pass_layer_new(NULL, l, d, T, windows[w], -1,
							 pinned ? pinned + (size_t)l * rb : NULL, PASS_MATRIX, err)))
				rc = err->code ? err->code : ERR_NOMEM;
			else
				*bytes += pass_layer_bytes(x->win[w]);
		}
		for (int i = 0; !rc && i < n; i++) {
			if (!(x->rd[i] = pass_reads_new(g[i].layout, l, g[i].key.merge ? g[i].key.max_gap : -1, err)) ||
			    !(x->blk[i] = decisions_new(&g[i].key, B, 1)))
				rc = err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
			else /* the block's columns (the read sizes grow as needed, by a block's worth) */
				*bytes += B * (int64_t)(6 * sizeof(int64_t) + 2 * sizeof(int32_t) + sizeof(int64_t)) +
					  (int64_t)x->blk[i]->cap_ext * (int64_t)(sizeof(int64_t) + sizeof(int32_t));
		}
	}
	if (rc) {
		stream_layers_free(S, L, n, nw);
		return NULL;
	}
	return S;
}

/* One layer of one block (tokens t0.. of the view v): its predicted sets,
 * their quality, every window's pass and every member's reads of the block. */
static int stream_layer_block(struct stream_layer *x, const struct trace *v, const struct pred_params *pp,
			      const struct member *g, int n, int nw, int l, struct lif_err *err)
{
	const int rb = v->row_bytes;
	const int64_t nb = v->meta.tokens;
	const uint8_t *act = v->bits + (size_t)l * nb * rb, *pred = act;
	const struct pred_ops *ops = pred_by_kind(pp->kind);
	int rc = 0;
	if (!ops->trace_sets) {
		rc = ops->predict_layer(v, pp, l, x->pred, &x->shortfall, err);
		pred = x->pred;
	}
	if (!rc)
		pred_count(act, pred, (size_t)nb * rb, x->cnt);
	for (int i = 0; i < n; i++)
		x->blk[i]->n_ext = 0;
	struct pass_runs runs;
	for (int64_t tok = 0; !rc && tok < nb; tok++)
		for (int w = 0; !rc && w < nw; w++) {
			struct pass_out o, r;
			rc = pass_layer_next(x->win[w], pred + (size_t)tok * rb, &o, err);
			const uint64_t *need = pass_layer_need(x->win[w]);
			runs.valid = 0; /* a new need set: its runs are counted once */
			for (int i = 0; !rc && i < n; i++) {
				if (g[i].wi != w)
					continue;
				struct decisions *q = x->blk[i];
				q->ext_start[tok] = (int64_t)q->n_ext;
				rc = pass_reads_plan_shared(x->rd[i], need, o.nload, &runs, &r, err);
				for (int k = 0; !rc && k < r.nsizes; k++)
					if (decisions_add_reads(q, tok, r.sizes[k], r.counts[k]))
						rc = err_set(err, ERR_NOMEM, "out of memory");
				q->bytes[tok] = r.bytes_read, q->useful[tok] = r.useful_bytes;
				q->loaded[tok] = o.nload, q->copies[tok] = o.nmoves;
				q->ops[tok] = o.nload + o.ndie, q->window_rows[tok] = o.window_rows;
				q->used_rows[tok] = o.used_rows, q->pred_rows[tok] = (int32_t)o.npred;
			}
		}
	for (int i = 0; !rc && i < n; i++)
		x->blk[i]->ext_start[nb] = (int64_t)x->blk[i]->n_ext;
	return rc;
}

/* Append a block's rows (tokens t0..t0 + nb, every layer, in (t, l) order
 * as merge_layers) to member i's decisions. */
static int stream_append(struct decisions *dc, const struct stream_layer *S, int i, int64_t t0, int64_t nb)
{
	const struct decisions *q[TRACE_MAX_LAYERS];
	for (int l = 0; l < dc->L; l++)
		q[l] = S[l].blk[i];
	return append_rows(dc, q, t0, nb);
}

/* Every member's decisions in one pass over the trace by blocks of
 * c->src.block tokens: each block is read, then each layer (in parallel)
 * predicts, passes every window and plans every member's reads, carrying
 * its state to the next block; the block's rows are appended to the
 * members' decisions in (t, l) order. *q: the predictor's quality. */
static int group_stream(struct sim_cache *c, const struct pred_params *pp, const uint8_t *pinned,
			struct member *g, int n, const int *windows, int nw, int threads,
			struct pred_quality *q, struct lif_err *err)
{
	const int L = c->m.layers;
	const int64_t T = c->t->meta.tokens, B = c->src.block < T ? c->src.block : (T > 0 ? T : 1);
	const struct pred_ops *ops = pred_by_kind(pp->kind);
	if (!ops)
		return err_set(err, ERR_INVAL, "unknown predictor");
	if (!(pp->recall >= 0 && pp->recall <= 1 && pp->fp_rate >= 0 && pp->fp_rate <= 1))
		return err_set(err, ERR_INVAL, "predictor recall and fp_rate must be in [0, 1]");
	int64_t bytes = 0;
	struct stream_layer *S = stream_layers_new(c, pinned, g, n, windows, nw, B, !ops->trace_sets,
						   &bytes, err);
	if (!S)
		return err->code ? err->code : ERR_NOMEM;
	int rc = 0;
	struct trace *v = NULL; /* the block: its buffers are read into again */
	for (int64_t t0 = 0; !rc && t0 < T; t0 += B) {
		const int64_t nb = T - t0 < B ? T - t0 : B;
		struct trace *got = source_read_into(c, v, t0, nb, ops->needs_band, err);
		if (!got) {
			rc = err->code ? err->code : ERR_NOMEM;
			break;
		}
		v = got;
		if (t0 == 0) /* the block buffers */
			bytes += (int64_t)L * nb * v->row_bytes * (v->band ? 3 : 1);
		int bad = 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : bad)
		for (int l = 0; l < L; l++)
			bad |= stream_layer_block(&S[l], v, pp, g, n, nw, l, &S[l].err) != 0;
		for (int l = 0; bad && l < L && !rc; l++)
			if (S[l].err.code)
				rc = err_set(err, S[l].err.code, "%s", S[l].err.msg);
		if (bad && !rc)
			rc = err_set(err, ERR_NOMEM, "out of memory");
		int nomem = 0, nm = rc ? 0 : n; /* members appended in parallel: each its own */
#pragma omp parallel for num_threads(threads) schedule(dynamic) reduction(| : nomem)
		for (int i = 0; i < nm; i++)
			nomem |= stream_append(g[i].dc, S, i, t0, nb) != 0;
		if (!rc && nomem)
			rc = err_set(err, ERR_NOMEM, "out of memory");
	}
	trace_free(v);
	int64_t cnt[4] = {0}, shortfall = 0;
	for (int l = 0; !rc && l < L; l++) {
		for (int k = 0; k < 4; k++)
			cnt[k] += S[l].cnt[k];
		shortfall += S[l].shortfall;
		for (int i = 0; i < n; i++)
			g[i].dc->window_peak_rows += pass_layer_peak_rows(S[l].win[g[i].wi]);
	}
	for (int i = 0; !rc && i < n; i++)
		g[i].dc->ext_start[(size_t)T * L] = (int64_t)g[i].dc->n_ext;
	if (!rc) {
		*q = (struct pred_quality){0};
		pred_quality_of(c->t, cnt, q);
		q->fp_shortfall = ops->has_rates ? shortfall : 0;
	}
	stream_layers_free(S, L, n, nw);
	pthread_mutex_lock(&c->lock);
	c->stream_peak = bytes > c->stream_peak ? bytes : c->stream_peak;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Build key's decisions with every hinted point's that shares its predicted
 * sets, pinned neurons and window (same_group) and that no one has built or
 * is building: one window pass over the trace's bits (the matrix, the need
 * sets) for all their layouts, layers in parallel. key is claimed by the
 * caller; the others are claimed here and published with it. Returns key's
 * decisions (the caller owns them when the cache is full). */
static struct decisions *decide_group(struct sim_cache *c, const struct decision_key *key,
				      const struct llm_desc *ms, int threads, struct lif_err *err)
{
	struct member *g = calloc(c->nhints + 1, sizeof *g);
	int windows[GROUP_WINDOWS], nw = 0;
	if (!g) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	int n = group_claim(c, g, group_gather(c, key, ms, g));
	uint8_t *pinned = NULL;
	double hybrid_frac = 0;
	int rc = make_pinned(c, key, &pinned, &hybrid_frac, err);
	const int stream = group_streams(c, key);
	struct pred_quality q = {0};
	const struct pred_entry *pe = rc || stream ? NULL : cache_pred(c, &key->pred, threads, err);
	if ((pe || stream) && !rc)
		rc = group_prepare(c, g, n, windows, &nw, threads, err);
	if (!rc && !pe && !stream)
		rc = err->code ? err->code : ERR_NOMEM;
	if (!rc && stream)
		rc = group_stream(c, &key->pred, pinned, g, n, windows, nw, threads, &q, err);
	else if (!rc)
		rc = group_layers(c, pe, pinned, g, n, windows, nw, threads, err);
	rc = group_merge(c, g, n, rc, hybrid_frac, stream ? &q : pe ? &pe->q : NULL, stream, err);
	free(pinned);
	group_publish(c, g, n, rc); /* key's own goes back to the caller */
	struct decisions *d = g[0].dc;
	free(g);
	if (rc) {
		decisions_free(d);
		return NULL;
	}
	return d;
}

/* Under c->lock: the decisions of key, if built. */
static const void *lookup_decisions(struct sim_cache *c, const void *key)
{
	for (int i = 0; i < c->ndec; i++)
		if (!memcmp(&c->dec[i]->key, key, sizeof c->dec[i]->key))
			return c->dec[i];
	return NULL;
}

/* The decisions of key, built on first use and shared. */
static const struct decisions *cache_decisions(struct sim_cache *c, const struct decision_key *key,
					       const struct llm_desc *ms, int threads,
					       struct lif_err *err)
{
	const struct decisions *found = NULL;
	pthread_mutex_lock(&c->lock);
	int slot = inflight_claim(c, 0, key, sizeof *key, lookup_decisions, (const void **)&found);
	pthread_mutex_unlock(&c->lock);
	if (found)
		return found;
	/* build outside the lock (points with other keys proceed), then publish */
	struct decisions *d = c->nhints && !c->reference && key->strategy == SIM_SPARSE
				      ? decide_group(c, key, ms, threads, err)
				      : decide(c, key, ms, threads, err);
	pthread_mutex_lock(&c->lock);
	found = lookup_decisions(c, key); /* another thread may have won a race */
	if (d && !found && c->ndec < DECISIONS_MAX) {
		c->dec[c->ndec++] = d;
		found = d;
		d = NULL;
	}
	inflight_release(c, slot);
	pthread_mutex_unlock(&c->lock);
	if (!d && !found)
		return NULL;
	if (d && !found)
		return d; /* cache full: caller owns it (see sim_run) */
	decisions_free(d);
	return found;
}

/* ---------------------------------------------------------------- costs */

/* flash_extent_ns remembered by (bytes, parallelism): a point asks for the
 * same few read sizes over and over (the same values, so the same sums). */
#define EXT_MEMO 4096
struct ext_memo {
	int64_t bytes[EXT_MEMO]; /* 0: empty */
	int par[EXT_MEMO];
	double ns[EXT_MEMO];
};

static double memo_extent_ns(struct ext_memo *m, const struct flash_model *f, int64_t bytes,
			     int par)
{
	uint64_t h = ((uint64_t)bytes * 0x9E3779B97F4A7C15ull ^ (uint64_t)par * 0xBF58476D1CE4E5B9ull);
	size_t i = (size_t)(h >> 52) % EXT_MEMO;
	if (m->bytes[i] == bytes && m->par[i] == par && bytes > 0)
		return m->ns[i];
	double ns = flash_extent_ns(f, bytes, par);
	m->bytes[i] = bytes, m->par[i] = par, m->ns[i] = ns;
	return ns;
}

/* Flash time of row (t, l)'s reads, with at most as many outstanding reads
 * as there are reads. */
static double row_io_ns(const struct decisions *dc, size_t row, const struct flash_model *f,
			int parallelism, struct ext_memo *memo)
{
	int64_t n = 0;
	double ns = 0;
	for (int64_t i = dc->ext_start[row]; i < dc->ext_start[row + 1]; i++)
		n += dc->ext_count[i];
	int par = n < parallelism ? (int)n : parallelism;
	for (int64_t i = dc->ext_start[row]; i < dc->ext_start[row + 1]; i++)
		ns += dc->ext_count[i] * memo_extent_ns(memo, f, dc->ext_size[i], par > 0 ? par : 1);
	return ns;
}

/* One token's time with I/O and compute overlapped (sim/core/timeline.h):
 * per layer, its share of attention, its FFN rows and its predictor, and on
 * the reader its reads and the conversion of its loaded rows (place_l, NULL:
 * none); the rest of the dense work and the memory manager's other work
 * after the last layer. ms. */
static double pipelined_ms(const struct compute_model *cm, const struct llm_desc *mc,
			   const struct compute_cost *cc, const int64_t *rows, const int *ranks,
			   const double *io_l, const double *place_l, double *cpu_l, int L, int depth,
			   double mem_ns)
{
	for (int l = 0; l < L; l++)
		cpu_l[l] = cc->attn_ns / L + compute_ffn_layer_ns(cm, mc, rows[l]) +
			   compute_pred_layer_ns(cm, mc, ranks[l]);
	double tail = cc->dense_ns - cc->attn_ns + mem_ns;
	return timeline_token_cpu_ns(TIMELINE_PIPELINED, io_l, place_l, cpu_l, L, depth, tail,
				     compute_cpu_contended(cm)) / 1e6;
}

/* The sums cost() keeps over the tokens after warm-up, in this order. */
enum { COST_NSUMS = 10 };

/* out's per-token means over n tokens from the sums (io, mem, compute and
 * total ms; bytes, reads, loaded rows, bytes copied, window rows, useful
 * bytes), all = the FFN rows of the model; tot: the n tokens' totals, sorted
 * here for the percentiles. */
static void cost_summary(const double *sum, int64_t n, double all, int overlap, double *tot,
			 struct sim_result *out)
{
	out->tokens = n;
	out->io_ms = sum[0] / n, out->mem_ms = sum[1] / n, out->compute_ms = sum[2] / n;
	out->total_ms = overlap == TIMELINE_PIPELINED ? sum[3] / n
						      : out->io_ms + out->mem_ms + out->compute_ms;
	out->bytes_read_per_token = sum[4] / n;
	out->useful_bytes_per_token = sum[9] / n;
	out->reads_per_token = sum[5] / n;
	out->mean_read_bytes = sum[5] > 0 ? sum[4] / sum[5] : 0;
	out->load_frac_per_token = sum[6] / n / all;
	out->window_frac = sum[8] / n / all;
	out->mem_bytes_copied_per_token = sum[7] / n;
	qsort(tot, n, sizeof *tot, util_cmp_double);
	out->total_ms_p50 = tot[(int64_t)ceil(0.50 * n) - 1];
	out->total_ms_p99 = tot[(int64_t)ceil(0.99 * n) - 1];
}

/* Per-token costs of the decisions on a device; means and percentiles. */
static int cost(const struct decisions *dc, const struct llm_desc *ms, const struct llm_desc *mc,
		const struct device *dev, const struct compute_model *cm, const struct sim_params *p,
		struct sim_result *out, struct sim_token *per_token, struct lif_err *err)
{
	/* rows stored in one dtype and held in another are converted as placed
	 * (models/dram.h); charged when the device has a measured rate */
	const int converts = ms->dtype != mc->dtype && dev->dram.convert_bytes_per_s > 0;
	const int64_t T = dc->T, w0 = p->warmup_tokens < T ? p->warmup_tokens : 0;
	const int L = dc->L;
	const int64_t row_bytes = mc->bundle_bytes;
	double *tot = malloc(T * sizeof *tot);
	int64_t *rows = malloc(L * sizeof *rows);
	int *ranks = malloc(L * sizeof *ranks);
	double *io_l = malloc(L * sizeof *io_l), *cpu_l = malloc(L * sizeof *cpu_l);
	double *place_l = malloc(L * sizeof *place_l), *rbytes_l = malloc(L * sizeof *rbytes_l);
	struct ext_memo *memo = calloc(1, sizeof *memo);
	if (!tot || !rows || !ranks || !memo || !io_l || !cpu_l || !place_l || !rbytes_l) {
		free(tot), free(rows), free(ranks), free(memo), free(io_l), free(cpu_l);
		free(place_l), free(rbytes_l);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	for (int l = 0; l < L; l++)
		ranks[l] = sim_pred_rank(p, L, l);
	const double naive_h2d =
		(double)mc->total_bytes - (p->naive_keep_dense ? (double)(mc->embed_bytes + mc->attn_bytes) : 0) -
		(double)llround(dc->hybrid_frac * (double)mc->ffn_bytes);
	double s_io = 0, s_mem = 0, s_cmp = 0, s_tot = 0, s_b = 0, s_r = 0, s_ld = 0, s_cp = 0, s_w = 0, s_u = 0;
	int rc = 0;
	for (int64_t tok = 0; tok < T && !rc; tok++) {
		struct compute_cost cc;
		double io = 0, rbytes = 0;
		int64_t reads = 0;
		for (int l = 0; l < L; l++) {
			const size_t row = (size_t)tok * L + l;
			rows[l] = p->ffn_rows == SIM_ROWS_WINDOW ? dc->used_rows[row] : dc->pred_rows[row];
			io_l[l] = row_io_ns(dc, row, &dev->flash, p->parallelism, memo);
			io += io_l[l];
			rbytes_l[l] = 0;
			for (int64_t i = dc->ext_start[row]; i < dc->ext_start[row + 1]; i++) {
				reads += dc->ext_count[i];
				rbytes_l[l] += (double)dc->ext_count[i] * dc->ext_size[i];
			}
			rbytes += rbytes_l[l];
		}
		rc = compute_token_cost(cm, mc, rows, ranks, L, p->context_tokens + tok, &cc, err);
		double copied = (double)dc->copies[tok] * row_bytes;
		/* host-to-GPU (a GPU backend charges it): the loaded rows; naive: every
		 * non-resident weight, at DRAM's dtype */
		double h2d = p->strategy == SIM_NAIVE ? naive_h2d : (double)dc->loaded[tok] * row_bytes;
		double mem = dram_time_ns(&dev->dram, copied, (double)dc->ops[tok], h2d);
		/* the conversion of the loaded rows; on the pipelined timeline each
		 * layer's share (by its bytes read: the decisions keep loaded rows per
		 * token) runs on the reader after the layer's reads */
		double conv = dram_convert_ns(&dev->dram, (double)dc->loaded[tok] * ms->bundle_bytes, converts);
		for (int l = 0; l < L; l++)
			place_l[l] = conv > 0 && rbytes > 0 ? conv * rbytes_l[l] / rbytes : 0;
		double io_ms = io / 1e6, mem_ms = (mem + conv) / 1e6, cmp_ms = cc.total_ns / 1e6;
		tot[tok] = io_ms + mem_ms + cmp_ms;
		if (!rc && p->overlap == TIMELINE_PIPELINED)
			tot[tok] = pipelined_ms(cm, mc, &cc, rows, ranks, io_l, conv > 0 ? place_l : NULL, cpu_l,
						L, p->pipeline_depth, mem);
		if (per_token)
			per_token[tok] = (struct sim_token){io_ms, mem_ms, cmp_ms, tot[tok], dc->bytes[tok],
							     reads, dc->loaded[tok]};
		if (tok < w0)
			continue;
		s_io += io_ms, s_mem += mem_ms, s_cmp += cmp_ms, s_tot += tot[tok];
		s_b += dc->bytes[tok], s_r += reads, s_ld += dc->loaded[tok];
		s_cp += copied, s_w += dc->window_rows[tok], s_u += dc->useful[tok];
	}
	const double sums[COST_NSUMS] = {s_io, s_mem, s_cmp, s_tot, s_b, s_r, s_ld, s_cp, s_w, s_u};
	cost_summary(sums, T - w0, (double)L * mc->d_ffn, p->overlap, tot + w0, out);
	free(tot), free(rows), free(ranks), free(memo), free(io_l), free(cpu_l), free(place_l), free(rbytes_l);
	return rc;
}

/* A GPU backend (models/dram.h): the bytes moved host-to-GPU per token and
 * the VRAM the point needs, refused when over the device's capacity. Run
 * after the point's result (dram_* and load_frac_per_token) is final. */
static int gpu_use(const struct sim_cache *c, const struct device *dev, const struct sim_params *p,
		   struct sim_result *out, struct lif_err *err)
{
	if (!dram_is_gpu(&dev->dram))
		return 0;
	struct llm_desc ms, mc;
	int rc = point_models(c, p, &ms, &mc, err);
	if (rc)
		return rc;
	const int64_t kv_dim = (int64_t)llm_head_dim(&mc) * mc.kv_heads;
	out->vram_kv_bytes = 2 * (int64_t)mc.layers * kv_dim * (p->context_tokens + c->t->meta.tokens) *
			     mc.weight_bytes;
	if (p->strategy == SIM_NAIVE) {
		/* everything not resident moves in for every token, at DRAM's dtype */
		int64_t moved = mc.total_bytes - out->dram_embed_bytes - out->dram_attn_bytes -
				out->dram_pinned_bytes;
		out->vram_stage_bytes = moved > 0 ? moved : 0;
		out->h2d_bytes_per_token = (double)out->vram_stage_bytes;
	} else {
		out->vram_stage_bytes = 0;
		out->h2d_bytes_per_token =
			out->load_frac_per_token * mc.layers * mc.d_ffn * (double)mc.bundle_bytes;
	}
	out->vram_bytes = out->dram_bytes + out->vram_kv_bytes + out->vram_stage_bytes;
	out->vram_capacity_bytes = dev->dram.vram_bytes;
	if (out->vram_bytes <= out->vram_capacity_bytes)
		return 0;
	const double G = 1e9;
	return err_set(err, ERR_NOSPACE,
		       "device %s: needs %.3f GB of VRAM (embeddings %.3f, attention %.3f, predictor "
		       "%.3f, pinned FFN %.3f, loaded rows %.3f, KV cache %.3f, moved in per token "
		       "%.3f) but [dram] vram_bytes is %.3f GB: over by %.3f GB",
		       dev->name, out->vram_bytes / G, out->dram_embed_bytes / G,
		       out->dram_attn_bytes / G, out->dram_predictor_bytes / G,
		       out->dram_pinned_bytes / G, out->dram_window_bytes / G, out->vram_kv_bytes / G,
		       out->vram_stage_bytes / G, out->vram_capacity_bytes / G,
		       (out->vram_bytes - out->vram_capacity_bytes) / G);
}

int sim_pred_rank(const struct sim_params *p, int layers, int l)
{
	if (p->strategy == SIM_NAIVE || !pred_by_kind(p->predictor)->has_model)
		return 0;
	if (p->predictor_last_layers > 0 && l >= layers - p->predictor_last_layers)
		return p->predictor_rank_last;
	return p->predictor_rank;
}

int sim_check_params(const struct sim_params *p, const struct llm_desc *m, struct lif_err *err)
{
	double h;
	if (strcmp(p->hybrid, "auto") && (conf_parse_double(p->hybrid, &h) || h < 0 || h > 1))
		return err_set(err, ERR_INVAL, "[sim] hybrid: '%s' is neither auto nor a fraction in [0, 1]",
			       p->hybrid);
	if (!strcmp(p->hybrid, "auto") && !p->dram_budget && !(p->dram_budget_frac > 0))
		return err_set(err, ERR_INVAL, "[sim] hybrid = auto needs dram_budget or dram_budget_frac");
	if (p->bundle > m->d_ffn)
		return err_set(err, ERR_INVAL, "[sim] bundle: %d is more than d_ffn = %d", p->bundle, m->d_ffn);
	if (p->predictor_last_layers > m->layers)
		return err_set(err, ERR_INVAL, "[sim] predictor_last_layers: %d is more than the model's %d layers",
			       p->predictor_last_layers, m->layers);
	return 0;
}

/* The budget in bytes; dram_budget_frac is a fraction of the model as held
 * in DRAM (m: the DRAM dtype and format), so the same fraction means the
 * same share of the model whatever the storage and compute dtypes. */
static int64_t budget_bytes(const struct sim_params *p, const struct llm_desc *m)
{
	if (p->dram_budget)
		return p->dram_budget;
	return p->dram_budget_frac > 0 ? (int64_t)(p->dram_budget_frac * (double)m->total_bytes) : 0;
}

/* DRAM by component (DRAM dtype mc). */
static void dram_use(const struct decisions *dc, const struct llm_desc *mc,
		     const struct sim_params *p, struct sim_result *out)
{
	int naive = p->strategy == SIM_NAIVE;
	int dense = !naive || p->naive_keep_dense;
	out->dram_embed_bytes = dense ? mc->embed_bytes : 0;
	out->dram_attn_bytes = dense ? mc->attn_bytes : 0;
	/* each layer's predictor: r x (d_model + d_ffn) weights in DRAM's dtype */
	out->dram_predictor_bytes = 0;
	for (int l = 0; l < mc->layers; l++)
		out->dram_predictor_bytes += (int64_t)sim_pred_rank(p, mc->layers, l) *
					     (mc->d_model + mc->d_ffn) * mc->weight_bytes;
	out->dram_ffn_bytes = mc->ffn_bytes;
	out->dram_pinned_bytes = (int64_t)llround(dc->hybrid_frac * (double)mc->ffn_bytes);
	out->dram_window_bytes = dc->window_peak_rows * mc->bundle_bytes;
	out->dram_bytes = out->dram_embed_bytes + out->dram_attn_bytes + out->dram_predictor_bytes +
			  out->dram_pinned_bytes + out->dram_window_bytes;
}

/* The model as stored on flash (ms) and as held in DRAM (mc) for a point. */
static int point_models(const struct sim_cache *c, const struct sim_params *p, struct llm_desc *ms,
			struct llm_desc *mc, struct lif_err *err)
{
	*ms = c->m;
	ms->params = 0;
	if (p->dtype < LLM_NDTYPES)
		ms->dtype = p->dtype;
	ms->weight_bits = p->bits;
	ms->weight_group = p->bits ? 32 << p->group : 0;
	int rc = llm_derive(ms, c->m.name, err);
	*mc = *ms;
	if (!rc && p->compute_dtype < LLM_NDTYPES) {
		mc->dtype = p->compute_dtype;
		rc = llm_derive(mc, c->m.name, err);
	}
	return rc;
}

/* The decision key of a point (what decides, not what costs). */
static void point_key(struct sim_cache *c, const struct sim_params *p, double pin_frac, int format,
		      struct decision_key *key)
{
	memset(key, 0, sizeof *key);
	key->strategy = p->strategy;
	key->pin_frac = pin_frac;
	key->pin_policy = pin_frac > 0 ? p->hybrid_policy : 0;
	key->train = (pin_frac > 0 && p->hybrid_policy == SIM_HYBRID_HOT) ||
				     (p->strategy == SIM_SPARSE && layout_by_kind(p->layout)->needs_trace)
			     ? p->layout_train_tokens
			     : 0;
	key->format = format;
	if (p->strategy == SIM_NAIVE) {
		key->keep_dense = p->naive_keep_dense;
		key->naive_chunk = p->naive_chunk;
		return;
	}
	key->pred.kind = p->predictor;
	const struct pred_ops *pred = pred_by_kind(p->predictor);
	if (pred->has_rates) {
		key->pred.recall = p->recall, key->pred.fp_rate = p->fp_rate;
		key->pred.seed = (uint64_t)p->predictor_seed;
	}
	if (pred->trained)
		key->pred.lowrank = find_lowrank(c, p->predictor_file);
	key->window = p->window, key->layout = p->layout, key->bundle = p->bundle;
	key->merge = p->merge, key->max_gap = p->merge ? p->max_gap : -1;
}

int sim_inputs_get(struct sim_cache *c, const struct sim_params *p, double pin_frac,
		   int threads, struct sim_inputs *out, struct lif_err *err)
{
	struct decision_key key;
	memset(out, 0, sizeof *out);
	if (p->strategy != SIM_SPARSE)
		return err_set(err, ERR_INVAL, "only the sparse strategy has per-neuron decisions");
	int rc = point_models(c, p, &out->stored, &out->dram, err);
	if (rc)
		return rc;
	point_key(c, p, pin_frac, weight_format(&out->stored), &key);
	const struct pred_entry *pe = cache_pred(c, &key.pred, threads, err);
	out->layout = pe ? cache_layout(c, &out->stored, key.layout, key.bundle, key.train, threads, err)
			 : NULL;
	if (!out->layout)
		return err->code ? err->code : ERR_NOMEM;
	out->pred = pe->sets;
	out->window = key.window;
	out->max_gap = key.max_gap;
	return make_pinned(c, &key, &out->pinned, &out->hybrid_frac, err);
}

void sim_inputs_release(struct sim_inputs *in)
{
	free(in->pinned);
	in->pinned = NULL;
}

/* One simulation with a given pinned fraction. */
static int run_once(struct sim_cache *c, const struct device *dev, const struct sim_params *p,
		    double pin_frac, int threads, struct sim_result *out, struct sim_token *per_token,
		    struct lif_err *err)
{
	struct llm_desc ms, mc; /* as stored on flash; in DRAM */
	struct decision_key key;
	int rc = point_models(c, p, &ms, &mc, err);
	if (rc)
		return rc;
	struct compute_model cm = dev->compute;
	cm.kernel = p->kernel;
	if (compute_check_model(&cm, &mc, err)) {
		err_prefix(err, "device %s", dev->name);
		return err->code;
	}
	point_key(c, p, pin_frac, weight_format(&ms), &key);
	const struct decisions *dc = cache_decisions(c, &key, &ms, threads, err);
	if (!dc)
		return err->code ? err->code : ERR_NOMEM;
	memset(out, 0, sizeof *out);
	rc = cost(dc, &ms, &mc, dev, &cm, p, out, per_token, err);
	out->hybrid_frac = dc->hybrid_frac;
	out->pin_frac = pin_frac;
	out->recall = dc->q.recall, out->fp_rate = dc->q.fp_rate;
	out->predicted_frac = dc->q.predicted_frac;
	dram_use(dc, &mc, p, out);
	out->dram_budget_bytes = budget_bytes(p, &mc);
	pthread_mutex_lock(&c->lock);
	int owned = 1;
	for (int i = 0; i < c->ndec; i++)
		owned &= c->dec[i] != dc;
	pthread_mutex_unlock(&c->lock);
	if (owned)
		decisions_free((struct decisions *)dc);
	return rc;
}

static int over_budget(const struct sim_result *o, struct lif_err *err)
{
	const double G = 1e9;
	return err_set(err, ERR_NOSPACE,
		       "needs %.3f GB of DRAM (embeddings %.3f, attention %.3f, predictor %.3f, "
		       "pinned FFN %.3f, window %.3f) but the DRAM budget is %.3f GB: over by %.3f GB",
		       o->dram_bytes / G, o->dram_embed_bytes / G, o->dram_attn_bytes / G,
		       o->dram_predictor_bytes / G, o->dram_pinned_bytes / G, o->dram_window_bytes / G,
		       o->dram_budget_bytes / G, (o->dram_bytes - o->dram_budget_bytes) / G);
}

/* Speculative decoding (sim/core/spec.h): what run_spec carries from one
 * verification step to the next. */
struct spec_run {
	struct sim_inputs in;
	int have_in;                   /* in must be released */
	const struct llm_desc *mc;     /* the target as held in DRAM (in.dram) */
	struct llm_desc draft;         /* the draft model in the compute dtype */
	struct compute_model cm, dm;   /* the target's (batch: positions verified) and the draft's */
	int L, n_max;                  /* layers; positions a step verifies at most (lambda + 1) */
	int64_t T, rb, w0;             /* tokens, row bytes, warm-up tokens */
	struct spec_layer **sl;        /* (L) */
	int64_t *rows, *full;          /* (L) FFN rows computed: target, draft (all) */
	int *ranks;                    /* (L) predictor ranks */
	double *tot;                   /* (T) ms per emitted token */
	struct ext_memo *memo;
	/* sums over the steps after warm-up */
	double s_io, s_mem, s_cmp, s_b, s_r, s_ld, s_cp, s_w;
	int64_t emitted;
};

static void spec_run_free(struct spec_run *R)
{
	for (int l = 0; R->sl && l < R->L; l++)
		spec_layer_free(R->sl[l]);
	free(R->sl), free(R->rows), free(R->full), free(R->ranks), free(R->tot), free(R->memo);
	if (R->have_in)
		sim_inputs_release(&R->in);
}

/* The inputs, the draft model, the cost models and one spec_layer per layer. */
static int spec_run_init(struct spec_run *R, struct sim_cache *c, const struct device *dev,
			 const struct sim_params *p, double pin_frac, int threads, struct lif_err *err)
{
	memset(R, 0, sizeof *R);
	int rc = sim_inputs_get(c, p, pin_frac, threads, &R->in, err);
	if (rc)
		return rc;
	R->have_in = 1;
	R->mc = &R->in.dram;
	R->draft = p->draft;
	if (p->compute_dtype < LLM_NDTYPES)
		R->draft.dtype = p->compute_dtype;
	R->draft.params = 0;
	rc = llm_derive(&R->draft, "draft_model", err);
	R->cm = R->dm = dev->compute;
	R->cm.kernel = R->dm.kernel = p->kernel;
	R->dm.batch = 1;
	if (!rc && compute_check_model(&R->cm, R->mc, err))
		err_prefix(err, "device %s", dev->name), rc = err->code;
	R->L = R->mc->layers, R->n_max = p->spec_lambda + 1;
	R->T = c->t->meta.tokens, R->rb = c->t->row_bytes;
	R->w0 = p->warmup_tokens < R->T ? p->warmup_tokens : 0;
	R->sl = calloc(R->L, sizeof *R->sl);
	R->rows = malloc(R->L * sizeof *R->rows), R->full = malloc(R->L * sizeof *R->full);
	R->ranks = malloc(R->L * sizeof *R->ranks);
	R->tot = malloc(R->T * sizeof *R->tot);
	R->memo = calloc(1, sizeof *R->memo);
	if (!rc && (!R->sl || !R->rows || !R->full || !R->ranks || !R->tot || !R->memo))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (int l = 0; !rc && l < R->L; l++) {
		const uint8_t *pin = R->in.pinned ? R->in.pinned + (size_t)l * R->rb : NULL;
		if (!(R->sl[l] = spec_layer_new(R->in.layout, l, R->in.window, R->in.max_gap, pin, err)))
			rc = err->code ? err->code : ERR_NOMEM;
		R->ranks[l] = sim_pred_rank(p, R->L, l);
		R->full[l] = R->draft.d_ffn;
	}
	return rc;
}

/* One verification step at token t (step number `step`): the union of the
 * n positions' predicted sets read and costed, the target's pass over n
 * positions and the draft's n - 1 tokens computed; its costs shared by the
 * tokens it emits (*emitted). */
static int spec_step(struct spec_run *R, const struct device *dev, const struct sim_params *p, int64_t t,
		     int64_t step, struct sim_token *per_token, int *emitted, struct lif_err *err)
{
	const int n = R->T - t < R->n_max ? (int)(R->T - t) : R->n_max;
	const int e = *emitted = 1 + spec_accepted(p->spec_alpha, n - 1, (uint64_t)p->predictor_seed, step);
	double io = 0, bytes = 0, reads = 0, loaded = 0, copies = 0, ops = 0, wrows = 0;
	int rc = 0;
	for (int l = 0; !rc && l < R->L; l++) {
		const uint8_t *r[17];
		for (int j = 0; j < n; j++)
			r[j] = R->in.pred + ((size_t)l * R->T + t + j) * R->rb;
		struct spec_out so;
		if ((rc = spec_layer_step(R->sl[l], r, n, e, &so, err)))
			break;
		const struct planner *pl = so.plan;
		int par = pl->n < (size_t)p->parallelism ? (int)pl->n : p->parallelism;
		for (size_t i = 0; i < pl->n; i++)
			io += memo_extent_ns(R->memo, &dev->flash, pl->ext[i].bytes, par > 0 ? par : 1);
		bytes += pl->bytes_read, reads += pl->n, loaded += so.nload;
		copies += so.nmoves, ops += so.nload + so.ndie, wrows += so.window_rows;
		R->rows[l] = p->ffn_rows == SIM_ROWS_WINDOW ? so.used_rows : so.nunion;
	}
	struct compute_cost vc = {0}, dc = {0};
	R->cm.batch = n;
	if (!rc)
		rc = compute_token_cost(&R->cm, R->mc, R->rows, R->ranks, R->L, p->context_tokens + t + n - 1,
					&vc, err);
	if (!rc && n > 1)
		rc = compute_token_cost(&R->dm, &R->draft, R->full, NULL, R->draft.layers, p->context_tokens + t,
					&dc, err);
	if (rc)
		return rc;
	const int64_t bundle = R->mc->bundle_bytes;
	double mem = dram_time_ns(&dev->dram, copies * bundle, ops, loaded * bundle) +
		     dram_convert_ns(&dev->dram, loaded * (double)R->in.stored.bundle_bytes,
				     R->in.stored.dtype != R->mc->dtype);
	double cmp = vc.total_ns + (n - 1) * dc.total_ns;
	for (int j = 0; j < e; j++) {
		R->tot[t + j] = (io + mem + cmp) / e / 1e6;
		if (per_token) /* a step's costs shared by the tokens it emits */
			per_token[t + j] = (struct sim_token){
				io / e / 1e6, mem / e / 1e6, cmp / e / 1e6, R->tot[t + j], (int64_t)(bytes / e),
				(int64_t)(reads / e), (int64_t)(loaded / e)};
	}
	if (t >= R->w0) {
		R->s_io += io, R->s_mem += mem, R->s_cmp += cmp, R->s_b += bytes, R->s_r += reads;
		R->s_ld += loaded, R->s_cp += copies * bundle, R->s_w += wrows * e;
		R->emitted += e;
	}
	return 0;
}

/* The per-emitted-token result and the DRAM held, from R's sums. */
static int spec_result(struct spec_run *R, const struct sim_params *p, struct sim_result *out,
		       struct lif_err *err)
{
	const struct llm_desc *mc = R->mc;
	int64_t peak = 0;
	for (int l = 0; l < R->L; l++)
		peak += spec_layer_peak_rows(R->sl[l]);
	if (R->emitted == 0)
		return err_set(err, ERR_INVAL, "speculative decoding: no token after the %lld warm-up tokens",
			       (long long)R->w0);
	const double e = (double)R->emitted, all = (double)R->L * mc->d_ffn;
	memset(out, 0, sizeof *out);
	out->tokens = R->emitted;
	out->io_ms = R->s_io / e / 1e6, out->mem_ms = R->s_mem / e / 1e6;
	out->compute_ms = R->s_cmp / e / 1e6;
	out->total_ms = out->io_ms + out->mem_ms + out->compute_ms;
	out->bytes_read_per_token = R->s_b / e, out->reads_per_token = R->s_r / e;
	out->mean_read_bytes = R->s_r > 0 ? R->s_b / R->s_r : 0;
	out->load_frac_per_token = R->s_ld / e / all;
	out->window_frac = R->s_w / e / all;
	out->mem_bytes_copied_per_token = R->s_cp / e;
	int64_t m = R->T - R->w0;
	qsort(R->tot + R->w0, m, sizeof *R->tot, util_cmp_double);
	out->total_ms_p50 = R->tot[R->w0 + (int64_t)ceil(0.50 * m) - 1];
	out->total_ms_p99 = R->tot[R->w0 + (int64_t)ceil(0.99 * m) - 1];
	out->hybrid_frac = out->pin_frac = R->in.hybrid_frac;
	out->dram_embed_bytes = mc->embed_bytes, out->dram_attn_bytes = mc->attn_bytes;
	for (int l = 0; l < R->L; l++)
		out->dram_predictor_bytes += (int64_t)R->ranks[l] * (mc->d_model + mc->d_ffn) * mc->weight_bytes;
	out->dram_ffn_bytes = mc->ffn_bytes;
	out->dram_pinned_bytes = (int64_t)llround(R->in.hybrid_frac * (double)mc->ffn_bytes);
	out->dram_window_bytes = peak * mc->bundle_bytes;
	out->dram_bytes = out->dram_embed_bytes + out->dram_attn_bytes + out->dram_predictor_bytes +
			  out->dram_pinned_bytes + out->dram_window_bytes + R->draft.total_bytes;
	out->dram_budget_bytes = budget_bytes(p, mc);
	return 0;
}

/* Speculative decoding: verification steps over the trace, costed per
 * emitted token. pin_frac: a fraction (hybrid = auto is refused). */
static int run_spec(struct sim_cache *c, const struct device *dev, const struct sim_params *p,
		    double pin_frac, int threads, struct sim_result *out, struct sim_token *per_token,
		    struct lif_err *err)
{
	struct spec_run R;
	int rc = spec_run_init(&R, c, dev, p, pin_frac, threads, err);
	for (int64_t t = 0, step = 0; !rc && t < R.T; step++) {
		int emitted = 0;
		rc = spec_step(&R, dev, p, t, step, per_token, &emitted, err);
		t += emitted;
	}
	if (!rc)
		rc = spec_result(&R, p, out, err);
	spec_run_free(&R);
	return rc;
}

int sim_run(struct sim_cache *c, const struct device *dev, const struct sim_params *p,
	    int threads, struct sim_result *out, struct sim_token *per_token, struct lif_err *err)
{
	if (sim_check_params(p, &c->m, err))
		return ERR_INVAL;
	double frac = 0;
	int rc;
	if (p->spec_lambda > 0) {
		if (p->strategy != SIM_SPARSE || !strcmp(p->hybrid, "auto") || p->draft.layers <= 0 ||
		    p->overlap != TIMELINE_NONE)
			return err_set(err, ERR_INVAL,
				       "[sim] spec_lambda > 0 needs strategy = sparse, a hybrid fraction "
				       "(not auto), overlap = none and a draft_model");
		conf_parse_double(p->hybrid, &frac);
		rc = run_spec(c, dev, p, frac, threads, out, per_token, err);
	} else if (strcmp(p->hybrid, "auto")) {
		conf_parse_double(p->hybrid, &frac);
		rc = run_once(c, dev, p, frac, threads, out, per_token, err);
	} else {
		/* pass 1 without pinning measures the window; then pin what the
		 * budget leaves, shrinking until it fits (pinning only shrinks the window) */
		rc = run_once(c, dev, p, 0, threads, out, NULL, err);
		double ffn_bytes = (double)out->dram_ffn_bytes;
		for (int it = 0; !rc && it < 4; it++) {
			if (it > 0 && out->dram_bytes <= out->dram_budget_bytes)
				break;
			frac += (double)(out->dram_budget_bytes - out->dram_bytes) / ffn_bytes;
			frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
			rc = run_once(c, dev, p, frac, threads, out, per_token, err);
		}
	}
	if (!rc && out->dram_budget_bytes > 0 && out->dram_bytes > out->dram_budget_bytes)
		rc = over_budget(out, err);
	if (!rc)
		rc = gpu_use(c, dev, p, out, err);
	return rc;
}
