/* replay: the simulator's decisions with real reads (see sim/real/replay.h). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim/real/replay.h"
#include "sim/base/util.h"
#include "sim/core/step.h"
#include "sim/core/timeline.h"
#include "sim/real/rcompute.h"

int replay_scale_model(struct llm_desc *m, double f, struct lif_err *err)
{
	if (!(f > 0 && f <= 1))
		return err_set(err, ERR_RANGE, "scale %g must be in (0, 1]", f);
	if (f == 1)
		return 0;
	const int unit = 8 * m->heads;
	int d = (int)lround(m->d_model * f / unit) * unit;
	m->d_model = d < unit ? unit : d;
	m->params = 0;
	char name[64];
	snprintf(name, sizeof name, "%.40s@%g", m->name, f);
	memcpy(m->name, name, sizeof name);
	return llm_derive(m, m->name, err);
}

/* One layer's real state. */
struct rlayer {
	struct step_layer *step;
	char *matrix;     /* (peak rows, row_bytes) the preallocated matrix */
	int32_t rows;     /* its capacity */
	int32_t *holder;  /* friends: (d_ffn) needed neuron whose slot carries this one, or -1 */
	struct step_out so; /* this token's decisions (valid until the next step) */
};

/* Where the planner's extents landed: per extent, its staging position. */
struct stage {
	char *buf;
	size_t cap;
	struct io_req *req;
	int64_t *at;      /* (n) offset in buf of the extent's first byte */
	size_t ncap;
	int64_t block;
};

static int stage_fit(struct stage *s, const struct planner *p, int64_t ffn_off, struct io_arena *arena,
		     struct lif_err *err)
{
	if (p->n > s->ncap) {
		free(s->req), free(s->at);
		s->ncap = p->n * 2;
		s->req = malloc(s->ncap * sizeof *s->req), s->at = malloc(s->ncap * sizeof *s->at);
		if (!s->req || !s->at)
			return s->ncap = 0, err_set(err, ERR_NOMEM, "out of memory");
	}
	int64_t need = 0, b = s->block;
	for (size_t i = 0; i < p->n; i++) {
		int64_t lo = (ffn_off + p->ext[i].offset) / b * b;
		int64_t hi = (ffn_off + p->ext[i].offset + p->ext[i].bytes + b - 1) / b * b;
		s->req[i] = (struct io_req){lo, hi - lo, (void *)(intptr_t)need};
		s->at[i] = need + (ffn_off + p->ext[i].offset - lo);
		need += hi - lo;
	}
	if (arena) {
		if (!(s->buf = io_arena_take(arena, need)))
			return err_set(err, ERR_NOSPACE, "a layer's reads (%lld bytes) do not fit in the "
				       "%zu-byte io arena", (long long)need, arena->bytes);
	} else if ((size_t)need > s->cap) {
		free(s->buf);
		s->cap = (size_t)need * 2;
		if (!(s->buf = io_alloc(s->cap, (size_t)(b < 4096 ? 4096 : b))))
			return s->cap = 0, err_set(err, ERR_NOMEM, "out of memory for %lld bytes of reads",
						   (long long)need);
	}
	for (size_t i = 0; i < p->n; i++)
		s->req[i].buf = s->buf + (intptr_t)s->req[i].buf;
	return 0;
}

/* The staged bytes at FFN offset off (len bytes), or NULL when not read. */
static const char *stage_find(const struct stage *s, const struct planner *p, int64_t off, int64_t len)
{
	size_t lo = 0, hi = p->n;
	while (hi - lo > 1) { /* last extent starting at or before off */
		size_t mid = (lo + hi) / 2;
		if (p->ext[mid].offset <= off)
			lo = mid;
		else
			hi = mid;
	}
	if (!p->n || p->ext[lo].offset > off || off + len > p->ext[lo].offset + p->ext[lo].bytes)
		return NULL;
	return s->buf + s->at[lo] + (off - p->ext[lo].offset);
}

/* n weights of dtype at src as fp32 at dst (dst_dtype fp32), or a plain copy
 * (dst_dtype == dtype). */
void replay_convert(char *dst, int dst_dtype, const char *src, int dtype, int64_t n)
{
	if (dst_dtype == dtype) {
		memcpy(dst, src, (size_t)(n * llm_dtype_bytes(dtype)));
		return;
	}
	float *f = (float *)dst;
	const uint16_t *h = (const uint16_t *)src;
	if (dtype == LLM_BF16) {
		for (int64_t i = 0; i < n; i++) {
			uint32_t b = (uint32_t)h[i] << 16;
			memcpy(&f[i], &b, 4);
		}
		return;
	}
	for (int64_t i = 0; i < n; i++) { /* fp16: zero and subnormals flush to zero */
		uint32_t s = (uint32_t)(h[i] & 0x8000) << 16, e = (h[i] >> 10) & 0x1f, m = h[i] & 0x3ff;
		uint32_t bits = e == 0 ? s : e == 31 ? s | 0x7f800000 | (m << 13) : s | ((e + 112) << 23) | (m << 13);
		memcpy(&f[i], &bits, 4);
	}
}

/* Rows as stored (sw: the model on flash) and as held in the matrix (dw:
 * in DRAM; = sw, or fp32 converted from it). */
struct rowfmt {
	const struct llm_desc *sw, *dw;
};

/* Copy (and convert) each loaded neuron's bundle into its row. */
static int place(struct rlayer *rl, const struct layout *l, int layer, const struct step_out *o,
		 const struct stage *s, const struct rowfmt *f, struct lif_err *err)
{
	const int32_t *pos = l->pos + (size_t)layer * l->d_ffn;
	const int32_t *fr = l->friend_of ? l->friend_of + (size_t)layer * l->d_ffn : NULL;
	const int64_t row_bytes = f->sw->bundle_bytes, drow = f->dw->bundle_bytes;
	const int64_t piece = l->regions > 1 ? l->piece_bytes : row_bytes;
	const int64_t dpiece = piece / llm_dtype_bytes(f->sw->dtype) * llm_dtype_bytes(f->dw->dtype);
	int32_t row = o->first_row;
	for (int pass = fr ? 0 : 1; pass < 2; pass++)
		for (int i = 0; i < l->d_ffn; i++) {
			if (!((o->need[i >> 3] >> (i & 7)) & 1))
				continue;
			if (pass == 0) { /* friends: who carries whom this token */
				if (fr[i] >= 0 && rl->holder[fr[i]] < 0 &&
				    stage_find(s, o->plan, layout_offset(l, layer, 0, pos[i]), l->slot_bytes))
					rl->holder[fr[i]] = i;
				continue;
			}
			if (row >= rl->rows)
				return err_set(err, ERR_RANGE, "layer %d: row %d beyond the matrix (%d rows)",
					       layer, row, rl->rows);
			for (int r = 0; r < l->regions; r++) {
				const char *src = stage_find(s, o->plan, layout_offset(l, layer, r, pos[i]), piece);
				if (!src && fr && rl->holder[i] >= 0)
					src = stage_find(s, o->plan, layout_offset(l, layer, r, pos[rl->holder[i]]) +
						       row_bytes, piece);
				if (!src)
					return err_set(err, ERR_FORMAT, "layer %d: neuron %d was planned but no "
						       "read covers it", layer, i);
				replay_convert(rl->matrix + (size_t)row * drow + r * dpiece, f->dw->dtype, src,
					f->sw->dtype, piece / llm_dtype_bytes(f->sw->dtype));
			}
			row++;
		}
	if (fr)
		for (int i = 0; i < l->d_ffn; i++)
			if ((o->need[i >> 3] >> (i & 7)) & 1 && fr[i] >= 0)
				rl->holder[fr[i]] = -1;
	return 0;
}

/* Every used row holds its neuron's synthetic bytes, converted as held (tests). */
static int check_rows(const struct rlayer *rl, const struct memman *mm, const struct rowfmt *f,
		      uint64_t seed, int layer, int64_t tok, struct lif_err *err)
{
	const struct llm_desc *m = f->sw;
	const int64_t piece = (int64_t)m->d_model * m->weight_bytes;
	const int64_t dpiece = (int64_t)m->d_model * f->dw->weight_bytes;
	char *want = malloc((size_t)piece), *conv = malloc((size_t)dpiece);
	int rc = want && conv ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	for (int32_t r = 0; !rc && r < mm->used; r++)
		for (int k = 0; !rc && k < m->ffn_matrices; k++) {
			wfile_piece(seed, layer, k, mm->row_neuron[r], m->dtype, want, piece);
			replay_convert(conv, f->dw->dtype, want, m->dtype, m->d_model);
			if (memcmp(conv, rl->matrix + (size_t)r * f->dw->bundle_bytes + k * dpiece, (size_t)dpiece))
				rc = err_set(err, ERR_FORMAT, "token %lld layer %d: row %d does not hold "
					     "neuron %d", (long long)tok, layer, r, mm->row_neuron[r]);
		}
	free(want), free(conv);
	return rc;
}

static void layers_free(struct rlayer *rl, int L)
{
	for (int l = 0; rl && l < L; l++) {
		step_layer_free(rl[l].step);
		free(rl[l].matrix);
		free(rl[l].holder);
	}
	free(rl);
}

/* Steppers for every layer; with peak: a dry run to size the matrices. */
static struct rlayer *layers_new(const struct sim_inputs *in, const struct trace *t, int64_t end,
				 int64_t max_bytes, struct lif_err *err)
{
	const struct layout *l = in->layout;
	const int L = l->layers, rb = t->row_bytes;
	const int64_t T = t->meta.tokens, row_bytes = in->dram.bundle_bytes;
	struct rlayer *rl = calloc((size_t)L, sizeof *rl);
	int rc = rl ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	int64_t total = 0;
	for (int k = 0; !rc && k < L; k++) {
		const uint8_t *pin = in->pinned ? in->pinned + (size_t)k * rb : NULL;
		struct step_layer *dry = step_layer_new(l, k, T, in->window, in->max_gap, pin, err);
		struct step_out o;
		rc = dry ? 0 : err->code;
		for (int64_t tok = 0; !rc && tok < end; tok++)
			rc = step_layer_next(dry, in->pred + ((size_t)k * T + tok) * rb, &o, err);
		rl[k].rows = dry ? step_layer_peak_rows(dry) : 0;
		step_layer_free(dry);
		total += (int64_t)rl[k].rows * row_bytes;
		if (!rc && total > max_bytes)
			rc = err_set(err, ERR_NOSPACE, "the matrices need more than %.3g GB of DRAM "
				     "(the limit); shorten the window or the trace", max_bytes / 1e9);
		if (!rc && !(rl[k].step = step_layer_new(l, k, T, in->window, in->max_gap, pin, err)))
			rc = err->code;
		if (!rc && (!(rl[k].matrix = malloc((size_t)(rl[k].rows ? rl[k].rows : 1) * row_bytes)) ||
			    (l->friend_of && !(rl[k].holder = malloc((size_t)l->d_ffn * 4)))))
			rc = err_set(err, ERR_NOMEM, "out of memory for layer %d's matrix", k);
		if (!rc && rl[k].matrix) /* touch the pages now, not in a timed copy */
			memset(rl[k].matrix, 0, (size_t)(rl[k].rows ? rl[k].rows : 1) * row_bytes);
		for (int i = 0; !rc && rl[k].holder && i < l->d_ffn; i++)
			rl[k].holder[i] = -1;
	}
	if (rc) {
		layers_free(rl, L);
		return NULL;
	}
	return rl;
}

/* What every layer of a replay shares. */
struct rrun {
	const struct sim_inputs *in;
	const struct trace *t;
	const struct wfile *w;
	struct io_engine *io;
	const struct replay_opts *o;
	struct rlayer *rl;
	struct stage s;
	struct rowfmt f;
	struct rcompute *rc; /* NULL: no compute */
	int L;
};

/* Layer k of token tok: step, read (timed: io), verify (untimed), place
 * (timed: place). Runs on the reader thread when pipelined. */
static int layer_load(struct rrun *R, struct io_engine *io, int k, int64_t tok, struct replay_token *rt,
		      double *io_ms, double *place_ms, struct lif_err *err)
{
	struct rlayer *rl = &R->rl[k];
	const int64_t T = R->t->meta.tokens, ffn_off = wfile_info(R->w)->ffn_offset;
	struct step_out *so = &rl->so;
	int rc = step_layer_next(rl->step, R->in->pred + ((size_t)k * T + tok) * R->t->row_bytes, so, err);
	if (!rc)
		rc = stage_fit(&R->s, so->plan, ffn_off, R->o->arena, err);
	for (size_t i = 0; !rc && R->o->iolog && i < so->plan->n; i++)
		fprintf(R->o->iolog, "%s read %lld %lld\n", wfile_path(R->w), (long long)R->s.req[i].offset,
			(long long)R->s.req[i].bytes);
	double t0 = util_now_ns();
	if (!rc)
		rc = io_read(io, R->s.req, so->plan->n, NULL, err);
	double t1 = util_now_ns();
	for (size_t i = 0; !rc && R->o->verify && i < so->plan->n; i++)
		rc = wfile_verify(R->w, so->plan->ext[i].offset, R->s.buf + R->s.at[i], so->plan->ext[i].bytes,
				  err);
	double t2 = util_now_ns();
	if (!rc)
		rc = place(rl, R->in->layout, k, so, &R->s, &R->f, err);
	double t3 = util_now_ns();
	if (rc)
		return rc;
	*io_ms = (t1 - t0) / 1e6, *place_ms = (t3 - t2) / 1e6;
	rt->io_ms += *io_ms, rt->place_ms += *place_ms;
	rt->bytes_read += so->plan->bytes_read, rt->reads += (int64_t)so->plan->n;
	rt->neurons_loaded += so->nload, rt->rows_copied += so->nmoves;
	return 0;
}

/* Layer k's compute (timed), when the replay computes: the rows in use
 * during the token (the simulator's ffn_rows = window), capped at the
 * matrix (pinned neurons are not held by the replay). ms. */
static double layer_compute(struct rrun *R, int k, int64_t tok)
{
	if (!R->rc)
		return 0;
	const struct rlayer *rl = &R->rl[k];
	int32_t rows = rl->so.window_rows + (int32_t)rl->so.ndie;
	double t0 = util_now_ns();
	rcompute_layer(R->rc, k, R->o->context_tokens + tok, (const float *)rl->matrix,
		       rows < rl->rows ? rows : rl->rows);
	return (util_now_ns() - t0) / 1e6;
}

/* Layer k's memory-manager copies after the token (timed). ms. */
static double layer_moves(struct rrun *R, int k)
{
	const struct rlayer *rl = &R->rl[k];
	const int64_t rb = R->in->dram.bundle_bytes;
	double t0 = util_now_ns();
	for (int i = 0; i < rl->so.nmoves; i++)
		memcpy(rl->matrix + (size_t)rl->so.moves[i].dst * rb,
		       rl->matrix + (size_t)rl->so.moves[i].src * rb, (size_t)rb);
	return (util_now_ns() - t0) / 1e6;
}

static double phase(struct rrun *R, int begin, int64_t tok)
{
	if (!R->rc)
		return 0;
	double t0 = util_now_ns();
	if (begin)
		rcompute_begin(R->rc, tok);
	else
		rcompute_end(R->rc);
	return (util_now_ns() - t0) / 1e6;
}

/* Per-layer times of token tok into o->layer_ms, when asked. */
static void layer_record(const struct rrun *R, int64_t tok, int k, double io, double place, double cpu)
{
	if (R->o->layer_ms) {
		double *p = R->o->layer_ms + ((size_t)tok * R->L + k) * 3;
		p[0] = io, p[1] = place, p[2] = cpu;
	}
}

/* overlap = none: per layer, read, place, compute, copy; one after another. */
static int token_serial(struct rrun *R, int64_t tok, struct replay_token *rt, struct lif_err *err)
{
	int rc = 0;
	double begin = phase(R, 1, tok);
	rt->compute_ms += begin;
	for (int k = 0; !rc && k < R->L; k++) {
		double io, pl;
		rc = layer_load(R, R->io, k, tok, rt, &io, &pl, err);
		if (rc)
			break;
		double c = layer_compute(R, k, tok);
		rt->compute_ms += c;
		rt->mem_ms += layer_moves(R, k);
		layer_record(R, tok, k, io, pl, c + (k == 0 ? begin : 0));
		if (R->o->check_rows)
			rc = check_rows(&R->rl[k], step_layer_memman(R->rl[k].step), &R->f,
					wfile_info(R->w)->seed, k, tok, err);
	}
	if (!rc) {
		rt->head_ms = phase(R, 0, tok);
		rt->compute_ms += rt->head_ms;
		/* a converting place is the memory manager's work (replay.h) */
		rt->total_ms = rt->io_ms + rt->mem_ms + rt->compute_ms +
			       (R->f.sw->dtype != R->f.dw->dtype ? rt->place_ms : 0);
	}
	return rc;
}

/* overlap = pipelined: a reader thread steps, reads and places layer l + 1
 * (up to `depth` layers ahead of the compute) while this thread computes
 * layer l; the copies of every layer after the last layer's compute (the
 * structure of sim/core/timeline.h). A token starts with empty pipes. */
struct pipe {
	struct rrun *R;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t go;       /* the token the reader may start (-1: none yet) */
	int quit;
	int loaded;       /* layers of the current token read and placed */
	int started;      /* layers of the current token whose compute has started */
	int failed, nev;  /* nev: events of the token so far (replay_opts.events) */
	struct lif_err err;
	struct replay_token *rt;
	double *io, *pl;  /* (L) the reader's per-layer times */
};

static void *reader(void *arg)
{
	struct pipe *P = arg;
	struct rrun *R = P->R;
	int64_t done = -1;
	/* its own engine: an io_uring ring takes submissions from the thread
	 * that made it only (IORING_SETUP_SINGLE_ISSUER) */
	struct lif_err e = {0};
	struct io_engine *own = io_open(io_engine_name(R->io), R->io->path, R->io->parallelism,
					R->io->flags, &e);
	pthread_mutex_lock(&P->mu);
	if (!own) {
		P->err = e, P->failed = 1;
		pthread_cond_broadcast(&P->cv);
		pthread_mutex_unlock(&P->mu);
		return NULL;
	}
	for (;;) {
		while (!P->quit && P->go == done)
			pthread_cond_wait(&P->cv, &P->mu);
		if (P->quit)
			break;
		const int64_t tok = done = P->go;
		const int depth = R->o->pipeline_depth > 0 ? R->o->pipeline_depth : 1;
		for (int k = 0; k < R->L; k++) {
			/* the bounded buffers: layer k's reads wait for layer k - depth's compute */
			while (!P->quit && P->started < k - depth + 1)
				pthread_cond_wait(&P->cv, &P->mu);
			if (P->quit)
				break;
			if (R->o->events)
				R->o->events[(size_t)tok * 2 * R->L + P->nev++] = k + 1;
			pthread_mutex_unlock(&P->mu);
			int rc = layer_load(R, own, k, tok, P->rt, &P->io[k], &P->pl[k], &P->err);
			pthread_mutex_lock(&P->mu);
			if (rc) {
				P->failed = 1;
				pthread_cond_broadcast(&P->cv);
				break;
			}
			P->loaded = k + 1;
			pthread_cond_broadcast(&P->cv);
		}
	}
	pthread_mutex_unlock(&P->mu);
	io_close(own);
	return NULL;
}

static int token_pipelined(struct pipe *P, int64_t tok, struct replay_token *rt, struct lif_err *err)
{
	struct rrun *R = P->R;
	int rc = 0;
	double t0 = util_now_ns();
	pthread_mutex_lock(&P->mu);
	P->rt = rt, P->loaded = P->started = P->nev = 0, P->go = tok;
	pthread_cond_broadcast(&P->cv);
	pthread_mutex_unlock(&P->mu);
	double begin = phase(R, 1, tok), *cpu = P->io + R->L; /* scratch after io: see replay_sparse */
	for (int k = 0; k < R->L; k++) {
		pthread_mutex_lock(&P->mu);
		while (!P->failed && P->loaded <= k)
			pthread_cond_wait(&P->cv, &P->mu);
		if (P->failed) {
			pthread_mutex_unlock(&P->mu);
			*err = P->err;
			return err->code;
		}
		P->started = k + 1;
		if (R->o->events)
			R->o->events[(size_t)tok * 2 * R->L + P->nev++] = -(k + 1);
		pthread_cond_broadcast(&P->cv);
		pthread_mutex_unlock(&P->mu);
		cpu[k] = layer_compute(R, k, tok);
		rt->compute_ms += cpu[k];
	}
	rt->compute_ms += begin;
	rt->head_ms = phase(R, 0, tok);
	rt->compute_ms += rt->head_ms;
	for (int k = 0; k < R->L; k++)
		rt->mem_ms += layer_moves(R, k);
	rt->total_ms = (util_now_ns() - t0) / 1e6;
	for (int k = 0; k < R->L; k++)
		layer_record(R, tok, k, P->io[k], P->pl[k], cpu[k] + (k == 0 ? begin : 0));
	for (int k = 0; !rc && R->o->check_rows && k < R->L; k++)
		rc = check_rows(&R->rl[k], step_layer_memman(R->rl[k].step), &R->f, wfile_info(R->w)->seed,
				k, tok, err);
	return rc;
}

/* The pipelined replay's reader thread and its per-layer times; *threaded
 * is set once the thread runs (pipe_stop undoes either way). */
static int pipe_start(struct pipe *P, int L, int *threaded, struct lif_err *err)
{
	int rc = 0;
	if (!(P->io = calloc((size_t)L * 3, sizeof *P->io)))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	P->pl = P->io ? P->io + 2 * L : NULL; /* io: [0, L), cpu scratch: [L, 2L), place: [2L, 3L) */
	pthread_mutex_init(&P->mu, NULL);
	pthread_cond_init(&P->cv, NULL);
	if (!rc && pthread_create(&P->th, NULL, reader, P))
		rc = err_set(err, ERR_NOMEM, "cannot start the replay's reader thread");
	*threaded = !rc;
	return rc;
}

static void pipe_stop(struct pipe *P, int threaded)
{
	if (threaded) {
		pthread_mutex_lock(&P->mu);
		P->quit = 1;
		pthread_cond_broadcast(&P->cv);
		pthread_mutex_unlock(&P->mu);
		pthread_join(P->th, NULL);
	}
	pthread_mutex_destroy(&P->mu);
	pthread_cond_destroy(&P->cv);
	free(P->io);
}

int replay_sparse(const struct sim_inputs *in, const struct trace *t, const struct wfile *w,
		  struct io_engine *io, const struct replay_opts *o, struct replay_token *per_token,
		  struct lif_err *err)
{
	const int L = in->layout->layers;
	const int64_t T = t->meta.tokens;
	const int64_t end = o->tokens > 0 && o->first_token + o->tokens < T ? o->first_token + o->tokens : T;
	const int sd = in->stored.dtype, dd = in->dram.dtype;
	if (dd != sd && !(dd == LLM_FP32 && (sd == LLM_FP16 || sd == LLM_BF16)))
		return err_set(err, ERR_INVAL, "replay keeps rows as stored or converts fp16/bf16 to fp32: "
			       "compute_dtype %s from the flash dtype %s is neither", llm_dtype_name(dd),
			       llm_dtype_name(sd));
	if (in->stored.weight_bits || in->dram.weight_bits)
		return err_set(err, ERR_INVAL, "replay: low-bit weights (bits > 0) are not replayed");
	struct rrun R = {.in = in, .t = t, .w = w, .io = io, .o = o, .L = L,
			 .f = {&in->stored, &in->dram},
			 .s = {.block = io_block_bytes(io) > 1 ? io_block_bytes(io) : 1}};
	int rc = wfile_match(w, in->layout, &in->stored, err);
	if (!rc && o->compute &&
	    !(R.rc = rcompute_new(&in->dram, o->context_tokens + end + 1, o->pred_rank, o->dense_bytes, err)))
		rc = err->code;
	if (!rc && !(R.rl = layers_new(in, t, end, o->max_matrix_bytes > 0 ? o->max_matrix_bytes : 16LL << 30,
				       err)))
		rc = err->code;
	struct pipe P = {.R = &R, .go = -1};
	int threaded = 0, piped = !rc && o->overlap == TIMELINE_PIPELINED;
	if (piped)
		rc = pipe_start(&P, L, &threaded, err);
	memset(per_token, 0, (size_t)T * sizeof *per_token);
	for (int64_t tok = 0; !rc && tok < end; tok++) { /* token-major, as a model runs */
		struct replay_token *rt = &per_token[tok];
		if (tok < o->first_token) { /* untimed: the state only (reads and rows), no compute */
			struct rcompute *keep = R.rc;
			R.rc = NULL;
			rc = token_serial(&R, tok, rt, err);
			R.rc = keep;
		} else {
			rc = threaded ? token_pipelined(&P, tok, rt, err) : token_serial(&R, tok, rt, err);
		}
		if (tok < o->first_token)
			memset(rt, 0, sizeof *rt); /* stepped for state, not timed */
		else if (!rc && o->after_token)
			rc = o->after_token(o->after_ctx, tok, err);
	}
	if (piped)
		pipe_stop(&P, threaded);
	layers_free(R.rl, L);
	rcompute_free(R.rc);
	if (!o->arena)
		free(R.s.buf);
	free(R.s.req), free(R.s.at);
	return rc;
}

void replay_iolog_begin(FILE *f, const char *path)
{
	fprintf(f, "fio version 2 iolog\n%s add\n%s open\n", path, path);
}

void replay_iolog_end(FILE *f, const char *path) { fprintf(f, "%s close\n", path); }

int replay_naive(const struct wfile *w, struct io_engine *io, int64_t chunk, int64_t tokens,
		 int verify, struct io_arena *arena, struct replay_token *per_token,
		 struct lif_err *err)
{
	const struct wfile_info *wi = wfile_info(w);
	const int64_t ffn = wi->layer_bytes * wi->layers, par = io->parallelism;
	const int64_t b = io_block_bytes(io) > 1 ? io_block_bytes(io) : 1;
	const int64_t nbuf = 2 * par;
	if (chunk < 1 || chunk % 4096 || chunk * nbuf > (2LL << 30))
		return err_set(err, ERR_INVAL, "naive chunk %lld must be a multiple of 4 KiB with chunk x "
			       "2 x parallelism at most 2 GiB", (long long)chunk);
	const int64_t nreq = (ffn + chunk - 1) / chunk;
	char *buf = io_alloc((size_t)(chunk * nbuf), 4096);
	struct io_req *r = malloc((size_t)nreq * sizeof *r);
	int rc = buf && r ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	for (int64_t i = 0; !rc && i < nreq; i++) {
		int64_t off = i * chunk, len = ffn - off < chunk ? (ffn - off + b - 1) / b * b : chunk;
		r[i] = (struct io_req){wi->ffn_offset + off, len, buf + (size_t)(i % nbuf) * chunk};
	}
	/* verification (untimed): batches of nbuf reads, each into its own buffer */
	for (int64_t i = 0; !rc && verify && i < nreq; i += nbuf) {
		const int64_t n = nreq - i < nbuf ? nreq - i : nbuf;
		rc = io_read(io, r + i, (size_t)n, NULL, err);
		for (int64_t k = i; !rc && k < i + n; k++) {
			int64_t rel = r[k].offset - wi->ffn_offset;
			rc = wfile_verify(w, rel, r[k].buf, rel + r[k].bytes > ffn ? ffn - rel : r[k].bytes, err);
		}
	}
	/* timed: every read in one stream, the queue kept full, into the
	 * arena's slices in turn (or 2 x parallelism buffers), contents not
	 * looked at, as calibrate's sequential point reads */
	if (!rc && arena && (size_t)chunk > arena->bytes)
		rc = err_set(err, ERR_INVAL, "naive chunk %lld does not fit in the %zu-byte io arena",
			     (long long)chunk, arena->bytes);
	for (int64_t tok = 0; !rc && tok < tokens; tok++) {
		struct replay_token *rt = &per_token[tok];
		memset(rt, 0, sizeof *rt);
		for (int64_t i = 0; arena && i < nreq; i++)
			r[i].buf = io_arena_take(arena, chunk);
		double t0 = util_now_ns();
		rc = io_read(io, r, (size_t)nreq, NULL, err);
		rt->io_ms = (util_now_ns() - t0) / 1e6;
		rt->reads = nreq, rt->bytes_read = ffn;
		rt->total_ms = rt->io_ms;
	}
	free(buf), free(r);
	return rc;
}
