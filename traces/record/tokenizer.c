#include "traces/record/tokenizer.h"
#include "sim/base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- string map */

/* Open addressing string -> int (keys owned). */
struct smap {
	char **keys; /* (cap) */
	int *vals;   /* (cap) */
	size_t cap, n;
};

static uint64_t hash_str(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int smap_init(struct smap *m, size_t want)
{
	m->cap = 16;
	while (m->cap < 2 * want + 16)
		m->cap *= 2;
	m->n = 0;
	m->keys = calloc(m->cap, sizeof *m->keys);
	m->vals = calloc(m->cap, sizeof *m->vals);
	return m->keys && m->vals ? 0 : -1;
}

static void smap_free(struct smap *m)
{
	for (size_t i = 0; m->keys && i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
}

/* Find (key, len); returns the slot. */
static size_t smap_slot(const struct smap *m, const char *k, size_t len)
{
	size_t i = hash_str(k, len) & (m->cap - 1);
	while (m->keys[i] && !(strlen(m->keys[i]) == len && !memcmp(m->keys[i], k, len)))
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int smap_get(const struct smap *m, const char *k, size_t len)
{
	size_t i = smap_slot(m, k, len);
	return m->keys[i] ? m->vals[i] : -1;
}

/* Insert if absent (first value wins); the map never fills past half. */
static int smap_put(struct smap *m, const char *k, int v)
{
	if (2 * (m->n + 1) > m->cap)
		return -1;
	size_t i = smap_slot(m, k, strlen(k));
	if (m->keys[i])
		return 0;
	if (!(m->keys[i] = strdup(k)))
		return -1;
	m->vals[i] = v;
	m->n++;
	return 0;
}

/* ---------------------------------------------------------------- tokenizer */

struct tokenizer {
	int byte;            /* byte tokenizer */
	struct smap vocab;   /* token string -> id */
	struct smap merges;  /* "left right" -> rank */
	char **id_str;       /* (nvocab) token string by id, or NULL */
	int nvocab;
	int byte_of_cp[512]; /* GPT-2 alphabet code point -> byte, or -1 */
	int cp_of_byte[256]; /* byte -> GPT-2 alphabet code point */
};

/* GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to
 * 256, 257, ... in byte order. */
static void byte_alphabet(struct tokenizer *t)
{
	int n = 0;
	for (int i = 0; i < 512; i++)
		t->byte_of_cp[i] = -1;
	for (int b = 0; b < 256; b++) {
		int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
		t->cp_of_byte[b] = printable ? b : 256 + n++;
		t->byte_of_cp[t->cp_of_byte[b]] = b;
	}
}

struct tokenizer *tok_new_byte(struct lif_err *err)
{
	struct tokenizer *t = calloc(1, sizeof *t);
	if (!t)
		err_set(err, ERR_NOMEM, "out of memory");
	else
		t->byte = 1, t->nvocab = 256;
	return t;
}

void tok_free(struct tokenizer *t)
{
	if (!t)
		return;
	smap_free(&t->vocab);
	smap_free(&t->merges);
	for (int i = 0; t->id_str && i < t->nvocab; i++)
		free(t->id_str[i]);
	free(t->id_str);
	free(t);
}

int tok_vocab_size(const struct tokenizer *t)
{
	return t->nvocab;
}

/* Fill the vocabulary from a JSON object {"token": id}. */
static int load_vocab(struct tokenizer *t, const cJSON *v, const char *path, struct lif_err *err)
{
	if (!cJSON_IsObject(v))
		return err_set(err, ERR_FORMAT, "%s: vocabulary is not a JSON object", path);
	int n = cJSON_GetArraySize(v), maxid = -1;
	const cJSON *e;
	cJSON_ArrayForEach(e, v) {
		if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e7)
			return err_set(err, ERR_FORMAT, "%s: vocabulary entry '%s' has no valid id", path,
				       e->string);
		maxid = e->valueint > maxid ? e->valueint : maxid;
	}
	t->nvocab = maxid + 1;
	t->id_str = calloc((size_t)t->nvocab + 1, sizeof *t->id_str);
	if (!t->id_str || smap_init(&t->vocab, (size_t)n))
		return err_set(err, ERR_NOMEM, "out of memory");
	cJSON_ArrayForEach(e, v) {
		if (smap_put(&t->vocab, e->string, e->valueint))
			return err_set(err, ERR_NOMEM, "out of memory");
		if (!t->id_str[e->valueint])
			t->id_str[e->valueint] = strdup(e->string);
	}
	return 0;
}

static int add_merge(struct tokenizer *t, const char *l, size_t ll, const char *r, size_t rl, int rank)
{
	char *k = malloc(ll + rl + 2);
	if (!k)
		return -1;
	memcpy(k, l, ll);
	k[ll] = ' ';
	memcpy(k + ll + 1, r, rl);
	k[ll + rl + 1] = '\0';
	int rc = smap_put(&t->merges, k, rank);
	free(k);
	return rc;
}

/* merges.txt: an optional "#version" line, then "left right" per line. */
static int load_merges_txt(struct tokenizer *t, char *txt, const char *path, struct lif_err *err)
{
	size_t lines = 1;
	for (char *p = txt; *p; p++)
		lines += *p == '\n';
	if (smap_init(&t->merges, lines))
		return err_set(err, ERR_NOMEM, "out of memory");
	int rank = 0, lineno = 0;
	for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
		lineno++;
		size_t len = strlen(line);
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		if (!len || (lineno == 1 && !strncmp(line, "#version", 8)))
			continue;
		char *sp = strchr(line, ' ');
		if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' '))
			return err_set(err, ERR_FORMAT, "%s:%d: a merge is two tokens separated by one space",
				       path, lineno);
		if (add_merge(t, line, (size_t)(sp - line), sp + 1, strlen(sp + 1), rank++))
			return err_set(err, ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* tokenizer.json merges: ["a b", ...] or [["a", "b"], ...]. */
static int load_merges_json(struct tokenizer *t, const cJSON *m, const char *path, struct lif_err *err)
{
	if (!cJSON_IsArray(m) || smap_init(&t->merges, (size_t)cJSON_GetArraySize(m)))
		return err_set(err, ERR_FORMAT, "%s: model.merges is not an array", path);
	int rank = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, m) {
		const char *l = NULL, *r = NULL;
		size_t ll = 0;
		if (cJSON_IsString(e) && (r = strchr(e->valuestring, ' '))) {
			l = e->valuestring, ll = (size_t)(r - l), r++;
		} else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
			   cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
			l = cJSON_GetArrayItem(e, 0)->valuestring, ll = strlen(l);
			r = cJSON_GetArrayItem(e, 1)->valuestring;
		} else {
			return err_set(err, ERR_FORMAT, "%s: model.merges[%d] is not a merge", path, rank);
		}
		if (add_merge(t, l, ll, r, strlen(r), rank++))
			return err_set(err, ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* Does a pre_tokenizer (or a Sequence of them) include ByteLevel? */
static int has_byte_level(const cJSON *p)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type"), *e;
	if (cJSON_IsString(type) && !strcmp(type->valuestring, "ByteLevel"))
		return 1;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
		if (has_byte_level(e))
			return 1;
	return 0;
}

static int open_tokenizer_json(struct tokenizer *t, const char *path, struct lif_err *err)
{
	char *txt = util_read_file(path, 0, NULL, err);
	if (!txt)
		return err->code;
	cJSON *j = cJSON_Parse(txt);
	free(txt);
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
	int rc;
	if (!j)
		rc = err_set(err, ERR_FORMAT, "%s: not valid JSON", path);
	else if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE"))
		rc = err_set(err, ERR_FORMAT, "%s: model.type is not \"BPE\" (only GPT-2 byte-level BPE "
				"is supported; pass --tokens-file)", path);
	else if (!has_byte_level(cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer")))
		rc = err_set(err, ERR_FORMAT, "%s: pre_tokenizer is not ByteLevel (only GPT-2 byte-level "
				"BPE is supported; pass --tokens-file)", path);
	else if (!(rc = load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path, err)))
		rc = load_merges_json(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path, err);
	cJSON_Delete(j);
	return rc;
}

static int open_vocab_merges(struct tokenizer *t, const char *dir, struct lif_err *err)
{
	char vp[4096], mp[4096];
	snprintf(vp, sizeof vp, "%s/vocab.json", dir);
	snprintf(mp, sizeof mp, "%s/merges.txt", dir);
	if (access(vp, F_OK) || access(mp, F_OK))
		return err_set(err, ERR_IO, "%s: no tokenizer (tokenizer.json, or vocab.json and "
				"merges.txt); pass --tokens-file", dir);
	char *vt = util_read_file(vp, 0, NULL, err), *mt = vt ? util_read_file(mp, 0, NULL, err) : NULL;
	cJSON *j = vt ? cJSON_Parse(vt) : NULL;
	int rc = err->code;
	if (!rc && !j)
		rc = err_set(err, ERR_FORMAT, "%s: not valid JSON", vp);
	if (!rc)
		rc = load_vocab(t, j, vp, err);
	if (!rc)
		rc = load_merges_txt(t, mt, mp, err);
	cJSON_Delete(j);
	free(vt);
	free(mt);
	return rc;
}

struct tokenizer *tok_open(const char *dir, int byte, struct lif_err *err)
{
	if (byte)
		return tok_new_byte(err);
	struct tokenizer *t = calloc(1, sizeof *t);
	if (!t) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	byte_alphabet(t);
	char tj[4096];
	snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
	int rc = access(tj, F_OK) == 0 ? open_tokenizer_json(t, tj, err) : open_vocab_merges(t, dir, err);
	if (rc) {
		tok_free(t);
		return NULL;
	}
	return t;
}

/* ---------------------------------------------------------------- encoding */

/* Decode one UTF-8 code point at s (n bytes left); sets *len. Invalid bytes
 * decode as themselves with length 1. */
static int utf8_next(const unsigned char *s, size_t n, int *len)
{
	int c = s[0], need = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
	*len = 1;
	if (need <= 0 || (size_t)need >= n)
		return c;
	int cp = c & (0x3f >> need);
	for (int i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return c;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	*len = need + 1;
	return cp;
}

static int put_utf8(char *o, int cp)
{
	if (cp < 0x80)
		return o[0] = (char)cp, 1;
	if (cp < 0x800)
		return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
	o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

enum cls { C_SPACE, C_LETTER, C_DIGIT, C_OTHER };

static enum cls classify(int cp)
{
	if (cp == ' ' || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f) || cp == 0x85 ||
	    cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
	    cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000)
		return C_SPACE;
	if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp >= 0x80)
		return C_LETTER;
	if (cp >= '0' && cp <= '9')
		return C_DIGIT;
	return C_OTHER;
}

/* Length of the pre-tokenizer piece starting at s (n bytes left). */
static size_t piece_len(const char *s, size_t n)
{
	static const char *contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
	const unsigned char *u = (const unsigned char *)s;
	for (int i = 0; i < 7; i++)
		if (!strncmp(s, contractions[i], strlen(contractions[i])))
			return strlen(contractions[i]);
	int len, cp = utf8_next(u, n, &len);
	size_t i = 0;
	enum cls c = classify(cp);
	if (cp == ' ' && n > 1) { /* " ?X+" when a non-space follows */
		int l2, c2 = utf8_next(u + 1, n - 1, &l2);
		if (classify(c2) != C_SPACE)
			i = 1, c = classify(c2);
	}
	if (c != C_SPACE) {
		while (i < n) {
			cp = utf8_next(u + i, n - i, &len);
			if (classify(cp) != c)
				break;
			i += (size_t)len;
		}
		return i;
	}
	/* \s+(?!\S)|\s+ : a run of spaces, leaving its last one to the next
	 * piece when a non-space follows a run longer than one */
	size_t last = 0;
	while (i < n) {
		cp = utf8_next(u + i, n - i, &len);
		if (classify(cp) != C_SPACE)
			break;
		last = i;
		i += (size_t)len;
	}
	return i < n && last > 0 ? last : i;
}

/* BPE-merge one piece (already in the GPT-2 alphabet, `syms` symbols of
 * UTF-8 strings) and append the ids. */
static int bpe_piece(const struct tokenizer *t, char **syms, int nsym, int32_t *out, int *nout,
		     struct lif_err *err)
{
	char key[1024];
	for (;;) {
		int best = -1, best_rank = 0;
		for (int i = 0; i + 1 < nsym; i++) {
			int n = snprintf(key, sizeof key, "%s %s", syms[i], syms[i + 1]);
			int r = n < (int)sizeof key ? smap_get(&t->merges, key, (size_t)n) : -1;
			if (r >= 0 && (best < 0 || r < best_rank))
				best = i, best_rank = r;
		}
		if (best < 0)
			break;
		size_t la = strlen(syms[best]), lb = strlen(syms[best + 1]);
		char *m = malloc(la + lb + 1);
		if (!m)
			return err_set(err, ERR_NOMEM, "out of memory");
		memcpy(m, syms[best], la);
		memcpy(m + la, syms[best + 1], lb + 1);
		free(syms[best]);
		free(syms[best + 1]);
		syms[best] = m;
		memmove(syms + best + 1, syms + best + 2, (size_t)(nsym - best - 2) * sizeof *syms);
		nsym--;
		syms[nsym] = NULL; /* moved down; the caller frees every slot */
	}
	for (int i = 0; i < nsym; i++) {
		int id = smap_get(&t->vocab, syms[i], strlen(syms[i]));
		if (id < 0)
			return err_set(err, ERR_FORMAT, "tokenizer: '%s' is not in the vocabulary", syms[i]);
		out[(*nout)++] = id;
	}
	return 0;
}

static int encode_piece(const struct tokenizer *t, const char *s, size_t n, int32_t *out, int *nout,
			struct lif_err *err)
{
	char **syms = calloc(n + 1, sizeof *syms);
	if (!syms)
		return err_set(err, ERR_NOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		char buf[4] = {0};
		buf[put_utf8(buf, t->cp_of_byte[(unsigned char)s[i]])] = '\0';
		if (!(syms[i] = strdup(buf)))
			rc = err_set(err, ERR_NOMEM, "out of memory");
	}
	if (!rc)
		rc = bpe_piece(t, syms, (int)n, out, nout, err);
	for (size_t i = 0; i < n; i++)
		free(syms[i]);
	free(syms);
	return rc;
}

int tok_encode(const struct tokenizer *t, const char *text, int32_t **ids, struct lif_err *err)
{
	size_t n = strlen(text);
	int32_t *out = malloc((n + 1) * sizeof *out);
	int nout = 0, rc = 0;
	if (!out)
		return err_set(err, ERR_NOMEM, "out of memory");
	if (t->byte) {
		for (size_t i = 0; i < n; i++)
			out[nout++] = (unsigned char)text[i];
	} else {
		for (size_t i = 0; i < n && !rc;) {
			size_t len = piece_len(text + i, n - i);
			rc = encode_piece(t, text + i, len, out, &nout, err);
			i += len;
		}
	}
	if (rc) {
		free(out);
		return rc;
	}
	*ids = out;
	return nout;
}

void tok_decode_append(const struct tokenizer *t, int32_t id, char *buf, size_t *len, size_t cap)
{
	if (*len + 1 >= cap || id < 0 || id >= t->nvocab)
		return;
	if (t->byte) {
		buf[(*len)++] = (char)id;
		buf[*len] = '\0';
		return;
	}
	const char *s = t->id_str[id];
	size_t n = s ? strlen(s) : 0;
	for (size_t i = 0; i < n && *len + 4 < cap;) {
		int l, cp = utf8_next((const unsigned char *)s + i, n - i, &l);
		if (cp < 512 && t->byte_of_cp[cp] >= 0)
			buf[(*len)++] = (char)t->byte_of_cp[cp];
		else /* not in the byte alphabet (an added token): copy as is */
			memcpy(buf + *len, s + i, (size_t)l), *len += (size_t)l;
		i += (size_t)l;
	}
	buf[*len] = '\0';
}
