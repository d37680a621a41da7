/* replay: the simulator's decisions with real reads (see sim/real/replay.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/real/replay.h"
#include "sim/base/util.h"
#include "sim/core/step.h"

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

/* Copy each loaded neuron's bundle into its row. */
static int place(struct rlayer *rl, const struct layout *l, int layer, const struct step_out *o,
		 const struct stage *s, int64_t row_bytes, struct lif_err *err)
{
	const int32_t *pos = l->pos + (size_t)layer * l->d_ffn;
	const int32_t *fr = l->friend_of ? l->friend_of + (size_t)layer * l->d_ffn : NULL;
	const int64_t piece = l->regions > 1 ? l->piece_bytes : row_bytes;
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
				memcpy(rl->matrix + (size_t)row * row_bytes + r * piece, src, (size_t)piece);
			}
			row++;
		}
	if (fr)
		for (int i = 0; i < l->d_ffn; i++)
			if ((o->need[i >> 3] >> (i & 7)) & 1 && fr[i] >= 0)
				rl->holder[fr[i]] = -1;
	return 0;
}

static float half_to_float(uint16_t h)
{
	uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
	if (e == 0)
		bits = s; /* zero and subnormals flush to zero */
	else if (e == 31)
		bits = s | 0x7f800000 | (m << 13);
	else
		bits = s | ((e + 112) << 23) | (m << 13);
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static float weight_at(const char *p, int dtype, int i)
{
	uint16_t h;
	float f;
	switch (dtype) {
	case LLM_FP16:
		memcpy(&h, p + 2 * i, 2);
		return half_to_float(h);
	case LLM_BF16: {
		memcpy(&h, p + 2 * i, 2);
		uint32_t b = (uint32_t)h << 16;
		memcpy(&f, &b, 4);
		return f;
	}
	default:
		memcpy(&f, p + 4 * i, 4);
		return f;
	}
}

/* y += down_r * relu(up_r . x) over the first rows rows (a plain loop). */
static void ffn_rows(const char *matrix, int32_t rows, const struct llm_desc *m, const float *x,
		     float *y)
{
	const int d = m->d_model;
	const int64_t piece = (int64_t)d * m->weight_bytes;
	for (int32_t r = 0; r < rows; r++) {
		const char *row = matrix + (size_t)r * m->bundle_bytes;
		float a = 0;
		for (int i = 0; i < d; i++)
			a += weight_at(row, m->dtype, i) * x[i];
		if (a <= 0)
			continue;
		const char *down = row + (m->ffn_matrices - 1) * piece;
		for (int i = 0; i < d; i++)
			y[i] += a * weight_at(down, m->dtype, i);
	}
}

/* Every used row holds its neuron's synthetic bytes (tests). */
static int check_rows(const struct rlayer *rl, const struct memman *mm, const struct llm_desc *m,
		      uint64_t seed, int layer, int64_t tok, struct lif_err *err)
{
	const int64_t piece = (int64_t)m->d_model * m->weight_bytes;
	char *want = malloc((size_t)piece);
	int rc = want ? 0 : err_set(err, ERR_NOMEM, "out of memory");
	for (int32_t r = 0; !rc && r < mm->used; r++)
		for (int k = 0; !rc && k < m->ffn_matrices; k++) {
			wfile_piece(seed, layer, k, mm->row_neuron[r], m->dtype, want, piece);
			if (memcmp(want, rl->matrix + (size_t)r * m->bundle_bytes + k * piece, (size_t)piece))
				rc = err_set(err, ERR_FORMAT, "token %lld layer %d: row %d does not hold "
					     "neuron %d", (long long)tok, layer, r, mm->row_neuron[r]);
		}
	free(want);
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
	const int64_t T = t->meta.tokens, row_bytes = in->stored.bundle_bytes;
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

/* One layer of one token: read, place, compute, copy. */
static int replay_layer(struct rlayer *rl, const struct sim_inputs *in, const struct trace *t,
			const struct wfile *w, struct io_engine *io, const struct replay_opts *o,
			struct stage *s, int layer, int64_t tok, float *x, float *y,
			struct replay_token *rt, struct lif_err *err)
{
	const struct layout *l = in->layout;
	const int64_t T = t->meta.tokens, row_bytes = in->stored.bundle_bytes;
	const int64_t ffn_off = wfile_info(w)->ffn_offset;
	struct step_out so;
	int rc = step_layer_next(rl->step, in->pred + ((size_t)layer * T + tok) * t->row_bytes, &so, err);
	if (!rc)
		rc = stage_fit(s, so.plan, ffn_off, o->arena, err);
	for (size_t i = 0; !rc && o->iolog && i < so.plan->n; i++)
		fprintf(o->iolog, "%s read %lld %lld\n", wfile_path(w), (long long)s->req[i].offset,
			(long long)s->req[i].bytes);
	double t0 = util_now_ns();
	if (!rc)
		rc = io_read(io, s->req, so.plan->n, NULL, err);
	double t1 = util_now_ns();
	for (size_t i = 0; !rc && o->verify && i < so.plan->n; i++)
		rc = wfile_verify(w, so.plan->ext[i].offset, s->buf + s->at[i], so.plan->ext[i].bytes, err);
	double t2 = util_now_ns();
	if (!rc)
		rc = place(rl, l, layer, &so, s, row_bytes, err);
	double t3 = util_now_ns();
	int32_t during = so.window_rows + (int32_t)so.ndie;
	if (!rc && o->compute)
		ffn_rows(rl->matrix, during < rl->rows ? during : rl->rows, &in->stored, x, y);
	double t4 = util_now_ns();
	for (int i = 0; !rc && i < so.nmoves; i++)
		memcpy(rl->matrix + (size_t)so.moves[i].dst * row_bytes,
		       rl->matrix + (size_t)so.moves[i].src * row_bytes, (size_t)row_bytes);
	double t5 = util_now_ns();
	if (!rc && o->check_rows)
		rc = check_rows(rl, step_layer_memman(rl->step), &in->stored, wfile_info(w)->seed, layer,
				tok, err);
	if (rc)
		return rc;
	rt->io_ms += (t1 - t0) / 1e6, rt->place_ms += (t3 - t2) / 1e6;
	rt->compute_ms += (t4 - t3) / 1e6, rt->mem_ms += (t5 - t4) / 1e6;
	rt->bytes_read += so.plan->bytes_read, rt->reads += (int64_t)so.plan->n;
	rt->neurons_loaded += so.nload, rt->rows_copied += so.nmoves;
	return 0;
}

int replay_sparse(const struct sim_inputs *in, const struct trace *t, const struct wfile *w,
		  struct io_engine *io, const struct replay_opts *o, struct replay_token *per_token,
		  struct lif_err *err)
{
	const int L = in->layout->layers;
	const int64_t T = t->meta.tokens;
	const int64_t end = o->tokens > 0 && o->first_token + o->tokens < T ? o->first_token + o->tokens : T;
	if (in->dram.dtype != in->stored.dtype)
		return err_set(err, ERR_INVAL, "replay keeps rows as stored: compute_dtype (%s) must be "
			       "the flash dtype (%s)", llm_dtype_name(in->dram.dtype),
			       llm_dtype_name(in->stored.dtype));
	if (o->compute && in->stored.dtype == LLM_INT8)
		return err_set(err, ERR_INVAL, "replay compute supports fp16, bf16 and fp32 weights");
	int rc = wfile_match(w, in->layout, &in->stored, err);
	struct rlayer *rl = rc ? NULL : layers_new(in, t, end, o->max_matrix_bytes > 0 ?
						   o->max_matrix_bytes : 16LL << 30, err);
	struct stage s = {.block = io_block_bytes(io) > 1 ? io_block_bytes(io) : 1};
	float *x = calloc((size_t)in->stored.d_model, 4), *y = calloc((size_t)in->stored.d_model, 4);
	if (!rc && !rl)
		rc = err->code;
	if (!rc && (!x || !y))
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (int i = 0; x && i < in->stored.d_model; i++)
		x[i] = (float)((i % 13) - 6) / 8;
	memset(per_token, 0, (size_t)T * sizeof *per_token);
	for (int64_t tok = 0; !rc && tok < end; tok++) { /* token-major, as a model runs */
		struct replay_token *rt = &per_token[tok];
		for (int k = 0; !rc && k < L; k++)
			rc = replay_layer(&rl[k], in, t, w, io, o, &s, k, tok, x, y, rt, err);
		rt->total_ms = rt->io_ms + rt->mem_ms + rt->compute_ms;
		if (tok < o->first_token)
			memset(rt, 0, sizeof *rt); /* stepped for state, not timed */
		else if (!rc && o->after_token)
			rc = o->after_token(o->after_ctx, tok, err);
	}
	layers_free(rl, L);
	if (!o->arena)
		free(s.buf);
	free(s.req), free(s.at), free(x), free(y);
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
