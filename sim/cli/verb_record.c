/* lifsim record: run a real checkpoint on a prompt and record its activation
 * trace (traces/record/model.h does the inference, traces/trace.h the writing). */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/cli/verbs.h"
#include "sim/base/util.h"
#include "traces/record/model.h"
#include "traces/record/tokenizer.h"
#include "traces/router.h"
#include "traces/trace.h"

#define VERB "record"
#define CALIB_MAX_VALUES (1 << 27) /* activation values kept for calibration (512 MiB) */
#define MAG_MARGIN_QUANTILE 0.5
#define TEXT_CAP (1 << 20)

/* Set by SIGINT/SIGTERM: the loop stops and closes a valid, shorter trace.
 * The one mutable global, as signal handlers require. */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct record_opts {
	const char *model, *prompt_file, *tokens_file, *out, *logits;
	long long generate;
	double target_sparsity; /* < 0: not given */
	double threshold;       /* NAN: not given */
	int magnitudes, inputs, half_weights;
};

/* Per-layer decision rule: active iff value > thr[l]; magnitude code of
 * value - thr[l] with half-width margin[l]. */
struct rule {
	double thr[TRACE_MAX_LAYERS];
	double margin[TRACE_MAX_LAYERS];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lifsim record --model DIR (--prompt-file F | --tokens-file F) [--generate N]\n"
		"                     [--target-sparsity S | --threshold T] [--magnitudes] [--inputs]\n"
		"                     [--half-weights] [--logits FILE] -o TRACE.h5\n\n"
		"Runs a Hugging Face checkpoint (OPT or Llama family; config.json + safetensors in\n"
		"F32, F16 or BF16, sharded or not) on CPU one token at a time and records, per token\n"
		"and layer, which FFN neurons are active. The trace is written as it goes: an\n"
		"interrupted run leaves a valid, shorter trace.\n"
		"A mixture-of-experts checkpoint (Mixtral, Qwen2-MoE or Qwen3-MoE) gives a router\n"
		"trace instead: per token and layer, the experts the router selected and their gate\n"
		"weights (written at the end; an interrupted run writes the tokens run so far);\n"
		"--inputs stores the router inputs (what a router predictor is trained on).\n\n"
		"  --model DIR          checkpoint directory\n"
		"  --prompt-file F      prompt text, tokenized with the checkpoint's tokenizer (GPT-2\n"
		"                       byte-level BPE, or bytes when config.json has\n"
		"                       \"lifsim_tokenizer\": \"byte\"); BPE prompts start with\n"
		"                       config.json's bos_token_id, as Hugging Face's tokenizers do\n"
		"  --tokens-file F      token ids separated by white space, used as they are\n"
		"  --generate N         greedily generate N more tokens (default 0); every prompt and\n"
		"                       generated token is recorded\n"
		"  --target-sparsity S  SwiGLU models: per-layer threshold on |silu(gate)*up| so that a\n"
		"                       fraction S of the prompt's activations are inactive (calibrated\n"
		"                       on the prompt, then fixed, as CATS/TEAL do; default 0.5)\n"
		"  --threshold T        SwiGLU models: the same threshold T for every layer instead\n"
		"                       (ReLU models: active means fc1 output > 0, no option)\n"
		"  --magnitudes         also store magnitude codes of (value - threshold); the band\n"
		"                       half-width per layer is the median of |value - threshold| over\n"
		"                       the prompt tokens\n"
		"  --inputs             also store the FFN inputs (post-attention, post-norm; what\n"
		"                       low-rank predictors are trained on)\n"
		"  --half-weights       keep F16/BF16 matrices in half precision in memory (half the\n"
		"                       RAM and half the bytes per token; converted in registers)\n"
		"                       instead of converting them to float32 at load\n"
		"  --logits FILE        also write the logits as raw float32, (tokens, vocab)\n"
		"  -o TRACE.h5          output trace\n");
}

static int parse_args(int argc, char **argv, struct record_opts *o)
{
	static const struct option longopts[] = {
		{"model", required_argument, 0, 'm'},      {"prompt-file", required_argument, 0, 'p'},
		{"tokens-file", required_argument, 0, 't'}, {"generate", required_argument, 0, 'g'},
		{"target-sparsity", required_argument, 0, 's'}, {"threshold", required_argument, 0, 'T'},
		{"magnitudes", no_argument, 0, 'M'},       {"inputs", no_argument, 0, 'I'},
		{"logits", required_argument, 0, 'L'},     {"output", required_argument, 0, 'o'},
		{"half-weights", no_argument, 0, 'H'},
		{"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->target_sparsity = -1;
	o->threshold = NAN;
	int c;
	optind = 1;
	while ((c = cli_getopt(VERB, argc, argv, "o:h", longopts)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'p': o->prompt_file = optarg; break;
		case 't': o->tokens_file = optarg; break;
		case 'o': o->out = optarg; break;
		case 'L': o->logits = optarg; break;
		case 'M': o->magnitudes = 1; break;
		case 'I': o->inputs = 1; break;
		case 'H': o->half_weights = 1; break;
		case 'g':
			if (cli_int(VERB, "--generate", optarg, 0, 1 << 20, &o->generate))
				return 2;
			break;
		case 's':
			if (cli_double(VERB, "--target-sparsity", optarg, 0, 0.999999, &o->target_sparsity))
				return 2;
			break;
		case 'T':
			if (cli_double(VERB, "--threshold", optarg, 0, 1e30, &o->threshold))
				return 2;
			break;
		case 'h': usage(stdout); return -1;
		default: return 2;
		}
	}
	if (optind < argc)
		return cli_failf(VERB, "unexpected argument '%s' (see lifsim record --help)", argv[optind]), 2;
	if (!o->model || !o->out)
		return cli_failf(VERB, "--model and -o are required (see lifsim record --help)"), 2;
	if (!o->prompt_file == !o->tokens_file)
		return cli_failf(VERB, "give exactly one of --prompt-file and --tokens-file"), 2;
	if (o->target_sparsity >= 0 && !isnan(o->threshold))
		return cli_failf(VERB, "give at most one of --target-sparsity and --threshold"), 2;
	return 0;
}

/* ---------------------------------------------------------------- inputs */

/* Whitespace-separated ids, each in [0, vocab). */
static int parse_tokens(const char *path, const char *text, int vocab, int32_t **ids,
			struct lif_err *err)
{
	size_t cap = strlen(text) / 2 + 2;
	int32_t *v = malloc(cap * sizeof *v);
	int n = 0;
	const char *p = text;
	if (!v)
		return err_set(err, ERR_NOMEM, "out of memory");
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			break;
		char *end;
		errno = 0;
		long x = strtol(p, &end, 10);
		if (end == p || errno || x < 0 || x >= vocab ||
		    (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
			free(v);
			return err_set(err, ERR_FORMAT, "%s: token %d ('%.*s') is not an id in [0, %d)", path,
				       n + 1, (int)strcspn(p, " \t\r\n"), p, vocab);
		}
		v[n++] = (int32_t)x;
		p = end;
	}
	*ids = v;
	return n;
}

/* The prompt's ids (and its text for the trace) from either option. */
static int prompt_ids(const struct record_opts *o, const struct model_config *c,
		      const struct tokenizer *tok, int32_t **ids, char **text, struct lif_err *err)
{
	const char *path = o->prompt_file ? o->prompt_file : o->tokens_file;
	char *s = util_read_file(path, TEXT_CAP, NULL, err);
	int n;
	if (!s)
		return err->code;
	if (o->prompt_file) {
		/* HF's OPT and Llama tokenizers start with the BOS token; bytes do not */
		int bos = c->byte_tokenizer ? -1 : c->bos_id;
		int32_t *raw = NULL;
		n = tok_encode(tok, s, &raw, err);
		if (n < 0)
			err_prefix(err, "%s", path);
		if (n >= 0 && !(*ids = malloc(((size_t)n + 1) * sizeof **ids)))
			n = err_set(err, ERR_NOMEM, "out of memory");
		if (n >= 0) {
			if (bos >= 0)
				(*ids)[0] = bos;
			memcpy(*ids + (bos >= 0), raw, (size_t)n * sizeof *raw);
			n += bos >= 0;
		}
		free(raw);
		for (int i = 0; n > 0 && i < n; i++)
			if ((*ids)[i] >= c->vocab)
				n = err_set(err, ERR_RANGE, "%s: tokenizer id %d is >= vocab_size %d", path,
					    (*ids)[i], c->vocab);
	} else {
		n = parse_tokens(path, s, c->vocab, ids, err);
	}
	if (n == 0)
		n = err_set(err, ERR_INVAL, "%s: no tokens", path);
	*text = s;
	return n;
}

/* ---------------------------------------------------------------- calibration */

/* The k-th smallest (0-based) of v[0..n), reordering v. */
static float select_kth(float *v, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		float piv = v[lo + (hi - lo) / 2];
		size_t i = lo, j = hi;
		while (i <= j) {
			while (v[i] < piv)
				i++;
			while (v[j] > piv)
				j--;
			if (i <= j) {
				float t = v[i];
				v[i] = v[j], v[j] = t;
				i++;
				if (j == 0)
					break;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return v[k];
	}
	return v[k];
}

/* Threshold so that round(S n) of the n values are <= it (inactive). */
static double threshold_for_sparsity(float *v, size_t n, double s)
{
	size_t k = (size_t)floor(s * (double)n + 0.5);
	return k == 0 ? -1.0 : select_kth(v, n, k - 1);
}

/* Run the first ncal prompt tokens, keeping every layer's activation values,
 * then fix each layer's threshold and magnitude margin. */
static int calibrate(struct model *m, const int32_t *ids, int ncal, const struct record_opts *o,
		     struct rule *r, struct lif_err *err)
{
	const struct model_config *c = model_get_config(m);
	size_t per_tok = (size_t)c->layers * c->d_ffn, n = (size_t)ncal * c->d_ffn;
	float *all = malloc((size_t)ncal * per_tok * sizeof *all), *v = malloc(n * sizeof *v);
	if (!all || !v) {
		free(all);
		free(v);
		return err_set(err, ERR_NOMEM, "out of memory for calibration");
	}
	for (int t = 0, n; t < ncal; t += n) { /* in chunks of model_batch tokens */
		n = ncal - t < model_batch(m) ? ncal - t : model_batch(m);
		struct model_tap tap = {.ffn_act = all + (size_t)t * per_tok};
		model_forward(m, ids + t, n, t, &tap);
	}
	for (int l = 0; l < c->layers; l++) {
		for (int t = 0; t < ncal; t++)
			memcpy(v + (size_t)t * c->d_ffn, all + (size_t)t * per_tok + (size_t)l * c->d_ffn,
			       (size_t)c->d_ffn * sizeof *v);
		if (c->family == MODEL_LLAMA && o->target_sparsity >= 0)
			r->thr[l] = threshold_for_sparsity(v, n, o->target_sparsity);
		for (size_t i = 0; i < n; i++)
			v[i] = fabsf(v[i] - (float)r->thr[l]);
		double mg = select_kth(v, n, (size_t)(MAG_MARGIN_QUANTILE * (double)(n - 1)));
		r->margin[l] = mg > 1e-12 && isfinite(mg) ? mg : 1e-12;
	}
	free(all);
	free(v);
	return 0;
}

/* ---------------------------------------------------------------- recording */

struct recorder {
	const struct model_config *c;
	struct trace_writer *w;
	FILE *logits;
	uint8_t *bits;   /* (layers, row_bytes) */
	uint8_t *mags;   /* (layers, d_ffn) or NULL */
	float *inputs;   /* (batch, layers, d_model) or NULL */
	float *act;      /* (batch, layers, d_ffn) */
	int64_t active;  /* active (token, layer, neuron) count */
};

/* Turn token k of the current chunk into a trace row and append it. */
static int record_token(struct recorder *rc, const struct rule *r, int k, int32_t id,
			struct lif_err *err)
{
	const struct model_config *c = rc->c;
	int rb = trace_row_bytes(c->d_ffn);
	memset(rc->bits, 0, (size_t)c->layers * rb);
	for (int l = 0; l < c->layers; l++) {
		const float *a = rc->act + ((size_t)k * c->layers + l) * c->d_ffn;
		uint8_t *row = rc->bits + (size_t)l * rb;
		for (int i = 0; i < c->d_ffn; i++) {
			if (a[i] > r->thr[l]) {
				trace_set_bit(row, i);
				rc->active++;
			}
			if (rc->mags)
				rc->mags[(size_t)l * c->d_ffn + i] = trace_mag_encode(a[i] - r->thr[l], r->margin[l]);
		}
	}
	return trace_writer_append(rc->w, id, rc->bits, rc->mags,
				   rc->inputs ? rc->inputs + (size_t)k * c->layers * c->d_model : NULL, err);
}

static int argmax(const float *v, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}

static void meta_fill(struct trace_meta *meta, const struct record_opts *o, const struct model_config *c,
		      const struct rule *r, int nprompt)
{
	memset(meta, 0, sizeof *meta);
	const char *base = strrchr(o->model, '/');
	while (base && !base[1] && base > o->model) /* trailing slash */
		base = NULL;
	snprintf(meta->model, sizeof meta->model, "%s", base ? base + 1 : o->model);
	meta->layers = c->layers;
	meta->d_ffn = c->d_ffn;
	meta->d_model = o->inputs ? c->d_model : 0;
	meta->source = TRACE_SOURCE_RECORDED;
	meta->has = (o->magnitudes ? TRACE_HAS_MAGNITUDES : 0) | (o->inputs ? TRACE_HAS_INPUTS : 0);
	/* one threshold for the whole trace when every layer has the same; the
	 * per-layer values are always in the layer_thresholds attribute */
	int uniform = 1;
	for (int l = 1; l < c->layers; l++)
		uniform &= r->thr[l] == r->thr[0];
	meta->threshold = uniform ? r->thr[0] : 0.0;
	for (int l = 0; l < c->layers; l++)
		meta->mag_margin[l] = r->margin[l];
	int n = snprintf(meta->generator, sizeof meta->generator,
			 "recorder=lifsim-record model_dir=%s family=%s prompt_tokens=%d generate=%lld "
			 "activation=%s", o->model, c->family == MODEL_OPT ? "opt" : "llama", nprompt,
			 o->generate, c->family == MODEL_OPT ? "relu(fc1)>0" : "|silu(gate)*up|>threshold[layer]");
	if (c->family == MODEL_LLAMA && o->target_sparsity >= 0)
		n += snprintf(meta->generator + n, sizeof meta->generator - (size_t)n,
			      " target_sparsity=%g calibrated_on=prompt", o->target_sparsity);
	if (o->magnitudes)
		n += snprintf(meta->generator + n, sizeof meta->generator - (size_t)n,
			      " magnitude_margin=quantile(|value-threshold|,%g) over prompt", MAG_MARGIN_QUANTILE);
}

/* The thresholds as text ("t0,t1,...") for the layer_thresholds attribute. */
static void thresholds_text(char *buf, size_t cap, const struct rule *r, int layers)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int l = 0; l < layers && n + 32 < cap; l++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%.9g", l ? "," : "", r->thr[l]);
}

struct run {
	struct model *m;
	struct tokenizer *tok;
	int32_t *ids;
	int nprompt;
	char *prompt_text;
	char *gen_text;
	size_t gen_len;
};

/* Note the greedy choice after token t (from its logits) when it is generated. */
static void note_generated(struct run *run, const struct model_config *c, int t, int total,
			   const float *logits, int32_t *next)
{
	*next = argmax(logits, c->vocab);
	if (t < run->nprompt - 1 || t + 1 >= total)
		return;
	if (run->tok)
		tok_decode_append(run->tok, *next, run->gen_text, &run->gen_len, TEXT_CAP);
	else
		run->gen_len += (size_t)snprintf(run->gen_text + run->gen_len, TEXT_CAP - run->gen_len,
						 "%s%d", run->gen_len ? " " : "", *next);
}

/* Run and record every token: the prompt in chunks of model_batch tokens,
 * then one generated token at a time. */
static int record_all(struct run *run, const struct record_opts *o, const struct rule *r,
		      struct recorder *rc, const struct cli_global *g, double secs[2], struct lif_err *err)
{
	const struct model_config *c = rc->c;
	int total = run->nprompt + (int)o->generate, n;
	int32_t next = 0;
	double ts = util_now_ns(), t0 = 0, t1;
	for (int t = 0; t < total && !stop_requested; t += n) {
		if (t == run->nprompt)
			t0 = util_now_ns();
		const int32_t *ids = t < run->nprompt ? run->ids + t : &next;
		n = t < run->nprompt ? run->nprompt - t : 1;
		n = n < model_batch(run->m) ? n : model_batch(run->m);
		struct model_tap tap = {.ffn_in = rc->inputs, .ffn_act = rc->act};
		const float *logits = model_forward(run->m, ids, n, t, &tap);
		for (int k = 0; k < n; k++) {
			const float *lk = logits + (size_t)k * c->vocab;
			if (record_token(rc, r, k, ids[k], err))
				return err->code;
			if (rc->logits && fwrite(lk, sizeof *lk, (size_t)c->vocab, rc->logits) != (size_t)c->vocab)
				return err_set(err, ERR_IO, "%s: cannot write logits", o->logits);
		}
		note_generated(run, c, t + n - 1, total, logits + (size_t)(n - 1) * c->vocab, &next);
		if (t >= run->nprompt && (t - run->nprompt) % 16 == 15 &&
		    trace_writer_set_text(rc->w, "generated_text", run->gen_text, err))
			return err->code;
		cli_progress(g, "record", t + n, total);
	}
	t1 = util_now_ns();
	if (!o->generate)
		t0 = t1;
	secs[0] = 1e-9 * (t0 - ts);
	secs[1] = 1e-9 * (t1 - t0);
	if (stop_requested)
		return err_set(err, ERR_INVAL, "interrupted; %s holds the tokens recorded so far", o->out);
	return 0;
}

/* Open the writer with the calibrated rule, record, close. */
static int record(struct run *run, const struct record_opts *o, const struct rule *r,
		  const struct cli_global *g, struct lif_err *err)
{
	const struct model_config *c = model_get_config(run->m);
	struct recorder rc = {.c = c};
	struct trace_meta meta;
	char thr[TRACE_MAX_LAYERS * 20];
	char tmp_logits[4200];
	double secs[2] = {0, 0}; /* prompt, generation */
	meta_fill(&meta, o, c, r, run->nprompt);
	thresholds_text(thr, sizeof thr, r, c->layers);
	rc.bits = calloc((size_t)c->layers, (size_t)trace_row_bytes(c->d_ffn));
	size_t B = (size_t)model_batch(run->m);
	rc.act = malloc(B * c->layers * c->d_ffn * sizeof *rc.act);
	rc.mags = o->magnitudes ? malloc((size_t)c->layers * c->d_ffn) : NULL;
	rc.inputs = o->inputs ? malloc(B * c->layers * c->d_model * sizeof *rc.inputs) : NULL;
	snprintf(tmp_logits, sizeof tmp_logits, "%s.tmp", o->logits ? o->logits : "");
	if (!rc.bits || !rc.act || (o->magnitudes && !rc.mags) || (o->inputs && !rc.inputs))
		err_set(err, ERR_NOMEM, "out of memory");
	else if (o->logits && !(rc.logits = fopen(tmp_logits, "wb")))
		err_set(err, ERR_IO, "%s: cannot create: %s", tmp_logits, strerror(errno));
	else if ((rc.w = trace_writer_open(o->out, &meta, TRACE_WRITE_STREAMING, err)) &&
		 !trace_writer_set_text(rc.w, "prompt", run->prompt_text, err) &&
		 !trace_writer_set_text(rc.w, "model_config", model_config_json(run->m), err) &&
		 !trace_writer_set_text(rc.w, "layer_thresholds", thr, err))
		record_all(run, o, r, &rc, g, secs, err);
	if (rc.w) {
		struct lif_err e2 = {0};
		if (!err->code)
			trace_writer_set_text(rc.w, "generated_text", run->gen_text, &e2);
		if (trace_writer_close(rc.w, &e2) && err->code) {
			size_t n = strlen(err->msg); /* what became of the file */
			const char *kept = strstr(e2.msg, "; ");
			snprintf(err->msg + n, sizeof err->msg - n, "%s", kept ? kept : "");
		}
		err_set(err, e2.code, "%s", e2.msg);
	}
	if (rc.logits && (fclose(rc.logits) || err->code || rename(tmp_logits, o->logits)))
		err_set(err, ERR_IO, "%s: cannot write logits", o->logits);
	if (o->logits && err->code)
		unlink(tmp_logits);
	if (!err->code && !g->quiet) {
		int total = run->nprompt + (int)o->generate;
		printf("recorded %d tokens (%d prompt + %lld generated), %d layers x %d neurons, "
		       "active %.4f\n", total, run->nprompt, o->generate, c->layers, c->d_ffn,
		       (double)rc.active / ((double)total * c->layers * c->d_ffn));
		printf("prompt: %.3f tokens/s (in chunks of %d, recording included)\n",
		       run->nprompt / secs[0], model_batch(run->m));
		if (o->generate)
			printf("generation: %.3f tokens/s (%.0f weight bytes per token)\n",
			       (double)o->generate / secs[1], (double)model_weight_bytes_per_token(run->m));
	}
	free(rc.bits);
	free(rc.act);
	free(rc.mags);
	free(rc.inputs);
	return err->code;
}

/* ---------------------------------------------------------------- MoE */

static const char *family_name(int family)
{
	static const char *names[] = {"opt", "llama", "mixtral", "qwen2_moe", "qwen3_moe"};
	return names[family];
}

/* What an MoE run keeps per token, token-major: the selected experts and
 * their gate weights per layer, the token ids, the router inputs (--inputs). */
struct moe_rec {
	int16_t *ids;
	float *gates, *inputs;
	int32_t *tokens;
	int done;		/* tokens run */
	double ts, t0, t1;	/* start, first generated token, end (ns) */
};

/* Run every token as record_all does, into r; logits to lf when given. */
static void moe_run_tokens(struct run *run, const struct record_opts *o, const struct cli_global *g,
			   struct moe_rec *r, FILE *lf, struct lif_err *err)
{
	const struct model_config *c = model_get_config(run->m);
	int total = run->nprompt + (int)o->generate, n;
	size_t per_tok = (size_t)c->layers * c->top_k, per_in = (size_t)c->layers * c->d_model;
	int32_t next = 0;
	r->ts = r->t0 = util_now_ns();
	for (int t = 0; !err->code && t < total && !stop_requested; t += n) {
		if (t == run->nprompt)
			r->t0 = util_now_ns();
		const int32_t *in = t < run->nprompt ? run->ids + t : &next;
		n = t < run->nprompt ? run->nprompt - t : 1;
		n = n < model_batch(run->m) ? n : model_batch(run->m);
		struct model_tap tap = {.ffn_in = r->inputs ? r->inputs + (size_t)t * per_in : NULL,
					.experts = r->ids + (size_t)t * per_tok,
					.gates = r->gates + (size_t)t * per_tok};
		const float *logits = model_forward(run->m, in, n, t, &tap);
		memcpy(r->tokens + t, in, (size_t)n * sizeof *in);
		if (lf && fwrite(logits, sizeof *logits, (size_t)n * c->vocab, lf) != (size_t)n * c->vocab)
			err_set(err, ERR_IO, "%s: cannot write logits", o->logits);
		note_generated(run, c, t + n - 1, total, logits + (size_t)(n - 1) * c->vocab, &next);
		r->done = t + n;
		cli_progress(g, "record", r->done, total);
	}
	r->t1 = util_now_ns();
}

/* The router trace of the r->done tokens run, layer-major, written to -o. */
static void moe_write_trace(const struct run *run, const struct record_opts *o, const struct moe_rec *r,
			    struct lif_err *err)
{
	const struct model_config *c = model_get_config(run->m);
	int done = r->done;
	size_t per_in = (size_t)c->layers * c->d_model;
	struct router_meta meta;
	memset(&meta, 0, sizeof meta);
	const char *base = strrchr(o->model, '/');
	snprintf(meta.model, sizeof meta.model, "%s", base && base[1] ? base + 1 : o->model);
	meta.layers = c->layers;
	meta.experts = c->experts;
	meta.top_k = c->top_k;
	meta.d_expert = c->d_expert;
	meta.tokens = done;
	meta.source = TRACE_SOURCE_RECORDED;
	meta.d_model = r->inputs ? c->d_model : 0;
	snprintf(meta.generator, sizeof meta.generator,
		 "recorder=lifsim-record model_dir=%s family=%s prompt_tokens=%d generate=%lld "
		 "router=softmax_topk norm_topk_prob=%d shared_expert=%d", o->model,
		 family_name(c->family), run->nprompt, o->generate, c->norm_topk, c->d_shared);
	struct router_trace *rt = router_trace_new(&meta, err);
	if (!rt)
		return;
	memcpy(rt->token_ids, r->tokens, (size_t)done * sizeof *r->tokens);
	for (int t = 0; t < done; t++)
		for (int l = 0; l < c->layers; l++) {
			size_t src = ((size_t)t * c->layers + l) * c->top_k;
			size_t dst = ((size_t)l * done + t) * c->top_k;
			memcpy(rt->ids + dst, r->ids + src, (size_t)c->top_k * sizeof *r->ids);
			memcpy(rt->weights + dst, r->gates + src, (size_t)c->top_k * sizeof *r->gates);
			if (r->inputs)
				memcpy(rt->inputs + ((size_t)l * done + t) * c->d_model,
				       r->inputs + (size_t)t * per_in + (size_t)l * c->d_model,
				       (size_t)c->d_model * sizeof *r->inputs);
		}
	router_write(o->out, rt, err);
	router_trace_free(rt);
}

/* An MoE checkpoint: run every token as record_all does and write a router
 * trace (traces/router.h) of each token's selected experts and gate weights
 * per layer; interrupted, the tokens run so far. */
static int record_moe(struct run *run, const struct record_opts *o, const struct cli_global *g,
		      struct lif_err *err)
{
	const struct model_config *c = model_get_config(run->m);
	int total = run->nprompt + (int)o->generate;
	size_t per_tok = (size_t)c->layers * c->top_k, per_in = (size_t)c->layers * c->d_model;
	struct moe_rec r = {.ids = malloc((size_t)total * per_tok * sizeof *r.ids),
			    .gates = malloc((size_t)total * per_tok * sizeof *r.gates),
			    .tokens = malloc((size_t)total * sizeof *r.tokens),
			    .inputs = o->inputs ? malloc((size_t)total * per_in * sizeof *r.inputs) : NULL};
	char tmp_logits[4200];
	FILE *lf = NULL;
	snprintf(tmp_logits, sizeof tmp_logits, "%s.tmp", o->logits ? o->logits : "");
	if (!r.ids || !r.gates || !r.tokens || (o->inputs && !r.inputs))
		err_set(err, ERR_NOMEM, "out of memory for the router choices of %d tokens", total);
	else if (o->logits && !(lf = fopen(tmp_logits, "wb")))
		err_set(err, ERR_IO, "%s: cannot create: %s", tmp_logits, strerror(errno));
	if (!err->code)
		moe_run_tokens(run, o, g, &r, lf, err);
	if (!err->code && r.done)
		moe_write_trace(run, o, &r, err);
	if (lf && (fclose(lf) || err->code || rename(tmp_logits, o->logits)))
		err_set(err, ERR_IO, "%s: cannot write logits", o->logits);
	if (o->logits && err->code)
		unlink(tmp_logits);
	if (!err->code && stop_requested)
		err_set(err, ERR_INVAL, "interrupted; %s holds the %d tokens recorded so far", o->out, r.done);
	if (!err->code && !g->quiet) {
		printf("recorded %d tokens (%d prompt + %lld generated), %d MoE layers x %d experts, "
		       "top %d\n", total, run->nprompt, o->generate, c->layers, c->experts, c->top_k);
		printf("prompt: %.3f tokens/s (in chunks of %d, recording included)\n",
		       run->nprompt / (1e-9 * (r.t0 - r.ts)), model_batch(run->m));
		if (o->generate)
			printf("generation: %.3f tokens/s (%.0f weight bytes per token)\n",
			       (double)o->generate / (1e-9 * (r.t1 - r.t0)),
			       (double)model_weight_bytes_per_token(run->m));
	}
	free(r.ids);
	free(r.gates);
	free(r.tokens);
	free(r.inputs);
	return err->code;
}

static int run_record(const struct record_opts *o, const struct cli_global *g, struct lif_err *err)
{
	struct run run = {0};
	struct rule r;
	struct model_config c0;
	char cpath[4096];
	memset(&r, 0, sizeof r);
	snprintf(cpath, sizeof cpath, "%s/config.json", o->model);
	/* 1. config and tokenizer first, to know how many positions we need */
	char *cj = util_read_file(cpath, TEXT_CAP, NULL, err);
	int rc = cj ? model_parse_config(cj, cpath, &c0, err) : err->code;
	free(cj);
	if (rc)
		return rc;
	struct lif_err tok_err = {0};
	run.tok = tok_open(o->model, c0.byte_tokenizer, o->prompt_file ? err : &tok_err);
	if (o->prompt_file && !run.tok)
		return err->code;
	if ((run.nprompt = prompt_ids(o, &c0, run.tok, &run.ids, &run.prompt_text, err)) < 0)
		goto out;
	if (c0.experts && (o->target_sparsity >= 0 || !isnan(o->threshold) || o->magnitudes)) {
		err_set(err, ERR_INVAL, "%s is a mixture-of-experts model: it records a router trace; "
			"--target-sparsity, --threshold and --magnitudes apply to dense models", o->model);
		goto out;
	}
	if (c0.family == MODEL_OPT && (o->target_sparsity >= 0 || !isnan(o->threshold))) {
		err_set(err, ERR_INVAL, "%s is an OPT (ReLU) model: active means fc1 output > 0; "
			"--target-sparsity and --threshold apply to SwiGLU models", o->model);
		goto out;
	}
	/* 2. the model, with a KV cache for prompt + generated tokens */
	if (!(run.m = model_open(o->model, run.nprompt + (int)o->generate, g->threads,
				 o->half_weights ? MODEL_HALF_WEIGHTS : 0, err)) ||
	    !(run.gen_text = calloc(1, TEXT_CAP + 1)))
		goto out;
	const struct model_config *c = model_get_config(run.m);
	if (c->experts) {
		record_moe(&run, o, g, err);
		goto out;
	}
	/* 3. thresholds and margins: calibrated on the prompt when needed */
	struct record_opts oo = *o;
	if (c->family == MODEL_LLAMA && isnan(o->threshold) && o->target_sparsity < 0)
		oo.target_sparsity = 0.5;
	for (int l = 0; l < c->layers; l++)
		r.thr[l] = c->family == MODEL_OPT ? 0.0 : isnan(o->threshold) ? 0.0 : o->threshold;
	size_t per_tok = (size_t)c->layers * c->d_ffn;
	int ncal = run.nprompt;
	if ((size_t)ncal * per_tok > CALIB_MAX_VALUES)
		ncal = (int)(CALIB_MAX_VALUES / per_tok) > 0 ? (int)(CALIB_MAX_VALUES / per_tok) : 1;
	if ((oo.target_sparsity >= 0 && c->family == MODEL_LLAMA) || o->magnitudes)
		if (calibrate(run.m, run.ids, ncal, &oo, &r, err))
			goto out;
	/* 4. record every token */
	record(&run, &oo, &r, g, err);
out:
	model_free(run.m);
	tok_free(run.tok);
	free(run.ids);
	free(run.prompt_text);
	free(run.gen_text);
	return err->code;
}

int verb_record(int argc, char **argv, const struct cli_global *g)
{
	struct record_opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	openblas_set_num_threads(1); /* the model runs its own threads (traces/record/model.h) */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct lif_err err = {0};
	if (run_record(&o, g, &err))
		rc = cli_fail(VERB, &err);
	return stop_requested ? 130 : rc; /* interrupted: a valid, shorter trace */
}
