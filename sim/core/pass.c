#include "sim/core/pass.h"
#include "sim/core/winor.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif


/* The positions of the set bits of w[0..nw) in ascending order into out
 * (room for their count plus 64); returns the count. Four positions are
 * written for every word, whether it has them or not, then four more when it
 * has more (simdjson's flatten_bits, after Lemire): no branch per bit, the
 * rare branch per word predictable at the densities of need and die sets. */
static inline int flatten_bits_scalar(const uint64_t *w, int nw, int32_t *out)
{
#define NEXT(q) (o[q] = base + (x ? __builtin_ctzll(x) : 0), x &= x - 1)
	int n = 0;
	for (int j = 0; j < nw; j++) {
		uint64_t x = w[j];
		const int c = __builtin_popcountll(x);
		const int32_t base = j * 64;
		int32_t *o = out + n;
		NEXT(0), NEXT(1), NEXT(2), NEXT(3);
		if (c > 4) {
			NEXT(4), NEXT(5), NEXT(6), NEXT(7);
			for (int q = 8; x; q++)
				NEXT(q);
		}
		n += c;
	}
#undef NEXT
	return n;
}

#if defined(__x86_64__)
#define AVX512_VBMI2 __attribute__((target("avx512f,avx512bw,avx512vbmi2")))
/* flatten_bits a word at a time: the positions of its set bits compressed
 * into bytes, widened and stored 16 at a time. */
AVX512_VBMI2 static int flatten_bits_avx512(const uint64_t *w, int nw, int32_t *out)
{
	const __m512i iota = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48,
					     47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32,
					     31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
					     15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	int n = 0;
	for (int j = 0; j < nw; j++) {
		const uint64_t x = w[j];
		const int c = __builtin_popcountll(x);
		const __m512i pos = _mm512_maskz_compress_epi8(x, iota);
		const __m512i base = _mm512_set1_epi32(j * 64);
		_mm512_storeu_si512(out + n, _mm512_add_epi32(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(pos)), base));
		if (c > 16) {
			_mm512_storeu_si512(out + n + 16, _mm512_add_epi32(
				_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(pos, 1)), base));
			_mm512_storeu_si512(out + n + 32, _mm512_add_epi32(
				_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(pos, 2)), base));
			_mm512_storeu_si512(out + n + 48, _mm512_add_epi32(
				_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(pos, 3)), base));
		}
		n += c;
	}
	return n;
}
#endif

static int simd_flatten = -1; /* -1: not yet asked */

static int have_vbmi2(void)
{
#if defined(__x86_64__)
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vbmi2");
#else
	return 0;
#endif
}

static int flatten_bits(const uint64_t *w, int nw, int32_t *out)
{
	if (simd_flatten < 0)
		simd_flatten = have_vbmi2(); /* threads that race here store the same value */
#if defined(__x86_64__)
	if (simd_flatten)
		return flatten_bits_avx512(w, nw, out);
#endif
	return flatten_bits_scalar(w, nw, out);
}

/* A layout's read planner for one layer (the reads of a need set). */
struct pass_reads {
	const struct layout *layout;
	int layer, d, rb, nw, identity;
	int64_t max_gap, units, uw;  /* read units, their words */
	uint64_t *unitw;             /* (uw + 1) read units to read (non-identity layouts) */
	int32_t *idx;                /* (d + 64) the needed neurons (flatten_bits) */
	uint8_t *covered;            /* friends: neurons read this token (packed) */
	/* this token's extent sizes */
	int64_t *sizes;
	int32_t *counts;
	int nsizes, cap;
};

struct pass_layer {
	int layer, d, rb, nw, window, what;
	uint64_t *P, *pin, *need, *R, *U; /* (nw + 1) each */
	struct pass_reads *reads;    /* PASS_READS */
	/* the matrix (sim/core/memman.h, inlined; counts only) */
	int32_t *row_neuron, *neuron_row, *dying, *holes; /* (d) */
	uint8_t *dead_row;           /* (d) */
	int32_t used, peak;
	struct winor win;
};

void pass_reads_free(struct pass_reads *r)
{
	if (!r)
		return;
	free(r->unitw), free(r->idx), free(r->covered), free(r->sizes), free(r->counts);
	free(r);
}

struct pass_reads *pass_reads_new(const struct layout *layout, int layer, int64_t max_gap,
				  struct lif_err *err)
{
	struct pass_reads *r = calloc(1, sizeof *r);
	if (!r) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	const int d = layout->d_ffn;
	r->layout = layout, r->layer = layer, r->d = d;
	r->rb = (d + 7) / 8, r->nw = (r->rb + 7) / 8;
	r->max_gap = max_gap;
	r->identity = layout_is_identity(layout);
	r->units = (d + layout->bundle - 1) / layout->bundle;
	r->uw = (r->units + 63) / 64;
	r->unitw = calloc(r->uw + 1, sizeof *r->unitw);
	r->covered = calloc(r->rb + 8, 1);
	r->idx = malloc(((size_t)d + 64) * sizeof *r->idx);
	r->cap = 64;
	r->sizes = malloc(r->cap * sizeof *r->sizes);
	r->counts = malloc(r->cap * sizeof *r->counts);
	if (!r->unitw || !r->idx || !r->covered || !r->sizes || !r->counts) {
		err_set(err, ERR_NOMEM, "out of memory");
		pass_reads_free(r);
		return NULL;
	}
	return r;
}

void pass_layer_free(struct pass_layer *s)
{
	if (!s)
		return;
	free(s->P);
	pass_reads_free(s->reads);
	free(s->row_neuron), free(s->neuron_row), free(s->dying), free(s->holes), free(s->dead_row);
	winor_free(&s->win);
	free(s);
}

struct pass_layer *pass_layer_new(const struct layout *layout, int layer, int d_ffn,
				  int64_t tokens, int window, int64_t max_gap,
				  const uint8_t *pinned, int what, struct lif_err *err)
{
	struct pass_layer *s = calloc(1, sizeof *s);
	if (!s) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (!layout)
		what &= ~PASS_READS;
	const int d = d_ffn;
	s->what = what;
	s->layer = layer, s->d = d;
	s->rb = (d + 7) / 8, s->nw = (s->rb + 7) / 8;
	s->window = window > tokens ? (int)tokens : window; /* longer than the trace: keep all */
	const size_t w1 = (size_t)s->nw + 1;
	s->P = calloc(5 * w1, sizeof *s->P);
	s->row_neuron = malloc(d * sizeof *s->row_neuron);
	s->neuron_row = malloc(d * sizeof *s->neuron_row);
	s->dying = malloc(((size_t)d + 64) * sizeof *s->dying);
	s->holes = malloc(d * sizeof *s->holes);
	s->dead_row = calloc(d, 1);
	if (!s->P || !s->row_neuron || !s->neuron_row || !s->dying || !s->holes || !s->dead_row ||
	    (s->window > 0 && winor_init(&s->win, s->window, s->nw)) ||
	    ((what & PASS_READS) && !(s->reads = pass_reads_new(layout, layer, max_gap, err)))) {
		err_set(err, ERR_NOMEM, "out of memory");
		pass_layer_free(s);
		return NULL;
	}
	s->pin = s->P + w1, s->need = s->pin + w1, s->R = s->need + w1, s->U = s->R + w1;
	if (pinned)
		memcpy(s->pin, pinned, s->rb);
	return s;
}

int64_t pass_layer_bytes(const struct pass_layer *s)
{
	const int64_t d = s->d, w1 = (int64_t)s->nw + 1, k = s->window;
	int64_t b = (int64_t)sizeof *s + 5 * w1 * (int64_t)sizeof *s->P +
		    d * (int64_t)(sizeof *s->row_neuron + sizeof *s->neuron_row + sizeof *s->holes + 1) +
		    (d + 64) * (int64_t)sizeof *s->dying;
	if (k > 0) /* winor_init: the block, its suffixes and the prefix */
		b += ((k > 0 ? k : 1) + (k + 1) + 1) * (int64_t)s->nw * (int64_t)sizeof(uint64_t);
	return b;
}

const uint64_t *pass_layer_need(const struct pass_layer *s)
{
	return s->need;
}

int32_t pass_layer_peak_rows(const struct pass_layer *s)
{
	return s->peak;
}

/* ---------------------------------------------------------------- reads */

/* Count `n` extents of `size` bytes (first occurrence keeps its place). */
static int hist_add(struct pass_reads *s, int64_t size, int32_t n)
{
	for (int i = 0; i < s->nsizes; i++)
		if (s->sizes[i] == size) {
			s->counts[i] += n;
			return 0;
		}
	if (s->nsizes == s->cap) {
		int cap = 2 * s->cap;
		int64_t *a = realloc(s->sizes, cap * sizeof *a);
		if (a)
			s->sizes = a;
		int32_t *b = realloc(s->counts, cap * sizeof *b);
		if (b)
			s->counts = b;
		if (!a || !b)
			return ERR_NOMEM;
		s->cap = cap;
	}
	s->sizes[s->nsizes] = size;
	s->counts[s->nsizes++] = n;
	return 0;
}

/* Mark the read units of the needed neurons in unitw (any layout). */
static void mark_units(struct pass_reads *s, const uint64_t *need)
{
	const struct layout *l = s->layout;
	const int32_t *pos = l->pos + (size_t)s->layer * l->d_ffn;
	const int32_t *fr = l->friend_of ? l->friend_of + (size_t)s->layer * l->d_ffn : NULL;
	memset(s->unitw, 0, s->uw * sizeof *s->unitw);
	if (!fr && l->bundle == 1) { /* a neuron is a unit: no branch per neuron */
		const int n = flatten_bits(need, s->nw, s->idx);
		for (int k = 0; k < n; k++) {
			int32_t u = pos[s->idx[k]];
			s->unitw[u >> 6] |= 1ull << (u & 63);
		}
		return;
	}
	if (fr)
		memset(s->covered, 0, s->rb);
	for (int j = 0; j < s->nw; j++)
		for (uint64_t w = need[j]; w; w &= w - 1) {
			int i = j * 64 + __builtin_ctzll(w);
			if (fr && ((s->covered[i >> 3] >> (i & 7)) & 1))
				continue; /* came in beside a friend read earlier */
			int64_t u = l->bundle == 1 ? pos[i] : pos[i] / l->bundle;
			s->unitw[u >> 6] |= 1ull << (u & 63);
			if (fr && fr[i] >= 0)
				s->covered[fr[i] >> 3] |= (uint8_t)(1u << (fr[i] & 7));
		}
}

/* The open extent while walking runs (merging reads). */
struct walk {
	int64_t off, bytes; /* bytes < 0: none open */
};

/* One run of units [u0, u1) of region base: one extent when reads merge
 * (merged with the open one across a gap <= max_gap), else one per unit. */
static inline int emit_run(struct pass_reads *s, struct walk *w, int64_t base, int64_t u0,
			   int64_t u1, struct pass_out *o)
{
	const struct layout *l = s->layout;
	const int64_t unit_bytes = (int64_t)l->bundle * l->slot_bytes;
	int64_t s1 = u1 * l->bundle > l->d_ffn ? l->d_ffn : u1 * l->bundle;
	int64_t off = base + u0 * unit_bytes, bytes = (s1 - u0 * l->bundle) * l->slot_bytes;
	o->bytes_read += bytes;
	if (s->max_gap < 0) { /* one read per unit; only the last unit may be short */
		int64_t part = s1 - (u1 - 1) * l->bundle, full = u1 - u0 - (part < l->bundle);
		return (full > 0 && hist_add(s, unit_bytes, (int32_t)full)) ||
		       (part < l->bundle && hist_add(s, part * l->slot_bytes, 1));
	}
	int64_t gap = off - (w->off + w->bytes);
	if (w->bytes >= 0 && gap >= 0 && gap <= s->max_gap) {
		o->bytes_read += gap;
		w->bytes = off + bytes - w->off;
		return 0;
	}
	int rc = w->bytes >= 0 ? hist_add(s, w->bytes, 1) : 0;
	w->off = off, w->bytes = bytes;
	return rc;
}

/* The run counts of a row, word by word (the reference for the SIMD one). */
static void count_runs_scalar(const uint64_t *units, int64_t uw, struct pass_runs *h)
{
	memset(h->cnt, 0, sizeof h->cnt);
	h->n = 0, h->maxm = 0, h->valid = 1, h->long_run = 0;
	uint64_t cin = 0;
	for (int64_t j = 0; j < uw; j++) {
		const uint64_t x = units[j], nx = j + 1 < uw ? units[j + 1] : 0;
		uint64_t a = x & ~(x << 1 | cin); /* run starts */
		cin = x >> 63;
		h->n += __builtin_popcountll(x);
		for (int m = 1; a; m++) {
			if (m == 64) {
				h->long_run = 1;
				return;
			}
			uint64_t longer = a & (x >> m | nx << (64 - m)); /* runs longer than m */
			uint64_t exact = a & ~longer;
			if (exact) {
				h->maxm = m > h->maxm ? m : h->maxm;
				if (!h->cnt[m])
					h->first[m] = j * 64 + __builtin_ctzll(exact);
				h->cnt[m] += __builtin_popcountll(exact);
			}
			a = longer;
		}
	}
}

/* Word j's runs of 4 or more (starts: its starts of runs longer than 3),
 * as count_runs_scalar counts them; 1 when one is 64 or longer. */
static int count_long(const uint64_t *units, int64_t uw, int64_t j, uint64_t a, struct pass_runs *h)
{
	const uint64_t x = units[j], nx = j + 1 < uw ? units[j + 1] : 0;
	for (int m = 4; a; m++) {
		if (m == 64)
			return 1;
		uint64_t longer = a & (x >> m | nx << (64 - m));
		uint64_t exact = a & ~longer;
		if (exact) {
			h->maxm = m > h->maxm ? m : h->maxm;
			if (!h->cnt[m])
				h->first[m] = j * 64 + __builtin_ctzll(exact);
			h->cnt[m] += __builtin_popcountll(exact);
		}
		a = longer;
	}
	return 0;
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f,avx512vpopcntdq")))
/* count_runs_scalar 8 words at a time: the runs of 1, 2 and 3 units counted
 * by vector popcounts, the words with longer runs (rare) word by word, the
 * first run of each short length found by a scan that stops at it. */
AVX512 static void count_runs_avx512(const uint64_t *units, int64_t uw, struct pass_runs *h)
{
	memset(h->cnt, 0, sizeof h->cnt);
	h->n = 0, h->maxm = 0, h->valid = 1, h->long_run = 0;
	const __m512i zero = _mm512_setzero_si512();
	__m512i c1 = zero, c2 = zero, c3 = zero, cn = zero, prev = zero;
	__m512i cur = _mm512_maskz_loadu_epi64(uw >= 8 ? 0xFF : (__mmask8)((1u << uw) - 1), units);
	for (int64_t j = 0; j < uw; j += 8) {
		int64_t left = uw - (j + 8);
		__mmask8 km = left >= 8 ? 0xFF : left > 0 ? (__mmask8)((1u << left) - 1) : 0;
		__m512i nxt = km ? _mm512_maskz_loadu_epi64(km, units + j + 8) : zero;
		const __m512i x = cur;
		__m512i pv = _mm512_alignr_epi64(x, prev, 7); /* the word before each */
		__m512i nv = _mm512_alignr_epi64(nxt, x, 1);  /* the word after each */
		__m512i a = _mm512_andnot_si512(_mm512_or_si512(_mm512_slli_epi64(x, 1), _mm512_srli_epi64(pv, 63)), x);
		__m512i l1 = _mm512_and_si512(a, _mm512_or_si512(_mm512_srli_epi64(x, 1), _mm512_slli_epi64(nv, 63)));
		__m512i l2 = _mm512_and_si512(l1, _mm512_or_si512(_mm512_srli_epi64(x, 2), _mm512_slli_epi64(nv, 62)));
		__m512i l3 = _mm512_and_si512(l2, _mm512_or_si512(_mm512_srli_epi64(x, 3), _mm512_slli_epi64(nv, 61)));
		c1 = _mm512_add_epi64(c1, _mm512_popcnt_epi64(_mm512_andnot_si512(l1, a)));
		c2 = _mm512_add_epi64(c2, _mm512_popcnt_epi64(_mm512_andnot_si512(l2, l1)));
		c3 = _mm512_add_epi64(c3, _mm512_popcnt_epi64(_mm512_andnot_si512(l3, l2)));
		cn = _mm512_add_epi64(cn, _mm512_popcnt_epi64(x));
		__mmask8 lm = _mm512_test_epi64_mask(l3, l3);
		if (lm) {
			uint64_t w[8];
			_mm512_storeu_si512(w, l3);
			for (; lm; lm &= lm - 1) {
				int k = __builtin_ctz(lm);
				if (count_long(units, uw, j + k, w[k], h)) {
					h->long_run = 1;
					return;
				}
			}
		}
		prev = x, cur = nxt;
	}
	h->cnt[1] = (int32_t)_mm512_reduce_add_epi64(c1);
	h->cnt[2] = (int32_t)_mm512_reduce_add_epi64(c2);
	h->cnt[3] = (int32_t)_mm512_reduce_add_epi64(c3);
	h->n = _mm512_reduce_add_epi64(cn);
	for (int m = 1; m <= 3; m++) {
		if (!h->cnt[m])
			continue;
		h->maxm = m > h->maxm ? m : h->maxm;
		uint64_t cin = 0;
		for (int64_t j = 0; j < uw; j++) { /* the first run of exactly m */
			const uint64_t x = units[j], nx = j + 1 < uw ? units[j + 1] : 0;
			uint64_t a = x & ~(x << 1 | cin);
			cin = x >> 63;
			for (int q = 1; q < m; q++)
				a &= x >> q | nx << (64 - q);
			uint64_t exact = a & ~(x >> m | nx << (64 - m));
			if (exact) {
				h->first[m] = j * 64 + __builtin_ctzll(exact);
				break;
			}
		}
	}
}
#endif

static int use_simd = -1; /* -1: not yet asked */

static int have_simd(void)
{
#if defined(__x86_64__)
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
#else
	return 0;
#endif
}

void pass_use_simd(int on)
{
	use_simd = on && have_simd();
	simd_flatten = on && have_vbmi2();
}

void pass_count_runs(const uint64_t *units, int64_t uw, struct pass_runs *h)
{
	if (use_simd < 0)
		use_simd = have_simd(); /* threads that race here store the same value */
#if defined(__x86_64__)
	if (use_simd) {
		count_runs_avx512(units, uw, h);
		return;
	}
#endif
	count_runs_scalar(units, uw, h);
}

/* The common case at word speed: reads merge only when touching (max_gap
 * below the smallest gap), no run crosses a region's end into the next region, no run
 * reaches the short last unit, no run is 64 units or longer. Then every
 * region reads the same runs, an extent is a run, and a run's length is
 * found by shifting its start bit along the word (and the next word).
 * Returns 1 when the row is not of this case (nothing recorded). */
static int plan_words(struct pass_reads *s, const uint64_t *units, struct pass_runs *shared,
		      struct pass_out *o)
{
	const struct layout *l = s->layout;
	const int64_t last = s->units - 1;
	const int64_t unit_bytes = (int64_t)l->bundle * l->slot_bytes;
	/* the smallest gap between two runs: a unit, or the short last unit
	 * between a region's runs and the next region's */
	int64_t min_gap = unit_bytes, part = l->d_ffn % l->bundle;
	min_gap = l->regions > 1 && part && part * l->slot_bytes < min_gap ? part * l->slot_bytes
									 : min_gap;
	if (s->max_gap < 0 || s->max_gap >= min_gap)
		return 1;
	if ((l->regions > 1 && (units[0] & 1) && ((units[last >> 6] >> (last & 63)) & 1)) ||
	    (l->d_ffn % l->bundle && ((units[last >> 6] >> (last & 63)) & 1)))
		return 1;
	struct pass_runs local = {.valid = 0}, *h = shared ? shared : &local;
	if (!h->valid)
		pass_count_runs(units, s->uw, h);
	if (h->long_run)
		return 1;
	/* sizes in order of first occurrence */
	int order[64], no = 0;
	for (int m = 1; m <= h->maxm; m++) {
		if (!h->cnt[m])
			continue;
		int q = no++;
		for (; q > 0 && h->first[order[q - 1]] > h->first[m]; q--)
			order[q] = order[q - 1];
		order[q] = m;
	}
	for (int q = 0; q < no; q++)
		if (hist_add(s, order[q] * unit_bytes, h->cnt[order[q]] * l->regions))
			return ERR_NOMEM;
	o->bytes_read = h->n * unit_bytes * l->regions;
	return 0;
}

/* The extents of the marked units (uw words, bits past the last unit
 * clear), in file order: regions, then runs. A word's runs come from its
 * start bits (set, previous clear) and end bits (set, next clear), a run
 * crossing words stays open. */
static int plan_runs(struct pass_reads *s, const uint64_t *units, struct pass_out *o)
{
	const struct layout *l = s->layout;
	const int64_t uw = s->uw;
	struct walk w = {0, -1};
	for (int r = 0; r < l->regions; r++) {
		const int64_t base = layout_offset(l, s->layer, r, 0);
		int64_t open = -1;
		uint64_t prev_top = 0;
		for (int64_t j = 0; j < uw; j++) {
			const uint64_t x = units[j];
			if (!x) {
				prev_top = 0;
				continue;
			}
			uint64_t next_low = j + 1 < uw ? units[j + 1] & 1 : 0;
			uint64_t starts = x & ~(x << 1 | prev_top);
			uint64_t ends = x & ~(x >> 1 | next_low << 63);
			prev_top = x >> 63;
			for (; ends; ends &= ends - 1) {
				int64_t e = j * 64 + __builtin_ctzll(ends), b = open;
				if (b < 0) {
					b = j * 64 + __builtin_ctzll(starts);
					starts &= starts - 1;
				}
				open = -1;
				if (emit_run(s, &w, base, b, e + 1, o))
					return ERR_NOMEM;
			}
			if (starts)
				open = j * 64 + __builtin_ctzll(starts);
		}
	}
	if (s->max_gap >= 0 && w.bytes >= 0 && hist_add(s, w.bytes, 1))
		return ERR_NOMEM;
	return 0;
}

int pass_reads_plan_shared(struct pass_reads *s, const uint64_t *need, int64_t nload,
			   struct pass_runs *runs, struct pass_out *o, struct lif_err *err)
{
	s->nsizes = 0;
	o->bytes_read = 0;
	if (!s->identity)
		mark_units(s, need);
	const uint64_t *units = s->identity ? need : s->unitw;
	int rc = plan_words(s, units, s->identity ? runs : NULL, o);
	if (rc == 1)
		rc = plan_runs(s, units, o);
	if (rc)
		return err_set(err, ERR_NOMEM, "out of memory planning reads");
	o->useful_bytes = nload * s->layout->piece_bytes * s->layout->regions;
	o->nsizes = s->nsizes, o->sizes = s->sizes, o->counts = s->counts;
	return 0;
}

int pass_reads_plan(struct pass_reads *s, const uint64_t *need, int64_t nload,
		    struct pass_out *o, struct lif_err *err)
{
	return pass_reads_plan_shared(s, need, nload, NULL, o, err);
}

/* ---------------------------------------------------------------- matrix */

/* Append the needed neurons (ascending) as the last rows. */
static void matrix_insert(struct pass_layer *s)
{
	int32_t *restrict list = s->dying, *restrict row_neuron = s->row_neuron + s->used;
	int32_t *restrict neuron_row = s->neuron_row;
	const int n = flatten_bits(s->need, s->nw, list); /* dying is free until step 4 */
	for (int k = 0; k < n; k++) {
		row_neuron[k] = list[k];
		neuron_row[list[k]] = s->used + k;
	}
	s->used += n;
	if (s->used > s->peak)
		s->peak = s->used;
}

/* Delete the n dying neurons as memman_delete does; returns the copies. */
static int32_t matrix_delete(struct pass_layer *s, int n)
{
	int32_t nm = 0, keep = s->used - n, last = s->used - 1;
	for (int k = 0; k < n; k++)
		s->dead_row[s->neuron_row[s->dying[k]]] = 1;
	for (int k = 0; k < n; k++) {
		int32_t hole = s->neuron_row[s->dying[k]];
		s->neuron_row[s->dying[k]] = -1;
		if (hole >= keep)
			continue;
		while (s->dead_row[last])
			last--;
		int32_t moved = s->row_neuron[last];
		s->row_neuron[hole] = moved;
		s->neuron_row[moved] = hole;
		s->dead_row[last--] = 1;
		s->holes[nm++] = hole;
	}
	memset(s->dead_row + keep, 0, (unsigned)n); /* the rows [keep, used) */
	for (int k = 0; k < nm; k++)
		s->dead_row[s->holes[k]] = 0;
	s->used = keep;
	return nm;
}

int pass_layer_next(struct pass_layer *s, const uint8_t *pred_row, struct pass_out *o,
		    struct lif_err *err)
{
	const int nw = s->nw, full = s->rb / 8;
	uint64_t *P = s->P, *pin = s->pin, *need = s->need, *R = s->R, *U = s->U;
	int64_t nload = 0, npred = 0, npinned = 0;
	/* 1: what must be read: predicted, not pinned, not in the window */
	if (full < nw) { /* a short last word */
		P[nw - 1] = 0;
		memcpy(P + full, pred_row + (size_t)full * 8, s->rb - (size_t)full * 8);
	}
	for (int j = 0; j < nw; j++) {
		uint64_t p;
		if (j < full)
			memcpy(&p, pred_row + (size_t)j * 8, 8);
		else
			p = P[j];
		npred += __builtin_popcountll(p);
		npinned += __builtin_popcountll(p & pin[j]);
		p &= ~pin[j];
		P[j] = p;
		need[j] = p & ~R[j];
		nload += __builtin_popcountll(need[j]);
	}
	/* 2: the reads, by runs of read units */
	memset(o, 0, sizeof *o);
	if ((s->what & PASS_READS) && pass_reads_plan(s->reads, need, nload, o, err))
		return err->code;
	o->npred = npred, o->nload = nload;
	if (s->window > 0 && !(s->what & PASS_MATRIX)) { /* the window alone */
		winor_push(&s->win, P, U);
		s->R = U, s->U = R; /* the window after this token is the next one's */
		return 0;
	}
	if (s->window == 0) { /* 3-4 without a matrix: all loaded rows go after the token */
		o->used_rows = (int32_t)(nload + npinned);
		o->ndie = nload;
		s->peak = nload > s->peak ? (int32_t)nload : s->peak;
		return 0;
	}
	/* 3: the loaded neurons go at the end of the matrix */
	matrix_insert(s);
	o->used_rows = s->used + (int32_t)npinned;
	/* 4: the window moves on; delete what leaves it */
	winor_push(&s->win, P, U);
	for (int j = 0; j < nw; j++)
		R[j] = (R[j] | P[j]) & ~U[j]; /* R is the next token's U */
	int ndie = flatten_bits(R, nw, s->dying);
	s->R = U, s->U = R;
	o->nmoves = matrix_delete(s, ndie);
	o->ndie = ndie;
	o->window_rows = s->used;
	return 0;
}
