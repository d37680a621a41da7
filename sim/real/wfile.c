/* wfile: the weight file (see sim/real/wfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include "sim/core/moe.h"
#include "sim/real/io.h"
#include "sim/real/wfile.h"

/* The header as stored (fixed-width fields, little-endian host). */
struct disk_header {
	char magic[8];
	uint32_t version, layout, bundle, layers, d_model, d_ffn, ffn_matrices, dtype, regions, nindex;
	int64_t piece_bytes, slot_bytes, layer_bytes;
	uint64_t seed;
	char model[64];
	struct wfile_region index[4];
	uint64_t sum; /* wfile_hash of everything above (padded to 8) */
	/* version 2: the rest of the file is covered too */
	uint64_t tables_sum; /* table_hash of the pos, friend and sums regions */
	uint64_t sum2;       /* wfile_hash of everything above */
	/* version 3: MoE expert files (dense files stay version 2); zero before */
	uint32_t experts, expert_layout, d_expert, spare;
	int64_t expert_bytes, expert_matrix_bytes;
	uint64_t sum3;       /* wfile_hash of everything above */
};

/* wfile_hash of p, with the bytes past its last whole 8 mixed in. */
static uint64_t table_hash(const void *p, size_t bytes)
{
	uint64_t h = wfile_hash(p, bytes - bytes % 8), tail = 0;
	memcpy(&tail, (const char *)p + bytes - bytes % 8, bytes % 8);
	return (h ^ tail) * 0x9e3779b97f4a7c15ULL ^ bytes;
}

/* The header's checksum of the tables, in index order. */
static uint64_t tables_hash(const struct wfile_region *index, int nindex, const void *const *tables)
{
	uint64_t h = 0x452821e638d01377ULL;
	for (int i = 1; i < nindex; i++)
		h = (h ^ table_hash(tables[i], (size_t)index[i].bytes)) * 0xbf58476d1ce4e5b9ULL;
	return h;
}

struct wfile {
	char path[4096];
	struct wfile_info info;
	int32_t *pos;      /* (layers, d_ffn) */
	int32_t *friend_of;/* (layers, d_ffn) or NULL */
	uint64_t *sums;    /* (layers, regions, d_ffn); MoE: (layers, experts x matrices) */
	int32_t *slot;     /* MoE: (layers, experts) */
};

/* The table a region name holds (the FFN/experts region has none). */
static void **table_of(struct wfile *w, const char *name)
{
	return !strcmp(name, "pos")	 ? (void **)&w->pos
	       : !strcmp(name, "friend") ? (void **)&w->friend_of
	       : !strcmp(name, "slot")	 ? (void **)&w->slot
	       : !strcmp(name, "sums")	 ? (void **)&w->sums
					 : NULL;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t wfile_hash(const void *p, size_t bytes)
{
	const uint64_t *w = p;
	uint64_t h = 0x243f6a8885a308d3ULL ^ bytes, g = 0x13198a2e03707344ULL;
	size_t n = bytes / 8, i = 0;
	for (; i + 2 <= n; i += 2) { /* two lanes for speed */
		h = ((h ^ (w[i] * 0x87c37b91114253d5ULL)) << 31 | (h ^ (w[i] * 0x87c37b91114253d5ULL)) >> 33) * 0x4cf5ad432745937fULL;
		g = ((g ^ (w[i + 1] * 0x4cf5ad432745937fULL)) << 29 | (g ^ (w[i + 1] * 0x4cf5ad432745937fULL)) >> 35) * 0x87c37b91114253d5ULL;
	}
	if (i < n)
		h = (h ^ w[i]) * 0x9e3779b97f4a7c15ULL;
	h ^= g * 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h * 0xc4ceb9fe1a85ec53ULL;
}

/* Map 64 random bits to finite values of magnitude 2^-7 .. 1. */
static uint64_t shape_bits(uint64_t x, int dtype)
{
	switch (dtype) {
	case LLM_FP16: /* sign, 3 random exponent bits over 8..15, mantissa */
		return (x & 0x83ff83ff83ff83ffULL) | 0x2000200020002000ULL;
	case LLM_BF16: /* exponent 120..127 */
		return (x & 0x807f807f807f807fULL) | 0x3c003c003c003c00ULL;
	case LLM_FP32:
		return (x & 0x83ffffff83ffffffULL) | 0x3c0000003c000000ULL;
	default:
		return x;
	}
}

void wfile_piece(uint64_t seed, int layer, int matrix, int neuron, int dtype, void *out,
		 int64_t bytes)
{
	uint64_t s = seed ^ ((uint64_t)layer << 40) ^ ((uint64_t)matrix << 32) ^ (uint64_t)neuron;
	s = splitmix(&s);
	uint64_t *w = out;
	for (int64_t i = 0; i < bytes / 8; i++)
		w[i] = shape_bits(splitmix(&s), dtype);
}

int64_t wfile_free_bytes(const char *path, struct lif_err *err)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	struct statvfs v;
	if (statvfs(slash ? dir : ".", &v))
		return err_set(err, ERR_IO, "%s: cannot check free space: %s", slash ? dir : ".",
			       strerror(errno)), -1;
	return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

int wfile_check_room(const char *path, int64_t need, int64_t free_bytes, struct lif_err *err)
{
	if (need <= free_bytes - WFILE_SPARE_BYTES)
		return 0;
	return err_set(err, ERR_NOSPACE,
		       "%s: not enough room on disk: needs %.3f GB, the disk has %.3f GB free "
		       "(%.3f GB are kept spare)",
		       path, need / 1e9, free_bytes / 1e9, WFILE_SPARE_BYTES / 1e9);
}

/* A file being written atomically at large size. */
struct big {
	char path[4096], tmp[4200];
	int fd;
};

static int big_open(struct big *b, const char *path, int64_t bytes, struct lif_err *err)
{
	int64_t avail = wfile_free_bytes(path, err);
	if (avail < 0 || wfile_check_room(path, bytes, avail, err))
		return err->code;
	snprintf(b->path, sizeof b->path, "%s", path);
	snprintf(b->tmp, sizeof b->tmp, "%s.tmp", path);
	b->fd = open(b->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (b->fd < 0)
		return err_set(err, ERR_IO, "%s: cannot create: %s", b->tmp, strerror(errno));
	int rc = posix_fallocate(b->fd, 0, bytes); /* room now, not half-way */
	if (rc && rc != EOPNOTSUPP && rc != EINVAL) {
		close(b->fd), unlink(b->tmp);
		return err_set(err, rc == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: cannot reserve %lld bytes: %s",
			       path, (long long)bytes, strerror(rc));
	}
	return 0;
}

static int big_write(struct big *b, const void *p, int64_t bytes, int64_t off, struct lif_err *err)
{
	for (int64_t done = 0; done < bytes;) {
		ssize_t k = pwrite(b->fd, (const char *)p + done, (size_t)(bytes - done), off + done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return err_set(err, errno == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: write failed: %s",
				       b->path, k ? strerror(errno) : "no progress");
		done += k;
	}
	return 0;
}

static void big_abort(struct big *b)
{
	if (b->fd >= 0)
		close(b->fd), unlink(b->tmp);
	b->fd = -1;
}

static int big_commit(struct big *b, struct lif_err *err)
{
	int bad = fsync(b->fd), saved = errno;
	bad |= close(b->fd);
	b->fd = -1;
	if (bad || rename(b->tmp, b->path)) {
		saved = bad ? saved : errno;
		unlink(b->tmp);
		return err_set(err, ERR_IO, "%s: cannot complete the write: %s", b->path, strerror(saved));
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", b->path);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[1] = '\0';
	int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
	if (fd >= 0)
		fsync(fd), close(fd);
	return 0;
}

/* The end of every writer: the tables (index 1 on), their checksum, the
 * header's checksums (sum3 from version 3), the header page at offset 0,
 * the file's final length and the rename into place. */
static int finish_file(struct big *b, struct disk_header *h, const void *const tables[4], void *page,
		       int64_t total, struct lif_err *err)
{
	int rc = 0;
	for (int i = 1; !rc && i < (int)h->nindex; i++)
		rc = big_write(b, tables[i], h->index[i].bytes, h->index[i].offset, err);
	if (!rc) {
		h->tables_sum = tables_hash(h->index, (int)h->nindex, tables);
		h->sum2 = wfile_hash(h, offsetof(struct disk_header, sum2));
		if (h->version >= 3)
			h->sum3 = wfile_hash(h, offsetof(struct disk_header, sum3));
		memcpy(page, h, sizeof *h);
		rc = big_write(b, page, WFILE_ALIGN, 0, err);
	}
	if (!rc && ftruncate(b->fd, total))
		rc = err_set(err, ERR_IO, "%s: %s", b->path, strerror(errno));
	return rc ? rc : big_commit(b, err);
}

int wfile_write_random(const char *path, int64_t bytes, uint64_t seed, struct lif_err *err)
{
	struct big b = {.fd = -1};
	const int64_t chunk = 8 << 20;
	if (bytes <= 0 || bytes % 4096)
		return err_set(err, ERR_INVAL, "%s: size %lld must be a positive multiple of 4096",
			       path, (long long)bytes);
	uint64_t *buf = malloc(chunk);
	if (!buf)
		return err_set(err, ERR_NOMEM, "out of memory");
	int rc = big_open(&b, path, bytes, err);
	for (int64_t off = 0; !rc && off < bytes; off += chunk) {
		int64_t n = bytes - off < chunk ? bytes - off : chunk;
		for (int64_t i = 0; i < n / 8; i++)
			buf[i] = splitmix(&seed);
		rc = big_write(&b, buf, n, off, err);
	}
	if (!rc)
		rc = big_commit(&b, err);
	big_abort(&b);
	free(buf);
	return rc;
}

static int64_t align_up(int64_t x) { return (x + WFILE_ALIGN - 1) / WFILE_ALIGN * WFILE_ALIGN; }

/* The header of model m in layout l (regions laid out one after another). */
static void make_header(struct disk_header *h, const struct llm_desc *m, const struct layout *l,
			uint64_t seed)
{
	memset(h, 0, sizeof *h);
	memcpy(h->magic, WFILE_MAGIC, 8);
	h->version = WFILE_VERSION, h->layout = (uint32_t)l->kind, h->bundle = (uint32_t)l->bundle;
	h->layers = (uint32_t)m->layers, h->d_model = (uint32_t)m->d_model, h->d_ffn = (uint32_t)m->d_ffn;
	h->ffn_matrices = (uint32_t)m->ffn_matrices, h->dtype = (uint32_t)m->dtype;
	h->regions = (uint32_t)l->regions;
	h->piece_bytes = l->piece_bytes, h->slot_bytes = l->slot_bytes, h->layer_bytes = l->layer_bytes;
	h->seed = seed;
	snprintf(h->model, sizeof h->model, "%s", m->name);
	const int64_t tab = (int64_t)m->layers * m->d_ffn * 4;
	const char *names[4] = {"ffn", "pos", "friend", "sums"};
	const int64_t sizes[4] = {l->layer_bytes * m->layers, tab, l->friend_of ? tab : 0,
				  (int64_t)m->layers * l->regions * m->d_ffn * 8};
	int64_t off = WFILE_ALIGN;
	for (int i = 0; i < 4; i++) {
		if (!sizes[i])
			continue;
		struct wfile_region *r = &h->index[h->nindex++];
		snprintf(r->name, sizeof r->name, "%s", names[i]);
		r->offset = off, r->bytes = sizes[i];
		off = align_up(off + sizes[i]);
	}
	h->sum = wfile_hash(h, offsetof(struct disk_header, sum));
}

/* Fill one layer of the FFN region in buf and its checksums. */
static void fill_layer(const struct llm_desc *m, const struct layout *l,
		       const struct wfile_source *src, int layer, char *buf, uint64_t *sums, int threads)
{
	const int d = m->d_ffn;
	const int64_t piece = (int64_t)m->d_model * m->weight_bytes;
	const int32_t *pos = l->pos + (size_t)layer * d;
	const int32_t *fr = l->friend_of ? l->friend_of + (size_t)layer * d : NULL;
	#pragma omp parallel for num_threads(threads) schedule(static)
	for (int n = 0; n < d; n++) {
		for (int r = 0; r < l->regions; r++) {
			/* slot pos[n] of region r holds n's piece(s), then its friend's */
			char *slot = buf + r * l->region_bytes + (int64_t)pos[n] * l->slot_bytes;
			int first = l->regions > 1 ? r : 0, count = l->regions > 1 ? 1 : m->ffn_matrices;
			for (int k = 0; k < count; k++)
				src->piece(src->src_ctx, layer, first + k, n, slot + k * piece, piece);
			for (int k = 0; fr && k < count; k++)
				src->piece(src->src_ctx, layer, k, fr[n] >= 0 ? fr[n] : n,
					   slot + m->bundle_bytes + k * piece, piece);
			sums[(size_t)r * d + pos[n]] = wfile_hash(slot, (size_t)l->slot_bytes);
		}
	}
}

struct synth_src {
	uint64_t seed;
	int dtype;
};

static void synth_piece(void *c, int layer, int matrix, int neuron, void *out, int64_t bytes)
{
	const struct synth_src *s = c;
	wfile_piece(s->seed, layer, matrix, neuron, s->dtype, out, bytes);
}

int wfile_write(const char *path, const struct llm_desc *m, const struct layout *l,
		uint64_t seed, int threads, void (*progress)(void *ctx, int done, int total),
		void *ctx, struct lif_err *err)
{
	struct synth_src s = {seed, m->dtype};
	const struct wfile_source src = {synth_piece, &s};
	return wfile_write_from(path, m, l, &src, seed, threads, progress, ctx, err);
}

int wfile_write_from(const char *path, const struct llm_desc *m, const struct layout *l,
		     const struct wfile_source *src, uint64_t seed, int threads,
		     void (*progress)(void *ctx, int done, int total), void *ctx,
		     struct lif_err *err)
{
	struct disk_header h;
	make_header(&h, m, l, seed);
	const struct wfile_region *last = &h.index[h.nindex - 1];
	const int64_t total = last->offset + last->bytes;
	if (((int64_t)m->d_model * m->weight_bytes) % 8)
		return err_set(err, ERR_INVAL, "%s: d_model * bytes per weight = %lld is not a multiple "
			       "of 8", path, (long long)m->d_model * m->weight_bytes);
	struct big b = {.fd = -1};
	const size_t nsum = (size_t)m->layers * l->regions * m->d_ffn;
	char *buf = malloc((size_t)l->layer_bytes), *page = calloc(1, WFILE_ALIGN);
	uint64_t *sums = malloc(nsum * 8);
	int rc = !buf || !page || !sums ? err_set(err, ERR_NOMEM, "out of memory for one layer "
					       "(%lld bytes)", (long long)l->layer_bytes) : 0;
	if (!rc)
		rc = big_open(&b, path, total, err);
	for (int layer = 0; !rc && layer < m->layers; layer++) {
		fill_layer(m, l, src, layer, buf, sums + (size_t)layer * l->regions * m->d_ffn,
			   threads < 1 ? 1 : threads);
		rc = big_write(&b, buf, l->layer_bytes, h.index[0].offset + layer * l->layer_bytes, err);
		if (progress)
			progress(ctx, layer + 1, m->layers);
	}
	const void *tables[4] = {NULL};
	for (int i = 1; i < (int)h.nindex; i++)
		tables[i] = !strcmp(h.index[i].name, "pos")	 ? (const void *)l->pos
			    : !strcmp(h.index[i].name, "friend") ? (const void *)l->friend_of
								 : (const void *)sums;
	if (!rc)
		rc = finish_file(&b, &h, tables, page, total, err);
	big_abort(&b);
	free(buf), free(page), free(sums);
	return rc;
}

/* ---- reading ---- */

static int read_at(int fd, void *p, int64_t bytes, int64_t off)
{
	for (int64_t done = 0; done < bytes;) {
		ssize_t k = pread(fd, (char *)p + done, (size_t)(bytes - done), off + done);
		if (k <= 0)
			return -1;
		done += k;
	}
	return 0;
}

static int check_header(const struct disk_header *h, int64_t size, struct wfile_info *in,
			struct lif_err *err)
{
	if (memcmp(h->magic, WFILE_MAGIC, 8))
		return err_set(err, ERR_FORMAT, "not a lifsim weight file (no %s magic)", WFILE_MAGIC);
	if (h->version < 1 || h->version > WFILE_VERSION_MOE)
		return err_set(err, ERR_FORMAT, "weight file version %u (this lifsim reads 1 to %d)",
			       h->version, WFILE_VERSION_MOE);
	if (h->sum != wfile_hash(h, offsetof(struct disk_header, sum)) ||
	    (h->version >= 2 && h->sum2 != wfile_hash(h, offsetof(struct disk_header, sum2))) ||
	    (h->version >= 3 && h->sum3 != wfile_hash(h, offsetof(struct disk_header, sum3))))
		return err_set(err, ERR_FORMAT, "corrupt header (checksum mismatch)");
	const int moe = h->version >= 3;
	if (!moe && (h->experts || h->expert_layout || h->d_expert || h->spare || h->expert_bytes ||
		     h->expert_matrix_bytes || h->sum3))
		return err_set(err, ERR_FORMAT, "corrupt padding: version %u header with version 3 "
			       "fields set", h->version);
	if (moe && (!moe_layout_choice((int)h->expert_layout) || h->nindex != 3 || !h->layers ||
		    h->layers > LLM_MAX_LAYERS || !h->experts || h->experts > 4096 || !h->d_model ||
		    h->ffn_matrices < 2 || h->ffn_matrices > 3 || h->expert_matrix_bytes <= 0 ||
		    h->expert_bytes != h->expert_matrix_bytes * h->ffn_matrices ||
		    h->layer_bytes != h->expert_bytes * h->experts))
		return err_set(err, ERR_FORMAT, "corrupt header (inconsistent MoE dimensions)");
	if (!moe && (!layout_by_kind((int)h->layout) || h->nindex < 3 || h->nindex > 4 || !h->layers ||
	    h->layers > LLM_MAX_LAYERS || !h->d_ffn || !h->d_model || h->regions < 1 || h->regions > 3 ||
	    h->slot_bytes <= 0 || h->layer_bytes != h->slot_bytes * h->d_ffn * h->regions))
		return err_set(err, ERR_FORMAT, "corrupt header (inconsistent dimensions)");
	*in = (struct wfile_info){.version = (int)h->version, .layout = (int)h->layout,
				  .bundle = (int)h->bundle, .layers = (int)h->layers,
				  .d_model = (int)h->d_model, .d_ffn = (int)h->d_ffn,
				  .ffn_matrices = (int)h->ffn_matrices, .dtype = (int)h->dtype,
				  .regions = (int)h->regions, .piece_bytes = h->piece_bytes,
				  .slot_bytes = h->slot_bytes, .layer_bytes = h->layer_bytes,
				  .seed = h->seed, .nindex = (int)h->nindex,
				  .experts = moe ? (int)h->experts : 0,
				  .expert_layout = (int)h->expert_layout, .d_expert = (int)h->d_expert,
				  .expert_bytes = h->expert_bytes,
				  .expert_matrix_bytes = h->expert_matrix_bytes};
	memcpy(in->model, h->model, sizeof in->model);
	in->model[63] = '\0';
	memcpy(in->index, h->index, sizeof in->index);
	in->ffn_offset = h->index[0].offset;
	const struct wfile_region *last = &h->index[h->nindex - 1];
	in->file_bytes = last->offset + last->bytes;
	if (size != in->file_bytes)
		return err_set(err, ERR_FORMAT, "file is %lld bytes but its header says %lld "
			       "(truncated or not completely written?)", (long long)size,
			       (long long)in->file_bytes);
	return 0;
}

/* Version 2: the tables match the header's checksum, and every byte outside
 * the header struct, the slots and the tables (alignment padding) is zero:
 * no byte of the file goes unchecked. */
static int check_rest(int fd, const struct disk_header *h, struct wfile *w,
		      struct lif_err *err)
{
	const void *tables[4] = {NULL};
	for (int i = 1; i < (int)h->nindex; i++)
		tables[i] = *table_of(w, h->index[i].name);
	if (h->tables_sum != tables_hash(h->index, (int)h->nindex, tables))
		return err_set(err, ERR_FORMAT, "corrupt tables (pos, friend or sums: checksum "
			       "mismatch)");
	char pad[WFILE_ALIGN];
	int64_t from = (int64_t)sizeof *h;
	for (int i = 0; i <= (int)h->nindex; i++) {
		int64_t to = i < (int)h->nindex ? h->index[i].offset : from;
		if (to < from || to - from > WFILE_ALIGN)
			return err_set(err, ERR_FORMAT, "corrupt index: region %d", i);
		if (to > from && read_at(fd, pad, to - from, from))
			return err_set(err, ERR_IO, "cannot read the padding at %lld", (long long)from);
		for (int64_t k = 0; k < to - from; k++)
			if (pad[k])
				return err_set(err, ERR_FORMAT, "corrupt padding: byte %lld is not zero",
					       (long long)(from + k));
		if (i < (int)h->nindex)
			from = h->index[i].offset + h->index[i].bytes;
	}
	return 0;
}

struct wfile *wfile_open(const char *path, struct lif_err *err)
{
	struct wfile *w = calloc(1, sizeof *w);
	struct disk_header h;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = !w ? err_set(err, ERR_NOMEM, "out of memory") : 0;
	if (!rc && (fd < 0 || fstat(fd, &st)))
		rc = err_set(err, ERR_IO, "cannot open: %s", strerror(errno));
	if (!rc && (st.st_size < (off_t)sizeof h || read_at(fd, &h, sizeof h, 0)))
		rc = err_set(err, ERR_FORMAT, "too short for a weight file header (%lld bytes)",
			     (long long)st.st_size);
	if (!rc)
		rc = check_header(&h, st.st_size, &w->info, err);
	if (!rc) {
		snprintf(w->path, sizeof w->path, "%s", path);
		const int moe = w->info.experts > 0;
		const size_t tab = (size_t)w->info.layers * (moe ? w->info.experts : w->info.d_ffn);
		const size_t per = moe ? (size_t)w->info.ffn_matrices : (size_t)w->info.regions;
		for (int i = 1; !rc && i < w->info.nindex; i++) {
			const struct wfile_region *r = &w->info.index[i];
			void **dst = table_of(w, r->name);
			size_t want = !dst ? 0 : !strcmp(r->name, "sums") ? tab * per * 8 : tab * 4;
			if (!dst || (moe != !strcmp(r->name, "slot") && strcmp(r->name, "sums")) ||
			    (size_t)r->bytes != want || *dst)
				rc = err_set(err, ERR_FORMAT, "corrupt index: region '%s'", r->name);
			else if (!(*dst = malloc(want)))
				rc = err_set(err, ERR_NOMEM, "out of memory");
			else if (read_at(fd, *dst, r->bytes, r->offset))
				rc = err_set(err, ERR_IO, "cannot read region '%s'", r->name);
		}
		const struct layout_ops *ops = layout_by_kind(w->info.layout);
		if (!rc && (moe ? !w->slot || !w->sums
				: !w->pos || !w->sums || (ops && ops->pairs) != !!w->friend_of))
			rc = err_set(err, ERR_FORMAT, "corrupt index: a table is missing");
		for (size_t i = 0; !rc && moe && i < tab; i++)
			if (w->slot[i] < 0 || w->slot[i] >= w->info.experts)
				rc = err_set(err, ERR_FORMAT, "corrupt slot table: entry %zu is %d",
					     i, w->slot[i]);
		if (!rc && h.version >= 2)
			rc = check_rest(fd, &h, w, err);
	}
	if (fd >= 0)
		close(fd);
	if (rc) {
		err_prefix(err, "%s", path);
		wfile_close(w);
		return NULL;
	}
	return w;
}

void wfile_close(struct wfile *w)
{
	if (!w)
		return;
	free(w->pos), free(w->friend_of), free(w->sums), free(w->slot);
	free(w);
}

const struct wfile_info *wfile_info(const struct wfile *w) { return &w->info; }
const char *wfile_path(const struct wfile *w) { return w->path; }

int wfile_match(const struct wfile *w, const struct layout *l, const struct llm_desc *m,
		struct lif_err *err)
{
	const struct wfile_info *i = &w->info;
	const size_t tab = (size_t)i->layers * i->d_ffn;
	if (i->experts)
		return err_set(err, ERR_INVAL, "%s: an MoE expert file (%s, %d experts per layer); "
			       "a dense replay needs a file from lifsim layout of a dense model",
			       w->path, i->model, i->experts);
	if (i->layers != m->layers || i->d_ffn != m->d_ffn || i->d_model != m->d_model ||
	    i->dtype != m->dtype || i->ffn_matrices != m->ffn_matrices)
		return err_set(err, ERR_INVAL,
			       "%s: written for %d layers x %d neurons, d_model %d, %s; the point "
			       "needs %d x %d, d_model %d, %s",
			       w->path, i->layers, i->d_ffn, i->d_model, llm_dtype_name(i->dtype),
			       m->layers, m->d_ffn, m->d_model, llm_dtype_name(m->dtype));
	if (i->layout != l->kind || i->slot_bytes != l->slot_bytes || i->regions != l->regions)
		return err_set(err, ERR_INVAL, "%s: written in layout %s; the point uses %s", w->path,
			       layout_by_kind(i->layout)->name, layout_by_kind(l->kind)->name);
	if (memcmp(w->pos, l->pos, tab * 4) ||
	    (w->friend_of && memcmp(w->friend_of, l->friend_of, tab * 4)))
		return err_set(err, ERR_INVAL, "%s: its %s neuron order differs from the point's "
			       "(written from another trace or train_tokens?)", w->path,
			       layout_by_kind(l->kind)->name);
	return 0;
}

int wfile_verify(const struct wfile *w, int64_t offset, const void *buf, int64_t bytes,
		 struct lif_err *err)
{
	const struct wfile_info *i = &w->info;
	const int64_t sb = i->slot_bytes, region_bytes = sb * i->d_ffn;
	for (int64_t s = (offset + sb - 1) / sb; (s + 1) * sb <= offset + bytes; s++) {
		const int64_t at = s * sb; /* slots tile the FFN region */
		const int64_t layer = at / i->layer_bytes, r = at % i->layer_bytes / region_bytes;
		const int64_t slot = at % region_bytes / sb;
		if (layer >= i->layers)
			break;
		uint64_t want = w->sums[((size_t)layer * i->regions + r) * i->d_ffn + slot];
		if (wfile_hash((const char *)buf + (at - offset), (size_t)sb) != want)
			return err_set(err, ERR_FORMAT,
				       "%s: checksum mismatch at layer %lld region %lld slot %lld (file "
				       "offset %lld): the bytes read are not the ones written",
				       w->path, (long long)layer, (long long)r, (long long)slot,
				       (long long)(i->ffn_offset + at));
	}
	return 0;
}

/* ---- MoE expert files (version 3) ---- */

/* A version-3 header for model m's experts in layout (regions experts,
 * slot, sums; its sum over the v1 part; the tables' sums are the writer's). */
static void moe_header(struct disk_header *h, const struct llm_desc *m, int layout, uint64_t seed)
{
	const int L = m->moe_layers, E = m->experts, M = m->ffn_matrices;
	const int64_t piece = m->expert_matrix_bytes, region = moe_region_bytes(m);
	memset(h, 0, sizeof *h);
	memcpy(h->magic, WFILE_MAGIC, 8);
	h->version = WFILE_VERSION_MOE, h->layers = (uint32_t)L, h->d_model = (uint32_t)m->d_model;
	h->d_ffn = (uint32_t)m->d_expert, h->ffn_matrices = (uint32_t)M, h->dtype = (uint32_t)m->dtype;
	h->regions = (uint32_t)M, h->piece_bytes = piece, h->slot_bytes = m->expert_bytes;
	h->layer_bytes = region, h->seed = seed;
	snprintf(h->model, sizeof h->model, "%s", m->name);
	const char *names[3] = {"experts", "slot", "sums"};
	const int64_t sizes[3] = {region * L, (int64_t)L * E * 4, (int64_t)L * E * M * 8};
	int64_t off = WFILE_ALIGN;
	for (int i = 0; i < 3; i++) {
		struct wfile_region *r = &h->index[h->nindex++];
		snprintf(r->name, sizeof r->name, "%s", names[i]);
		r->offset = off, r->bytes = sizes[i];
		off = align_up(off + sizes[i]);
	}
	h->sum = wfile_hash(h, offsetof(struct disk_header, sum));
	h->experts = (uint32_t)E, h->expert_layout = (uint32_t)layout, h->d_expert = (uint32_t)m->d_expert;
	h->expert_bytes = m->expert_bytes, h->expert_matrix_bytes = piece;
}

int wfile_write_moe(const char *path, const struct llm_desc *m, int layout, const int *slot,
		    uint64_t seed, void (*progress)(void *ctx, int done, int total), void *ctx,
		    struct lif_err *err)
{
	if (!llm_is_moe(m))
		return err_set(err, ERR_INVAL, "%s: %s is not a mixture-of-experts model", path, m->name);
	const int L = m->moe_layers, E = m->experts, M = m->ffn_matrices;
	const int64_t piece = m->expert_matrix_bytes, region = moe_region_bytes(m);
	if (piece % 8)
		return err_set(err, ERR_INVAL, "%s: one expert matrix is %lld bytes, not a multiple of 8",
			       path, (long long)piece);
	for (int i = 0; i < L * E; i++)
		if (slot[i] < 0 || slot[i] >= E)
			return err_set(err, ERR_INVAL, "%s: slot %d of entry %d outside [0, %d)", path,
				       slot[i], i, E);
	struct disk_header h;
	moe_header(&h, m, layout, seed);
	const int64_t total = h.index[2].offset + h.index[2].bytes;
	struct big b = {.fd = -1};
	char *buf = malloc((size_t)region), *page = calloc(1, WFILE_ALIGN);
	uint64_t *sums = malloc((size_t)L * E * M * 8);
	int32_t *slots = malloc((size_t)L * E * 4);
	int rc = !buf || !page || !sums || !slots
			 ? err_set(err, ERR_NOMEM, "out of memory for one layer (%lld bytes)",
				   (long long)region) : 0;
	if (!rc)
		rc = big_open(&b, path, total, err);
	for (int l = 0; !rc && l < L; l++) {
		for (int e = 0; e < E; e++) {
			int s = slot[(size_t)l * E + e];
			slots[(size_t)l * E + e] = s;
			for (int k = 0; k < M; k++) {
				int64_t at = moe_matrix_offset(m, layout, s, k);
				wfile_piece(seed, l, k, e, m->dtype, buf + at, piece);
				sums[(size_t)l * E * M + at / piece] = wfile_hash(buf + at, (size_t)piece);
			}
		}
		rc = big_write(&b, buf, region, h.index[0].offset + l * region, err);
		if (progress)
			progress(ctx, l + 1, L);
	}
	const void *tables[4] = {NULL, slots, sums, NULL};
	if (!rc)
		rc = finish_file(&b, &h, tables, page, total, err);
	big_abort(&b);
	free(buf), free(page), free(sums), free(slots);
	return rc;
}

int wfile_moe_match(const struct wfile *w, const struct llm_desc *m, int layout, const int *slot,
		    struct lif_err *err)
{
	const struct wfile_info *i = &w->info;
	if (!i->experts)
		return err_set(err, ERR_INVAL, "%s: a dense weight file (%s, layout %s): an MoE replay "
			       "needs an expert file (lifsim layout of an MoE model)", w->path, i->model,
			       layout_by_kind(i->layout)->name);
	if (i->layers != m->moe_layers || i->experts != m->experts || i->d_model != m->d_model ||
	    i->dtype != m->dtype || i->ffn_matrices != m->ffn_matrices ||
	    i->expert_matrix_bytes != m->expert_matrix_bytes)
		return err_set(err, ERR_INVAL,
			       "%s: written for %s: %d MoE layers x %d experts of %lld bytes, d_model "
			       "%d, %s; the point needs %s: %d x %d of %lld bytes, d_model %d, %s "
			       "(same model and --scale?)", w->path, i->model, i->layers, i->experts,
			       (long long)i->expert_bytes, i->d_model, llm_dtype_name(i->dtype), m->name,
			       m->moe_layers, m->experts, (long long)m->expert_bytes, m->d_model,
			       llm_dtype_name(m->dtype));
	if (i->expert_layout != layout)
		return err_set(err, ERR_INVAL, "%s: written in expert layout %s; the point uses %s",
			       w->path, moe_layout_choice(i->expert_layout), moe_layout_choice(layout));
	if (memcmp(w->slot, slot, (size_t)i->layers * i->experts * sizeof *slot))
		return err_set(err, ERR_INVAL, "%s: its %s expert order differs from the point's "
			       "(written from another router trace?)", w->path,
			       moe_layout_choice(layout));
	return 0;
}

int wfile_moe_verify(const struct wfile *w, int layer, int64_t offset, const void *buf,
		     int64_t bytes, struct lif_err *err)
{
	const struct wfile_info *i = &w->info;
	const int64_t pb = i->expert_matrix_bytes, per = (int64_t)i->experts * i->ffn_matrices;
	for (int64_t c = (offset + pb - 1) / pb; (c + 1) * pb <= offset + bytes && c < per; c++) {
		uint64_t want = w->sums[(size_t)layer * per + c];
		if (wfile_hash((const char *)buf + (c * pb - offset), (size_t)pb) != want)
			return err_set(err, ERR_FORMAT,
				       "%s: checksum mismatch at MoE layer %d piece %lld (file offset "
				       "%lld): the bytes read are not the ones written", w->path, layer,
				       (long long)c,
				       (long long)(i->ffn_offset + layer * i->layer_bytes + c * pb));
	}
	return 0;
}

const int32_t *wfile_moe_slots(const struct wfile *w) { return w->slot; }
