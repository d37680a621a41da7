/* moereplay: the MoE plan's reads for real (see sim/real/moereplay.h). */
#include <stdlib.h>
#include <string.h>

#include "sim/base/util.h"
#include "sim/real/moereplay.h"

/* The largest batch of one (layer, token), widened, in bytes; its extents. */
static void plan_peak(const struct moe_plan *p, int64_t block, int64_t *bytes, int64_t *reads)
{
	*bytes = *reads = 0;
	for (size_t i = 0; i < (size_t)p->layers * p->tokens; i++) {
		int64_t b = 0, n = p->first[i + 1] - p->first[i];
		for (int64_t j = p->first[i]; j < p->first[i + 1]; j++)
			b += p->len[j] + 2 * block;
		if (b > *bytes)
			*bytes = b;
		if (n > *reads)
			*reads = n;
	}
}

/* What replaying one batch needs: the plan, the file, the engine, the
 * scratch for the requests and where each planned extent lands in the
 * buffer, and the DRAM cache the extents are copied into. */
struct batch {
	const struct moe_plan *p;
	const struct wfile *w;
	struct io_engine *io;
	int verify;
	int64_t block;
	struct io_req *req;
	int64_t *at;
	char *cache;
};

/* Layer l's batch of token t: its extents widened to the engine's block,
 * read into buf at once (io), copied into the cache (mem), checked
 * (untimed) when verify is on; the times and bytes added to ot. */
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
	int64_t cpos = 0;
	s = util_now_ns();
	for (int64_t j = 0; j < n; j++) {
		int64_t len = p->len[p->first[i] + j];
		memcpy(B->cache + cpos, buf + B->at[j], (size_t)len);
		cpos += len;
	}
	u = util_now_ns();
	ot->mem_ms += (u - s) * 1e-6;
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
	int64_t peak, nmax;
	plan_peak(p, block, &peak, &nmax);
	peak = (peak + 4095) / 4096 * 4096;
	if (peak < 4096)
		peak = 4096;
	struct io_req *req = calloc((size_t)(nmax ? nmax : 1), sizeof *req);
	int64_t *at = calloc((size_t)(nmax ? nmax : 1), sizeof *at); /* planned byte's place in buf */
	char *stage = o->arena ? NULL : io_alloc((size_t)peak, 4096);
	char *cache = io_alloc((size_t)peak, 4096);
	int rc = !req || !at || (!o->arena && !stage) || !cache
			 ? err_set(err, ERR_NOMEM, "moe replay: out of memory (%lld bytes per batch)",
				   (long long)peak) : 0;
	if (!rc && o->arena && (int64_t)o->arena->bytes < peak)
		rc = err_set(err, ERR_INVAL, "moe replay: the arena (%lld bytes) is smaller than one "
			     "layer's reads (%lld)", (long long)o->arena->bytes, (long long)peak);
	if (!rc)
		memset(cache, 0, (size_t)peak);
	memset(out, 0, (size_t)T * sizeof *out);
	struct batch B = {p, w, io, o->verify, block, req, at, cache};
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
	free(req), free(at), free(stage), free(cache);
	return rc;
}
