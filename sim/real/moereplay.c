/* moereplay: the MoE plan's reads for real (see sim/real/moereplay.h). */
#include <stdlib.h>
#include <string.h>

#include "sim/base/util.h"
#include "sim/real/moereplay.h"

/* The largest batch of one (layer, token), widened, in bytes; its extents;
 * its copies. */
static void plan_peak(const struct moe_plan *p, int64_t block, int64_t *bytes, int64_t *reads,
		      int64_t *copies)
{
	*bytes = *reads = *copies = 0;
	for (size_t i = 0; i < (size_t)p->layers * p->tokens; i++) {
		int64_t b = 0, n = p->first[i + 1] - p->first[i];
		if (p->cfirst[i + 1] - p->cfirst[i] > *copies)
			*copies = p->cfirst[i + 1] - p->cfirst[i];
		for (int64_t j = p->first[i]; j < p->first[i + 1]; j++)
			b += p->len[j] + 2 * block;
		if (b > *bytes)
			*bytes = b;
		if (n > *reads)
			*reads = n;
	}
}

/* What replaying one batch needs: the plan, the file, the engine, the
 * scratch for the requests, where each planned extent lands in the buffer
 * and where each copy's source lies in it, and the DRAM expert cache (each
 * layer's area of p->cache_bytes) the kept experts are copied into. */
struct batch {
	const struct moe_plan *p;
	const struct wfile *w;
	struct io_engine *io;
	int verify;
	int64_t block;
	struct io_req *req;
	int64_t *at;
	const char **src;
	char *cache;
};

/* Layer l's batch of token t: its extents widened to the engine's block,
 * read into buf at once (io), the inserted experts copied from there into
 * their cache slots (mem), checked (untimed) when verify is on; the times
 * and bytes added to ot. */
static int replay_batch(const struct batch *B, int l, int64_t t, char *buf, struct moe_replay_token *ot,
			struct lif_err *err)
{
	const struct moe_plan *p = B->p;
	const struct wfile_info *wi = wfile_info(B->w);
	const size_t i = (size_t)l * p->tokens + t;
	const int64_t n = p->first[i + 1] - p->first[i], block = B->block;
	int64_t pos = 0, base = wi->ffn_offset + l * wi->layer_bytes;
	for (int64_t j = 0; j < n; j++) {
		int64_t off = base + p->off[p->first[i] + j], len = p->len[p->first[i] + j];
		int64_t a = off / block * block;
		int64_t e = (off + len + block - 1) / block * block;
		B->req[j] = (struct io_req){.offset = a, .bytes = e - a, .buf = buf + pos};
		B->at[j] = pos + (off - a);
		pos += e - a;
		ot->bytes_read += len;
		ot->bytes_io += e - a;
	}
	double s = util_now_ns();
	int rc = io_read(B->io, B->req, (size_t)n, NULL, err);
	double u = util_now_ns();
	if (rc)
		return rc;
	ot->io_ms += (u - s) * 1e-6;
	ot->reads += n;
	const int64_t c0 = p->cfirst[i], nc = p->cfirst[i + 1] - c0;
	for (int64_t c = 0; c < nc; c++) { /* each copy's source: inside one of the batch's extents */
		int64_t src = p->csrc[c0 + c], len = p->clen[c0 + c], j = 0;
		const int64_t *off = p->off + p->first[i], *elen = p->len + p->first[i];
		while (j < n && !(off[j] <= src && src + len <= off[j] + elen[j]))
			j++;
		if (j == n || p->cdst[c0 + c] < 0 || p->cdst[c0 + c] + len > p->cache_bytes)
			return err_set(err, ERR_INVAL, "moe replay: layer %d token %lld: copy %lld "
				       "(region bytes %lld+%lld to cache byte %lld) is outside the "
				       "batch's reads or the cache", l, (long long)t, (long long)c,
				       (long long)src, (long long)len, (long long)p->cdst[c0 + c]);
		B->src[c] = buf + B->at[j] + (src - off[j]);
	}
	char *area = B->cache + (int64_t)l * p->cache_bytes;
	s = util_now_ns();
	for (int64_t c = 0; c < nc; c++)
		memcpy(area + p->cdst[c0 + c], B->src[c], (size_t)p->clen[c0 + c]);
	u = util_now_ns();
	ot->mem_ms += (u - s) * 1e-6;
	for (int64_t c = 0; c < nc; c++)
		ot->bytes_copied += p->clen[c0 + c];
	ot->copies += nc;
	for (int64_t j = 0; B->verify && !rc && j < n; j++)
		rc = wfile_moe_verify(B->w, l, p->off[p->first[i] + j], buf + B->at[j], p->len[p->first[i] + j],
				      err);
	return rc;
}

int moe_replay(const struct moe_plan *p, const struct llm_desc *m, const struct wfile *w,
	       struct io_engine *io, const struct moe_replay_opts *o, struct moe_replay_token *out,
	       struct lif_err *err)
{
	if (wfile_moe_match(w, m, p->layout, p->slot, err))
		return err->code;
	const int64_t block = io_block_bytes(io) > 0 ? io_block_bytes(io) : 1;
	const int64_t T = p->tokens, t0 = o->first_token;
	const int64_t t1 = o->tokens > 0 && t0 + o->tokens < T ? t0 + o->tokens : T;
	if (t0 < 0 || t0 >= T)
		return err_set(err, ERR_INVAL, "moe replay: first token %lld outside the plan's %lld",
			       (long long)t0, (long long)T);
	int64_t peak, nmax, cmax;
	plan_peak(p, block, &peak, &nmax, &cmax);
	peak = (peak + 4095) / 4096 * 4096;
	if (peak < 4096)
		peak = 4096;
	struct io_req *req = calloc((size_t)(nmax ? nmax : 1), sizeof *req);
	int64_t *at = calloc((size_t)(nmax ? nmax : 1), sizeof *at); /* planned byte's place in buf */
	char *stage = o->arena ? NULL : io_alloc((size_t)peak, 4096);
	const char **src = calloc((size_t)(cmax ? cmax : 1), sizeof *src);
	const int64_t cache_bytes = p->cache_bytes * p->layers;
	char *cache = cache_bytes > 0 ? io_alloc((size_t)cache_bytes, 4096) : NULL;
	int rc = !req || !at || !src || (!o->arena && !stage)
			 ? err_set(err, ERR_NOMEM, "moe replay: out of memory (%lld bytes per batch)",
				   (long long)peak)
		 : cache_bytes > 0 && !cache
			 ? err_set(err, ERR_NOMEM, "moe replay: out of memory for the expert cache "
				   "(%lld bytes: %d layers x %lld)", (long long)cache_bytes, p->layers,
				   (long long)p->cache_bytes) : 0;
	if (!rc && o->arena && (int64_t)o->arena->bytes < peak)
		rc = err_set(err, ERR_INVAL, "moe replay: the arena (%lld bytes) is smaller than one "
			     "layer's reads (%lld)", (long long)o->arena->bytes, (long long)peak);
	if (!rc && cache) /* touched before timing: a running cache's pages are mapped */
		memset(cache, 0, (size_t)cache_bytes);
	memset(out, 0, (size_t)T * sizeof *out);
	struct batch B = {p, w, io, o->verify, block, req, at, src, cache};
	for (int64_t t = t0; !rc && t < t1; t++) {
		struct moe_replay_token *ot = &out[t];
		for (int l = 0; !rc && l < p->layers; l++) {
			char *buf = p->first[(size_t)l * T + t + 1] == p->first[(size_t)l * T + t] ? NULL
				    : o->arena ? io_arena_take(o->arena, peak) : stage;
			if (buf)
				rc = replay_batch(&B, l, t, buf, ot, err);
		}
		ot->total_ms = ot->io_ms + ot->mem_ms;
		if (!rc && o->after_token)
			rc = o->after_token(o->after_ctx, t, err);
	}
	free(req), free(at), free(src), free(stage), free(cache);
	return rc;
}
