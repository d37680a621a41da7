#include "sim/sim.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim/memman.h"
#include "sim/planner.h"

#define O(f) CONF_OFF(struct sim_params, f)
const struct conf_opt sim_opts[] = {
	{"sim", "strategy", CONF_ENUM, O(strategy), 0, 0, "sparse", CONF_NOBOUNDS, "sparse|naive",
	 "sparse: load predicted neurons on demand; naive: read every non-resident weight per token"},
	{"sim", "predictor", CONF_ENUM, O(predictor), 0, 0, "oracle", CONF_NOBOUNDS, PRED_CHOICES,
	 "which neurons a token loads (sim/pred.h)"},
	{"sim", "recall", CONF_DOUBLE, O(recall), 0, 0, "0.95", 0, 1, NULL,
	 "modeled/random predictor: fraction of active neurons predicted (paper: about 0.95)"},
	{"sim", "fp_rate", CONF_DOUBLE, O(fp_rate), 0, 0, "0.07", 0, 1, NULL,
	 "modeled/random predictor: fraction of inactive neurons predicted (paper: about 0.07)"},
	{"sim", "predictor_seed", CONF_I64, O(predictor_seed), 0, 0, "1", 0, 9.2e18, NULL,
	 "seed of the predictor's mistakes (shared by points, so they differ only in their knobs)"},
	{"sim", "predictor_rank", CONF_INT, O(predictor_rank), 0, 0, "128", 0, 1 << 20, NULL,
	 "rank of the low-rank predictor whose DRAM is counted (0: none)"},
	{"sim", "window", CONF_INT, O(window), 0, 0, "5", 0, 1 << 20, NULL,
	 "k: neurons predicted in the k previous tokens stay resident (0: no reuse)"},
	{"sim", "layout", CONF_ENUM, O(layout), 0, 0, "rowcol", CONF_NOBOUNDS, LAYOUT_CHOICES,
	 "placement of neurons on flash (sim/layout.h)"},
	{"sim", "bundle", CONF_INT, O(bundle), 0, 0, "1", 1, 1 << 20, NULL,
	 "neurons per read unit in the layout"},
	{"sim", "layout_train_tokens", CONF_INT, O(layout_train_tokens), 0, 0, "100", 1, 1 << 30, NULL,
	 "first tokens the ordering layouts and the hot hybrid policy learn from"},
	{"sim", "merge", CONF_BOOL, O(merge), 0, 0, "true", CONF_NOBOUNDS, NULL,
	 "merge neighbouring reads into one (false: one read per unit, as the paper)"},
	{"sim", "max_gap", CONF_BYTES, O(max_gap), 0, 0, "0", CONF_NOBOUNDS, NULL,
	 "merge reads whose gap is at most this many bytes (0: touching only)"},
	{"sim", "parallelism", CONF_INT, O(parallelism), 0, 0, "32", 1, 4096, NULL,
	 "outstanding reads (the paper: 32 threads)"},
	{"sim", "hybrid", CONF_STR, O(hybrid), 16, 0, "0", CONF_NOBOUNDS, NULL,
	 "fraction of FFN neurons pinned in DRAM, or auto (fill the DRAM budget)"},
	{"sim", "hybrid_policy", CONF_ENUM, O(hybrid_policy), 0, 0, "hot", CONF_NOBOUNDS, "hot|first",
	 "which neurons are pinned: the most frequent per layer, or whole first layers"},
	{"sim", "naive_keep_dense", CONF_BOOL, O(naive_keep_dense), 0, 0, "false", CONF_NOBOUNDS, NULL,
	 "naive strategy: attention and embeddings stay in DRAM (else the whole model is read)"},
	{"sim", "naive_chunk", CONF_BYTES, O(naive_chunk), 0, 0, "64MiB", 4096, 1e12, NULL,
	 "naive strategy: bytes per sequential read"},
	{"sim", "dram_budget", CONF_BYTES, O(dram_budget), 0, 0, "0", 0, 1e15, NULL,
	 "DRAM available, bytes (0: unlimited)"},
	{"sim", "dram_budget_frac", CONF_DOUBLE, O(dram_budget_frac), 0, 0, "0", 0, 10, NULL,
	 "DRAM available as a fraction of the model's stored bytes (0: unused)"},
	{"sim", "dtype", CONF_ENUM, O(dtype), 0, 0, "model", CONF_NOBOUNDS,
	 "fp32|fp16|bf16|int8|model", "type of the weights on flash (model: as its description says)"},
	{"sim", "compute_dtype", CONF_ENUM, O(compute_dtype), 0, 0, "stored", CONF_NOBOUNDS,
	 "fp32|fp16|bf16|int8|stored",
	 "type of the weights in DRAM and compute (stored: as on flash; the paper's CPU runs are fp32)"},
	{"sim", "ffn_rows", CONF_ENUM, O(ffn_rows), 0, 0, "window", CONF_NOBOUNDS, "window|predicted",
	 "FFN compute runs over the used rows of the matrix (window) or the predicted rows only"},
	{"sim", "warmup_tokens", CONF_INT, O(warmup_tokens), 0, 0, "0", 0, 1 << 30, NULL,
	 "first tokens left out of the means (cold start)"},
	{"sim", "context_tokens", CONF_I64, O(context_tokens), 0, 0, "128", 0, 1e9, NULL,
	 "KV-cache length before the first token (the paper: a 128-token prompt)"},
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
	uint8_t *sets; /* (layers, tokens, row_bytes) */
	struct pred_quality q;
};

struct layout_entry {
	int kind, bundle, train, dtype;
	struct layout *layout;
};

struct freq_entry {
	int train;
	int64_t *counts; /* (layers, d_ffn) */
};

#define CACHE_MAX 64

struct sim_cache {
	const struct trace *t;
	struct llm_desc m;
	pthread_mutex_t lock;
	struct pred_entry preds[CACHE_MAX];
	struct layout_entry layouts[CACHE_MAX];
	struct freq_entry freqs[CACHE_MAX];
	int npred, nlayout, nfreq;
};

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
	return c;
}

void sim_cache_free(struct sim_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->npred; i++)
		free(c->preds[i].sets);
	for (int i = 0; i < c->nlayout; i++)
		layout_free(c->layouts[i].layout);
	for (int i = 0; i < c->nfreq; i++)
		free(c->freqs[i].counts);
	pthread_mutex_destroy(&c->lock);
	free(c);
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
	else if (!found) {
		struct pred_entry *e = &c->preds[c->npred];
		e->key = *key;
		e->sets = pred_sets(c->t, key, threads, &e->q, err);
		if (e->sets)
			found = &c->preds[c->npred++];
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

static const struct layout *cache_layout(struct sim_cache *c, const struct llm_desc *ms, int kind,
					 int bundle, int train, int threads, struct lif_err *err)
{
	const struct layout *found = NULL;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nlayout && !found; i++)
		if (c->layouts[i].kind == kind && c->layouts[i].bundle == bundle &&
		    c->layouts[i].dtype == ms->dtype &&
		    (c->layouts[i].train == train || !layout_by_kind(kind)->needs_trace))
			found = c->layouts[i].layout;
	if (!found && c->nlayout == CACHE_MAX)
		err_set(err, ERR_RANGE, "more than %d layouts in one sweep", CACHE_MAX);
	else if (!found) {
		struct layout *l = layout_new(kind, ms, c->t, bundle, train, threads, err);
		if (l) {
			c->layouts[c->nlayout++] = (struct layout_entry){kind, bundle, train, ms->dtype, l};
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
		const struct trace *t = c->t;
		int64_t n = train < t->meta.tokens ? train : t->meta.tokens;
		int64_t *counts = calloc((size_t)t->meta.layers * t->meta.d_ffn, sizeof *counts);
		for (int l = 0; counts && l < t->meta.layers; l++)
			for (int64_t k = 0; k < n; k++) {
				const uint8_t *row = trace_active(t, l, k);
				for (int j = 0; j < t->row_bytes; j++)
					for (unsigned b = row[j]; b; b &= b - 1)
						counts[(size_t)l * t->meta.d_ffn + j * 8 + __builtin_ctz(b)]++;
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

static const int64_t *rank_counts;
static int by_rank(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	if (rank_counts[x] != rank_counts[y])
		return rank_counts[x] < rank_counts[y] ? 1 : -1;
	return (x > y) - (x < y);
}

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
		for (int i = 0; i < d; i++)
			order[i] = i;
		if (counts) {
#pragma omp critical(sim_rank)
			{
				rank_counts = counts + (size_t)l * d;
				qsort(order, d, sizeof *order, by_rank);
			}
		}
		for (int64_t k = 0; k < want; k++)
			trace_set_bit(pinned + (size_t)l * rb, order[k]);
		done += want;
	}
	return done;
}

/* ---------------------------------------------------------------- the run */

/* Per-point working state. */
struct run {
	const struct trace *t;
	const struct llm_desc *m;     /* stored dtype: flash bytes */
	struct llm_desc mc;           /* DRAM/compute dtype */
	const struct device *dev;
	const struct sim_params *p;
	const uint8_t *pred;          /* (layers, tokens, rb) */
	const uint8_t *pinned;        /* (layers, rb) or NULL */
	const struct layout *layout;
	int64_t row_bytes;            /* one neuron's bundle in DRAM */
	/* per token accumulators (tokens) */
	double *io_ns;
	int64_t *bytes, *reads, *loaded, *copies, *ops, *window_rows, *useful;
	int32_t *ffn_rows;            /* (tokens, layers) */
	int64_t window_peak_rows;     /* sum over layers of the matrices' peaks */
};

static void run_free(struct run *r)
{
	free(r->io_ns), free(r->bytes), free(r->reads), free(r->loaded), free(r->copies);
	free(r->ops), free(r->window_rows), free(r->useful), free(r->ffn_rows);
}

static int run_alloc(struct run *r)
{
	size_t T = (size_t)r->t->meta.tokens;
	r->io_ns = calloc(T, sizeof *r->io_ns);
	r->bytes = calloc(T, sizeof *r->bytes);
	r->reads = calloc(T, sizeof *r->reads);
	r->loaded = calloc(T, sizeof *r->loaded);
	r->copies = calloc(T, sizeof *r->copies);
	r->ops = calloc(T, sizeof *r->ops);
	r->window_rows = calloc(T, sizeof *r->window_rows);
	r->useful = calloc(T, sizeof *r->useful);
	r->ffn_rows = calloc(T * r->m->layers, sizeof *r->ffn_rows);
	return r->io_ns && r->bytes && r->reads && r->loaded && r->copies && r->ops &&
			       r->window_rows && r->useful && r->ffn_rows
		       ? 0
		       : ERR_NOMEM;
}

/* Scratch of one layer's simulation. */
struct layer_sim {
	int64_t *last;    /* (d) last token each neuron was predicted, or very negative */
	uint64_t *words;  /* 4 bit sets of nw words: predicted, pinned, need, leaving */
	uint64_t *resident; /* (nw) the window's neurons */
	int32_t *dying;   /* (d) */
	int64_t *sizes;   /* extent sizes for the flash model */
	size_t sizes_cap;
	struct memman_move *moves;
	struct memman *mm;
	struct planner *pl;
};

static void layer_sim_free(struct layer_sim *s)
{
	free(s->last), free(s->words), free(s->resident), free(s->dying), free(s->sizes);
	free(s->moves);
	memman_free(s->mm);
	planner_free(s->pl);
}

static int layer_sim_new(struct layer_sim *s, const struct run *r, struct lif_err *err)
{
	const int d = r->m->d_ffn;
	memset(s, 0, sizeof *s);
	s->last = malloc(d * sizeof *s->last);
	const int nw = (d + 63) / 64 + 1;
	s->words = calloc(4 * (size_t)nw, sizeof *s->words);
	s->resident = calloc(nw, sizeof *s->resident);
	s->dying = malloc(d * sizeof *s->dying);
	s->moves = malloc(d * sizeof *s->moves);
	s->sizes_cap = 1024;
	s->sizes = malloc(s->sizes_cap * sizeof *s->sizes);
	if (!s->last || !s->words || !s->resident || !s->dying || !s->moves || !s->sizes)
		return err_set(err, ERR_NOMEM, "out of memory");
	if (!(s->mm = memman_new(d, err)) || !(s->pl = planner_new(r->layout, r->p->merge ? r->p->max_gap : -1, err)))
		return ERR_NOMEM;
	return 0;
}

/* Flash time of the planner's extents, with at most as many outstanding
 * reads as there are extents. */
static int layer_io_ns(struct layer_sim *s, const struct device *dev, int parallelism,
		       double *ns)
{
	const struct planner *pl = s->pl;
	if (pl->n > s->sizes_cap) {
		void *x = realloc(s->sizes, pl->n * sizeof *s->sizes);
		if (!x)
			return ERR_NOMEM;
		s->sizes = x;
		s->sizes_cap = pl->n;
	}
	for (size_t i = 0; i < pl->n; i++)
		s->sizes[i] = pl->ext[i].bytes;
	int n = pl->n < (size_t)parallelism ? (int)pl->n : parallelism;
	*ns = pl->n ? flash_time_ns(&dev->flash, s->sizes, pl->n, n > 0 ? n : 1) : 0;
	return 0;
}

/* Copy a packed row of rb bytes into nw zero-padded 64-bit words. */
static inline void load_words(uint64_t *w, const uint8_t *row, int rb, int nw)
{
	w[nw - 1] = 0;
	memcpy(w, row, rb);
}

/* One layer over all tokens: steps 1-4 of the header. Bit sets are handled
 * a 64-bit word at a time; only set bits are visited one by one. */
static int simulate_layer(struct run *r, int l, struct layer_sim *s, struct lif_err *err)
{
	const struct trace *t = r->t;
	const int rb = t->row_bytes, nw = (rb + 7) / 8, k = r->p->window;
	uint64_t *P = s->words, *pin = s->words + nw, *need = s->words + 2 * nw, *E = s->words + 3 * nw;
	int pinned_count = 0;
	memset(pin, 0, nw * sizeof *pin);
	if (r->pinned)
		load_words(pin, r->pinned + (size_t)l * rb, rb, nw);
	for (int j = 0; j < nw; j++)
		pinned_count += __builtin_popcountll(pin[j]);
	for (int i = 0; i < r->m->d_ffn; i++)
		s->last[i] = INT64_MIN / 2;
	memset(s->resident, 0, nw * sizeof *s->resident);
	for (int64_t tok = 0; tok < t->meta.tokens; tok++) {
		int64_t nload = 0, npred = 0;
		/* 1-3: what must be read: predicted, not pinned, not resident */
		load_words(P, r->pred + ((size_t)l * t->meta.tokens + tok) * rb, rb, nw);
		for (int j = 0; j < nw; j++) {
			npred += __builtin_popcountll(P[j]);
			P[j] &= ~pin[j];
			need[j] = P[j] & ~s->resident[j];
			nload += __builtin_popcountll(need[j]);
		}
		double io = 0;
		if (planner_plan(s->pl, l, (const uint8_t *)need, err) ||
		    layer_io_ns(s, r->dev, r->p->parallelism, &io))
			return err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
		r->io_ns[tok] += io;
		r->bytes[tok] += s->pl->bytes_read;
		r->useful[tok] += s->pl->useful_bytes;
		r->reads[tok] += (int64_t)s->pl->n;
		r->loaded[tok] += nload;
		/* 4: insert the loaded rows; the predicted ones are used now */
		for (int j = 0; j < nw; j++) {
			for (uint64_t b = need[j]; b; b &= b - 1)
				memman_insert(s->mm, j * 64 + __builtin_ctzll(b));
			for (uint64_t b = P[j]; b; b &= b - 1)
				s->last[j * 64 + __builtin_ctzll(b)] = tok;
			s->resident[j] |= P[j];
		}
		/* 5: the rows the FFN is computed over */
		r->ffn_rows[(size_t)tok * r->m->layers + l] =
			(int32_t)(r->p->ffn_rows == SIM_ROWS_WINDOW ? s->mm->used + pinned_count : npred);
		/* after the token: delete what leaves the window (last predicted at tok-k) */
		int64_t leave = tok - k, ndie = 0;
		if (leave >= 0) {
			load_words(E, r->pred + ((size_t)l * t->meta.tokens + leave) * rb, rb, nw);
			for (int j = 0; j < nw; j++)
				for (uint64_t b = E[j] & ~pin[j]; b; b &= b - 1) {
					int i = j * 64 + __builtin_ctzll(b);
					if (s->last[i] == leave) {
						s->dying[ndie++] = i;
						s->resident[j] &= ~(1ull << (i & 63));
					}
				}
		}
		int nm = memman_delete(s->mm, s->dying, (int)ndie, s->moves);
		r->copies[tok] += nm;
		r->ops[tok] += nload + ndie;
		r->window_rows[tok] += s->mm->used;
	}
	r->window_peak_rows += s->mm->peak;
	return 0;
}

static int simulate_sparse(struct run *r, struct lif_err *err)
{
	struct layer_sim s;
	int rc = layer_sim_new(&s, r, err);
	for (int l = 0; !rc && l < r->m->layers; l++) {
		memman_free(s.mm);
		if (!(s.mm = memman_new(r->m->d_ffn, err)))
			rc = ERR_NOMEM;
		else
			rc = simulate_layer(r, l, &s, err);
	}
	layer_sim_free(&s);
	return rc;
}

/* The naive strategy: every non-resident byte, in sequential chunks. */
static int simulate_naive(struct run *r, int64_t resident_bytes, struct lif_err *err)
{
	int64_t bytes = r->m->total_bytes - resident_bytes;
	int64_t chunk = r->p->naive_chunk, n = bytes > 0 ? (bytes + chunk - 1) / chunk : 0;
	int64_t *sizes = malloc((n + 1) * sizeof *sizes);
	if (!sizes)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (int64_t i = 0; i < n; i++)
		sizes[i] = i < n - 1 ? chunk : bytes - chunk * (n - 1);
	int par = n < r->p->parallelism ? (int)n : r->p->parallelism;
	double io = n ? flash_time_ns(&r->dev->flash, sizes, (size_t)n, par > 0 ? par : 1) : 0;
	free(sizes);
	for (int64_t tok = 0; tok < r->t->meta.tokens; tok++) {
		r->io_ns[tok] = io;
		r->bytes[tok] = r->useful[tok] = bytes > 0 ? bytes : 0;
		r->reads[tok] = n;
		r->loaded[tok] = (int64_t)r->m->layers * r->m->d_ffn;
		for (int l = 0; l < r->m->layers; l++)
			r->ffn_rows[(size_t)tok * r->m->layers + l] = r->m->d_ffn;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Per-token costs from the accumulators; means and percentiles. */
static int finish(struct run *r, struct sim_result *out, struct sim_token *per_token,
		  struct lif_err *err)
{
	const int64_t T = r->t->meta.tokens, w0 = r->p->warmup_tokens < T ? r->p->warmup_tokens : 0;
	const int L = r->m->layers;
	double *tot = malloc(T * sizeof *tot);
	int64_t *rows = malloc(L * sizeof *rows);
	if (!tot || !rows) {
		free(tot), free(rows);
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	double sum_io = 0, sum_mem = 0, sum_cmp = 0, sum_b = 0, sum_r = 0, sum_ld = 0, sum_cp = 0;
	double sum_w = 0, sum_u = 0;
	int rc = 0;
	for (int64_t tok = 0; tok < T && !rc; tok++) {
		struct compute_cost cc;
		for (int l = 0; l < L; l++)
			rows[l] = r->ffn_rows[(size_t)tok * L + l];
		rc = compute_token_cost(&r->dev->compute, &r->mc, rows, L, r->p->context_tokens + tok, &cc, err);
		double copied = (double)r->copies[tok] * r->row_bytes;
		double h2d = (double)r->loaded[tok] * r->row_bytes;
		double mem = dram_time_ns(&r->dev->dram, copied, (double)r->ops[tok], h2d);
		double io_ms = r->io_ns[tok] / 1e6, mem_ms = mem / 1e6, cmp_ms = cc.total_ns / 1e6;
		tot[tok] = io_ms + mem_ms + cmp_ms;
		if (per_token)
			per_token[tok] = (struct sim_token){io_ms, mem_ms, cmp_ms, tot[tok], r->bytes[tok],
							     r->reads[tok], r->loaded[tok]};
		if (tok < w0)
			continue;
		sum_io += io_ms, sum_mem += mem_ms, sum_cmp += cmp_ms;
		sum_b += r->bytes[tok], sum_r += r->reads[tok], sum_ld += r->loaded[tok];
		sum_cp += copied, sum_w += r->window_rows[tok], sum_u += r->useful[tok];
	}
	int64_t n = T - w0;
	out->tokens = n;
	out->io_ms = sum_io / n, out->mem_ms = sum_mem / n, out->compute_ms = sum_cmp / n;
	out->total_ms = out->io_ms + out->mem_ms + out->compute_ms;
	out->bytes_read_per_token = sum_b / n;
	out->useful_bytes_per_token = sum_u / n;
	out->reads_per_token = sum_r / n;
	out->mean_read_bytes = sum_r > 0 ? sum_b / sum_r : 0;
	out->load_frac_per_token = sum_ld / n / ((double)L * r->m->d_ffn);
	out->window_frac = sum_w / n / ((double)L * r->m->d_ffn);
	out->mem_bytes_copied_per_token = sum_cp / n;
	qsort(tot + w0, n, sizeof *tot, cmp_double);
	out->total_ms_p50 = tot[w0 + (int64_t)ceil(0.50 * n) - 1];
	out->total_ms_p99 = tot[w0 + (int64_t)ceil(0.99 * n) - 1];
	free(tot), free(rows);
	return rc;
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
	if (p->strategy == SIM_SPARSE && p->predictor == PRED_NONE && p->window == 0 && 0)
		return 0;
	return 0;
}

/* DRAM of the fixed parts: embeddings, attention, predictor (DRAM dtype). */
static void dram_fixed(const struct run *r, struct sim_result *out)
{
	const struct llm_desc *mc = &r->mc;
	int naive = r->p->strategy == SIM_NAIVE;
	int dense = !naive || r->p->naive_keep_dense;
	out->dram_embed_bytes = dense ? mc->embed_bytes : 0;
	out->dram_attn_bytes = dense ? mc->attn_bytes : 0;
	out->dram_predictor_bytes =
		naive || r->p->predictor == PRED_NONE
			? 0
			: (int64_t)r->p->predictor_rank * (mc->d_model + mc->d_ffn) * mc->layers * 2;
}

static int64_t budget_bytes(const struct sim_params *p, const struct llm_desc *m)
{
	if (p->dram_budget)
		return p->dram_budget;
	return p->dram_budget_frac > 0 ? (int64_t)(p->dram_budget_frac * (double)m->total_bytes) : 0;
}

/* One simulation with a given pinned fraction. */
static int run_once(struct sim_cache *c, const struct device *dev, const struct sim_params *p,
		    double pin_frac, int threads, struct sim_result *out, struct sim_token *per_token,
		    struct lif_err *err)
{
	struct llm_desc ms = c->m; /* as stored on flash */
	struct run r = {.t = c->t, .m = &ms, .dev = dev, .p = p};
	uint8_t *pinned = NULL;
	int32_t *order = NULL;
	int rc = 0;
	ms.params = 0;
	if (p->dtype < LLM_NDTYPES)
		ms.dtype = p->dtype;
	rc = llm_derive(&ms, c->m.name, err);
	r.mc = ms;
	if (!rc && p->compute_dtype < LLM_NDTYPES) {
		r.mc.dtype = p->compute_dtype;
		rc = llm_derive(&r.mc, c->m.name, err);
	}
	r.row_bytes = r.mc.bundle_bytes;
	memset(out, 0, sizeof *out);
	if (!rc && pin_frac > 0) {
		const int64_t *counts = p->hybrid_policy == SIM_HYBRID_HOT
						? cache_freq(c, p->layout_train_tokens, err)
						: NULL;
		pinned = calloc((size_t)c->m.layers * c->t->row_bytes, 1);
		order = malloc(c->m.d_ffn * sizeof *order);
		if (!pinned || !order || (p->hybrid_policy == SIM_HYBRID_HOT && !counts))
			rc = err->code ? err->code : err_set(err, ERR_NOMEM, "out of memory");
		else
			out->hybrid_frac = (double)pin_neurons(&c->m, p->hybrid_policy, pin_frac, counts,
							       pinned, order) /
					   ((double)c->m.layers * c->m.d_ffn);
		r.pinned = pinned;
	}
	struct pred_params pk = {0};
	pk.kind = p->strategy == SIM_NAIVE ? PRED_NONE : p->predictor;
	if (pk.kind == PRED_MODELED || pk.kind == PRED_RANDOM) {
		pk.recall = p->recall, pk.fp_rate = p->fp_rate, pk.seed = (uint64_t)p->predictor_seed;
	}
	const struct pred_entry *pe = NULL;
	if (!rc && p->strategy == SIM_SPARSE) {
		pe = cache_pred(c, &pk, threads, err);
		r.layout = pe ? cache_layout(c, &ms, p->layout, p->bundle, p->layout_train_tokens, threads, err)
			      : NULL;
		rc = pe && r.layout ? 0 : (err->code ? err->code : ERR_NOMEM);
	}
	if (!rc)
		rc = run_alloc(&r) ? err_set(err, ERR_NOMEM, "out of memory") : 0;
	dram_fixed(&r, out);
	out->dram_ffn_bytes = r.mc.ffn_bytes;
	out->dram_pinned_bytes = (int64_t)llround(out->hybrid_frac * (double)r.mc.ffn_bytes);
	if (!rc && p->strategy == SIM_SPARSE) {
		r.pred = pe->sets;
		rc = simulate_sparse(&r, err);
		out->recall = pe->q.recall, out->fp_rate = pe->q.fp_rate;
		out->predicted_frac = pe->q.predicted_frac;
	} else if (!rc) {
		/* flash holds the model at its stored dtype */
		int64_t resident = (p->naive_keep_dense ? ms.embed_bytes + ms.attn_bytes : 0) +
				   (int64_t)llround(out->hybrid_frac * (double)ms.ffn_bytes);
		rc = simulate_naive(&r, resident, err);
		out->recall = 1, out->predicted_frac = 1;
	}
	if (!rc)
		rc = finish(&r, out, per_token, err);
	out->dram_window_bytes = r.window_peak_rows * r.row_bytes;
	out->dram_bytes = out->dram_embed_bytes + out->dram_attn_bytes + out->dram_predictor_bytes +
			  out->dram_pinned_bytes + out->dram_window_bytes;
	out->dram_budget_bytes = budget_bytes(p, &c->m);
	run_free(&r);
	free(pinned);
	free(order);
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

int sim_run(struct sim_cache *c, const struct device *dev, const struct sim_params *p,
	    int threads, struct sim_result *out, struct sim_token *per_token, struct lif_err *err)
{
	if (sim_check_params(p, &c->m, err))
		return ERR_INVAL;
	double frac = 0;
	int rc;
	if (strcmp(p->hybrid, "auto")) {
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
	return rc;
}
