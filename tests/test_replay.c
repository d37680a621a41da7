/* replay: the simulator's decisions carried out on a real file (mem engine
 * and small files), corrupt files, the validate kind's files. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/real/rcompute.h"
#include "sim/real/replay.h"
#include "sim/base/conf.h"
#include "sim/sweep/pointin.h"
#include "sim/core/timeline.h"
#include "traces/synth.h"
#include "tests/testutil.h"

/* Arrays, not pointers: each case runs in a new process. */
struct rcase {
	char layout[16];
	int window, bundle;
	char hybrid[8];
	char engine[16];
};

static struct rcase rcases[] = {
	{"rowcol", 0, 1, "0", "mem"},	 {"rowcol", 3, 1, "0", "psync"},
	{"separate", 2, 1, "0", "mem"},	 {"hot", 4, 2, "0.1", "mem"},
	{"coact", 5, 1, "0", "io_uring"}, {"friends", 2, 1, "0", "mem"},
};

/* The tiny model at fp32 (pieces of 256 bytes), its trace, the m1max profile. */
static struct trace *setup(struct llm_desc *m, struct device *d, int tokens)
{
	struct lif_err e = {0};
	struct synth_params sp;
	cr_assert_eq(llm_load(tu_src("tests/data/tiny.ini"), m, &e), 0, "%s", e.msg);
	cr_assert_eq(device_load(tu_src("models/devices/m1max.ini"), d, &e), 0, "%s", e.msg);
	synth_defaults(&sp);
	sp.tokens = tokens;
	struct trace *t = synth_generate(m, &sp, 1, &e);
	cr_assert(t, "%s", e.msg);
	return t;
}

static int count_tokens(void *ctx, int64_t tok, struct lif_err *err)
{
	int64_t *seen = ctx;
	(void)err;
	if (tok != seen[1] + 1)
		return err_set(err, ERR_INVAL, "token %lld after %lld", (long long)tok, (long long)seen[1]);
	seen[0]++, seen[1] = tok;
	return 0;
}

ParameterizedTestParameters(replay, makes_the_simulators_decisions_with_real_bytes)
{
	return cr_make_param_array(struct rcase, rcases, sizeof rcases / sizeof rcases[0]);
}

ParameterizedTest(struct rcase *c, replay, makes_the_simulators_decisions_with_real_bytes, .init = tu_init)
{
	enum { T = 40 };
	struct llm_desc m;
	struct device d;
	struct lif_err e = {0};
	struct trace *t = setup(&m, &d, T);
	struct sim_cache *cache = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	struct sim_token st[T];
	struct replay_token rt[T];
	struct sim_inputs in;
	sim_default_params(&p);
	p.predictor = PRED_MODELED;
	p.window = c->window, p.bundle = c->bundle, p.layout = layout_find(c->layout)->kind;
	p.layout_train_tokens = 20, p.parallelism = 4, p.compute_dtype = LLM_FP32;
	snprintf(p.hybrid, sizeof p.hybrid, "%s", c->hybrid);
	cr_assert_eq(sim_run(cache, &d, &p, 1, &r, st, &e), 0, "%s", e.msg);
	cr_assert_eq(sim_inputs_get(cache, &p, r.pin_frac, 1, &in, &e), 0, "%s", e.msg);
	const char *path = tu_path("rep.lsw");
	cr_assert_eq(wfile_write(path, &in.stored, in.layout, 9, 1, NULL, NULL, &e), 0, "%s", e.msg);
	struct wfile *w = wfile_open(path, &e);
	struct io_engine *io = w ? io_open(c->engine, path, p.parallelism, IO_CHECK_ALIGN, &e) : NULL;
	cr_assert(io, "%s", e.msg);
	char *log = NULL;
	size_t loglen = 0;
	int64_t seen[2] = {0, -1}; /* calls, last token */
	struct replay_opts o = {.verify = 1, .check_rows = 1, .compute = 1, .after_token = count_tokens,
				.after_ctx = seen, .iolog = open_memstream(&log, &loglen)};
	cr_assert_eq(replay_sparse(&in, t, w, io, &o, rt, &e), 0, "%s", e.msg);
	fclose(o.iolog);
	/* the callback ran once per timed token, in order; the iolog has a line per read */
	cr_expect_eq(seen[0], T);
	cr_expect_eq(seen[1], T - 1);
	int64_t lines = 0, reads = 0;
	for (char *q = log; *q; q++)
		lines += *q == '\n';
	for (int k = 0; k < T; k++)
		reads += rt[k].reads;
	cr_expect_eq(lines, reads);
	cr_expect(strstr(log, " read ") && strstr(log, path), "%.200s", log);
	free(log);
	for (int k = 0; k < T; k++) {
		cr_expect_eq(rt[k].neurons_loaded, st[k].neurons_loaded, "token %d", k);
		cr_expect_eq(rt[k].bytes_read, st[k].bytes_read, "token %d", k);
		cr_expect_eq(rt[k].reads, st[k].reads, "token %d", k);
		cr_expect_geq(rt[k].io_ms, 0);
	}
	io_close(io);
	wfile_close(w);
	sim_inputs_release(&in);
	sim_cache_free(cache);
	trace_free(t);
}

Test(replay, a_corrupt_weight_file_fails_with_the_place, .init = tu_init)
{
	enum { T = 10 };
	struct llm_desc m;
	struct device d;
	struct lif_err e = {0};
	struct trace *t = setup(&m, &d, T);
	struct sim_cache *cache = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_inputs in;
	struct replay_token rt[T];
	sim_default_params(&p);
	cr_assert_eq(sim_inputs_get(cache, &p, 0, 1, &in, &e), 0, "%s", e.msg);
	const char *path = tu_path("bad.lsw");
	cr_assert_eq(wfile_write(path, &in.stored, in.layout, 9, 1, NULL, NULL, &e), 0, "%s", e.msg);
	/* flip a byte of the first neuron token 0 loads in layer 0 */
	int first = 0;
	while (!trace_bit(in.pred, first))
		first++;
	FILE *f = fopen(path, "r+b");
	long at = 4096 + (long)layout_offset(in.layout, 0, 0, in.layout->pos[first]) + 3;
	cr_assert(f && !fseek(f, at, SEEK_SET));
	int ch = fgetc(f);
	fseek(f, at, SEEK_SET);
	fputc(ch ^ 0x40, f);
	fclose(f);
	struct wfile *w = wfile_open(path, &e);
	struct io_engine *io = io_open("mem", path, 2, 0, &e);
	cr_assert(w && io, "%s", e.msg);
	struct replay_opts o = {.verify = 1};
	cr_expect_eq(replay_sparse(&in, t, w, io, &o, rt, &e), ERR_FORMAT);
	cr_expect(strstr(e.msg, "checksum mismatch at layer 0 region 0") && strstr(e.msg, "bad.lsw"), "%s", e.msg);
	io_close(io);
	wfile_close(w);
	sim_inputs_release(&in);
	sim_cache_free(cache);
	trace_free(t);
}

Test(replay, naive_reads_the_whole_ffn_and_verifies_it, .init = tu_init)
{
	struct llm_desc m;
	struct device d;
	struct lif_err e = {0};
	struct trace *t = setup(&m, &d, 4);
	struct layout *l = layout_new(LAYOUT_ROWCOL, &m, NULL, 1, 1, 1, &e);
	const char *path = tu_path("naive.lsw");
	cr_assert_eq(wfile_write(path, &m, l, 3, 1, NULL, NULL, &e), 0, "%s", e.msg);
	struct wfile *w = wfile_open(path, &e);
	struct io_engine *io = io_open("psync", path, 2, 0, &e);
	struct replay_token rt[2];
	cr_assert(w && io, "%s", e.msg);
	cr_assert_eq(replay_naive(w, io, 65536, 2, 1, NULL, rt, &e), 0, "%s", e.msg);
	cr_expect_eq(rt[1].bytes_read, m.ffn_bytes);
	cr_expect_eq(rt[1].reads, (m.ffn_bytes + 65535) / 65536);
	io_close(io);
	wfile_close(w);
	layout_free(l);
	trace_free(t);
}

Test(replay, scale_shrinks_d_model_and_keeps_heads_dividing_it)
{
	struct llm_desc m;
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src("models/llms/opt-6.7b.ini"), &m, &e), 0);
	cr_assert_eq(replay_scale_model(&m, 0.0625, &e), 0, "%s", e.msg);
	cr_expect_eq(m.d_model, 256);
	cr_expect_eq(m.bundle_bytes, 2 * 256 * 2);
	cr_expect_eq(m.d_ffn, 16384);
	cr_expect_neq(replay_scale_model(&m, 2, &e), 0);
	cr_expect(strstr(e.msg, "scale 2 must be in (0, 1]"), "%s", e.msg);
}

Test(replay, validate_writes_validation_and_summary, .init = tu_init)
{
	char out[8192], ini[16384], model[4096];
	snprintf(model, sizeof model, "%s", tu_src("tests/data/tiny.ini"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s -o %s --tokens 30", model, tu_path("v.h5")), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s --layout hot --trace %s --train-tokens 20 -o %s",
			       model, tu_path("v.h5"), tu_path("v.lsw")), 0, "%s", out);
	snprintf(ini, sizeof ini,
		 "[experiment]\nkind = validate\nmodel = %s\ndevice = %s\ntrace = %s\n"
		 "[sim]\nlayout = hot\nlayout_train_tokens = 20\nwindow = 0, 3\nparallelism = 2\nwarmup_tokens = 5\n"
		 "compute_dtype = fp32\noverlap = none, pipelined\n"
		 "[validate]\nweights = %s\nengine = mem\nrepeats = 2\ntokens = 10\nprobe_seconds = 0.002\n"
		 "compute = true\n"
		 "arena = 4MiB\n",
		 model, tu_src("models/devices/m1max.ini"), tu_path("v.h5"), tu_path("v.lsw"));
	const char *x = tu_write("v.ini", ini);
	cr_assert_eq(tu_lifsim(out, sizeof out, "validate %s -o %s", x, tu_path("vd")), 0, "%s", out);
	cr_expect(strstr(out, "metric,regime,n,median_abs_err,p90_abs_err,max_abs_err,bias,cv_meas\n"), "%s", out);
	cr_expect(strstr(out, "io_ms_corr,all,4,"), "%s", out);
	/* compute is replayed and compared; both overlap modes have their rows */
	cr_expect(strstr(out, "compute_ms,all,4,") && strstr(out, "compute_ms_corr,all,4,"), "%s", out);
	cr_expect(strstr(out, "total_ms,none,2,") && strstr(out, "total_ms,pipelined,2,"), "%s", out);
	cr_expect(strstr(out, "total_ms_corr,pipelined,2,"), "%s", out);
	char path[1024], line[8192];
	snprintf(path, sizeof path, "%s/validation.csv", tu_path("vd"));
	FILE *f = fopen(path, "r");
	cr_assert(f && fgets(line, sizeof line, f));
	cr_expect(strstr(line, "io_ms_pred,io_ms_meas,io_rel_err,mem_ms_pred,mem_ms_meas,mem_rel_err,"
			 "total_ms_pred,total_ms_meas,total_rel_err"), "%s", line);
	cr_expect(strstr(line, "io_rel_err_corr") && strstr(line, "io_cv"), "%s", line);
	cr_expect(strstr(line, "total_rel_err,compute_ms_pred,compute_ms_meas,compute_rel_err"), "%s", line);
	cr_expect(strstr(line, "overlap_mode") && strstr(line, "compute_rel_err_corr") && strstr(line, "drift_compute"), "%s", line);
	cr_expect(strstr(line, "probe_chunk_bytes,probe_depth,probe_mib_per_s,probe_ref_mib_per_s,drift"), "%s", line);
	fclose(f);
	/* a point whose weight file is in another layout is an error that says so */
	snprintf(ini, sizeof ini,
		 "[experiment]\nkind = validate\nmodel = %s\ndevice = %s\ntrace = %s\n"
		 "[sim]\nlayout = rowcol\n[validate]\nweights = %s\nengine = mem\n",
		 model, tu_src("models/devices/m1max.ini"), tu_path("v.h5"), tu_path("v.lsw"));
	x = tu_write("bad.ini", ini);
	cr_expect_neq(tu_lifsim(out, sizeof out, "validate %s -o %s", x, tu_path("vb")), 0);
	cr_expect(strstr(out, "written in layout hot; the point uses rowcol"), "%s", out);
}

/* An experiment named without a directory (`lifsim validate v.ini`): its
 * relative keys resolve beside it, in the current directory (dirname of a
 * bare name is "." and leaves its argument as it was; this once gave
 * "v.ini/c.h5"). */
Test(replay, keys_of_an_experiment_named_without_a_directory_resolve_beside_it, .init = tu_init)
{
	tu_write("bare.ini", "[experiment]\nkind = validate\ntrace = c.h5\n");
	char dir[4096], cwd[4096];
	snprintf(dir, sizeof dir, "%s", tu_path("bare.ini"));
	*strrchr(dir, '/') = '\0';
	cr_assert(getcwd(cwd, sizeof cwd));
	cr_assert_eq(chdir(dir), 0);
	struct conf_doc *doc = NULL;
	struct lif_err e = {0};
	int rc = conf_doc_read("bare.ini", &doc, &e);
	char path[4096] = "c.h5";
	if (!rc)
		rc = pointin_resolve(path, sizeof path, doc, "experiment", "trace", PATH_FILE, &e);
	conf_doc_free(doc);
	cr_assert_eq(chdir(cwd), 0);
	cr_assert_eq(rc, 0, "%s", e.msg);
	cr_expect_str_eq(path, "./c.h5");
}

/* A weight file of another layout is refused before the replay's arena is
 * made (an arena larger than the machine would otherwise fail first, or
 * cost seconds to fault in before the error). */
Test(replay, a_wrong_layout_is_refused_before_the_arena, .init = tu_init)
{
	char out[8192], model[4096];
	snprintf(model, sizeof model, "%s", tu_src("tests/data/tiny.ini"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s -o %s --tokens 30", model, tu_path("a.h5")), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s --layout hot --trace %s --train-tokens 20 -o %s",
			       model, tu_path("a.h5"), tu_path("a.lsw")), 0, "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --trace %s --weights %s --sim layout=rowcol --arena 1TiB",
			       model, tu_path("a.h5"), tu_path("a.lsw")), 1, "%s", out);
	cr_expect(strstr(out, "written in layout hot; the point uses rowcol"), "%s", out);
}

Test(replay, replay_command_prints_per_token_csv, .init = tu_init)
{
	char out[16384], model[4096];
	snprintf(model, sizeof model, "%s", tu_src("tests/data/tiny.ini"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s -o %s --tokens 12", model, tu_path("c.h5")), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol -o %s", model, tu_path("c.lsw")), 0, "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "replay %s --trace %s --weights %s --engine psync "
			       "--sim window=2 --sim parallelism=3 --tokens 5 --device %s --check-rows",
			       model, tu_path("c.h5"), tu_path("c.lsw"), tu_src("models/devices/m1max.ini")), 0, "%s", out);
	cr_expect(!strncmp(out, "token,io_ms,place_ms,mem_ms,compute_ms,total_ms,bytes_read,reads,"
			   "neurons_loaded,rows_copied,io_ms_pred,mem_ms_pred,bytes_read_pred,"
			   "compute_ms_pred,total_ms_pred\n0,", 160), "%s", out);
	int lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	cr_expect_eq(lines, 6);
	/* an arena smaller than a layer's reads is refused, naming both */
	cr_expect_neq(tu_lifsim(out, sizeof out, "replay %s --trace %s --weights %s --arena 4KiB --tokens 2",
				model, tu_path("c.h5"), tu_path("c.lsw")), 0);
	cr_expect(strstr(out, "do not fit in the 4096-byte io arena"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "replay %s --trace %s --weights %s --arena lots",
				model, tu_path("c.h5"), tu_path("c.lsw")), 0);
	cr_expect(strstr(out, "--arena: 'lots' is not a byte size"), "%s", out);
	cr_expect_neq(tu_lifsim(out, sizeof out, "replay %s --trace %s --weights %s --sim nosuch=1",
				model, tu_path("c.h5"), tu_path("c.lsw")), 0);
	cr_expect(strstr(out, "--sim: 'nosuch=1' is not KEY=VALUE with a [sim] key"), "%s", out);
}

/* The FFN kernel on hand-worked rows: y = down^T act(up . h). */
Test(replay, compute_ffn_matches_a_hand_worked_product)
{
	/* ReLU, d = 2: row 0 up (1, 0) down (1, 2); row 1 up (0, -1) down (3, 4);
	 * row 2 (not computed) up (5, 5) down (9, 9) */
	const float m2[] = {1, 0, 1, 2, 0, -1, 3, 4, 5, 5, 9, 9};
	const float h[] = {2, 3};
	float a[3], u[3], y[2];
	rcompute_ffn(2, 2, m2, 2, h, a, u, y);
	/* a = relu(2, -3) = (2, 0); y = 2 * (1, 2) */
	cr_expect_float_eq(a[0], 2, 1e-6);
	cr_expect_float_eq(a[1], 0, 1e-6);
	cr_expect_float_eq(y[0], 2, 1e-6);
	cr_expect_float_eq(y[1], 4, 1e-6);
	/* gated, one row: gate (1, 0), up (0, 1), down (1, -1); h = (2, 3):
	 * a = silu(2) * 3 = 3 * 2 / (1 + e^-2) */
	const float m3[] = {1, 0, 0, 1, 1, -1};
	rcompute_ffn(2, 3, m3, 1, h, a, u, y);
	const double want = 3 * 2 / (1 + exp(-2.0));
	cr_expect_float_eq(y[0], want, 1e-5);
	cr_expect_float_eq(y[1], -want, 1e-5);
}

Test(replay, compute_needs_fp32_and_cycles_dense_sets_in_its_budget, .init = tu_init)
{
	struct llm_desc m;
	struct lif_err e = {0};
	cr_assert_eq(llm_load(tu_src("tests/data/tiny.ini"), &m, &e), 0, "%s", e.msg);
	/* fp16 as held: refused, saying what to set */
	cr_expect_null(rcompute_new(&m, 8, NULL, 0, &e));
	cr_expect(strstr(e.msg, "compute_dtype = fp32"), "%s", e.msg);
	m.dtype = LLM_FP32;
	cr_assert_eq(llm_derive(&m, m.name, &e), 0, "%s", e.msg);
	/* one set: 4 projections of 64 x 64 and 4 x 64 norm floats = 66560 bytes;
	 * 3 layers fit in 1 MiB; 1 byte still gets 2 sets */
	struct rcompute *c = rcompute_new(&m, 8, NULL, 1 << 20, &e);
	cr_assert(c, "%s", e.msg);
	cr_expect_eq(rcompute_pool(c), 3);
	rcompute_free(c);
	c = rcompute_new(&m, 8, NULL, 1, &e);
	cr_assert(c, "%s", e.msg);
	cr_expect_eq(rcompute_pool(c), 2);
	/* a token runs: embeddings, every layer (a KV cache past max_ctx is
	 * clamped, rows 0 is no FFN), the head */
	float rows[2 * 2 * 64] = {0};
	rcompute_begin(c, 300);
	for (int l = 0; l < m.layers; l++)
		rcompute_layer(c, l, l == 2 ? 100 : l, rows, l == 1 ? 0 : 2);
	rcompute_end(c);
	rcompute_free(c);
	/* with predictors: 2 more products per layer, counted in the set */
	int ranks[3] = {0, 4, 8};
	c = rcompute_new(&m, 8, ranks, 1 << 20, &e);
	cr_assert(c, "%s", e.msg);
	rcompute_begin(c, 0);
	for (int l = 0; l < m.layers; l++)
		rcompute_layer(c, l, 3, rows, 2);
	rcompute_end(c);
	rcompute_free(c);
}

struct pcase {
	int depth;
	char engine[16];
};

static struct pcase pcases[] = {{1, "mem"}, {2, "io_uring"}, {3, "psync"}};

ParameterizedTestParameters(replay, pipelined_reads_ahead_within_its_buffers)
{
	return cr_make_param_array(struct pcase, pcases, sizeof pcases / sizeof pcases[0]);
}

/* The pipelined replay makes the same decisions with the same bytes as the
 * serial one; each layer's reads start once layer l - depth's compute has
 * started and each layer computes after its reads; the wall time holds all
 * the compute and all the reads. */
ParameterizedTest(struct pcase *pc, replay, pipelined_reads_ahead_within_its_buffers, .init = tu_init)
{
	enum { T = 12 };
	struct llm_desc m;
	struct device d;
	struct lif_err e = {0};
	struct trace *t = setup(&m, &d, T);
	struct sim_cache *cache = sim_cache_new(t, &m, &e);
	struct sim_params p;
	struct sim_result r;
	struct sim_token st[T];
	struct replay_token serial[T], piped[T];
	struct sim_inputs in;
	sim_default_params(&p);
	p.predictor = PRED_MODELED, p.window = 2, p.compute_dtype = LLM_FP32;
	p.overlap = TIMELINE_PIPELINED, p.pipeline_depth = pc->depth;
	cr_assert_eq(sim_run(cache, &d, &p, 1, &r, st, &e), 0, "%s", e.msg);
	cr_assert_eq(sim_inputs_get(cache, &p, 0, 1, &in, &e), 0, "%s", e.msg);
	const char *path = tu_path("pipe.lsw");
	cr_assert_eq(wfile_write(path, &in.stored, in.layout, 5, 1, NULL, NULL, &e), 0, "%s", e.msg);
	struct wfile *w = wfile_open(path, &e);
	struct io_engine *io = w ? io_open(pc->engine, path, 4, 0, &e) : NULL;
	cr_assert(io, "%s", e.msg);
	const int L = m.layers;
	int events[T * 2 * 3];
	double lm[T * 3 * 3];
	struct replay_opts o = {.verify = 1, .check_rows = 1, .compute = 1, .context_tokens = 4};
	cr_assert_eq(replay_sparse(&in, t, w, io, &o, serial, &e), 0, "%s", e.msg);
	o.overlap = TIMELINE_PIPELINED, o.pipeline_depth = pc->depth, o.events = events, o.layer_ms = lm;
	cr_assert_eq(replay_sparse(&in, t, w, io, &o, piped, &e), 0, "%s", e.msg);
	for (int k = 0; k < T; k++) {
		cr_expect_eq(piped[k].bytes_read, serial[k].bytes_read, "token %d", k);
		cr_expect_eq(piped[k].bytes_read, st[k].bytes_read, "token %d", k);
		cr_expect_eq(piped[k].reads, serial[k].reads, "token %d", k);
		cr_expect_eq(piped[k].neurons_loaded, serial[k].neurons_loaded, "token %d", k);
		cr_expect_eq(piped[k].rows_copied, serial[k].rows_copied, "token %d", k);
		/* one thread reads, one computes: the wall time covers each */
		cr_expect_geq(piped[k].total_ms, piped[k].compute_ms, "token %d", k);
		cr_expect_geq(piped[k].total_ms, piped[k].io_ms, "token %d", k);
		double io = 0, cpu = 0;
		for (int l = 0; l < L; l++)
			io += lm[(k * L + l) * 3], cpu += lm[(k * L + l) * 3 + 2];
		cr_expect_float_eq(io, piped[k].io_ms, 1e-9, "token %d", k);
		cr_expect_leq(cpu, piped[k].compute_ms + 1e-9, "token %d", k);
		/* the order: reads and computes each in layer order, read l before
		 * compute l, read l after compute l - depth started */
		int rpos[3], cpos[3], nr = 0, nc = 0;
		for (int i = 0; i < 2 * L; i++) {
			int ev = events[k * 2 * L + i];
			if (ev > 0) {
				cr_expect_eq(ev - 1, nr, "token %d: read of layer %d out of order", k, ev - 1);
				rpos[nr++] = i;
			} else {
				cr_expect_eq(-ev - 1, nc, "token %d: compute of layer %d out of order", k, -ev - 1);
				cpos[nc++] = i;
			}
		}
		cr_assert_eq(nr, L);
		cr_assert_eq(nc, L);
		for (int l = 0; l < L; l++) {
			cr_expect_lt(rpos[l], cpos[l], "token %d layer %d computes before its reads", k, l);
			if (l >= pc->depth)
				cr_expect_gt(rpos[l], cpos[l - pc->depth], "token %d: layer %d read beyond depth %d",
					     k, l, pc->depth);
		}
	}
	io_close(io);
	wfile_close(w);
	sim_inputs_release(&in);
	sim_cache_free(cache);
	trace_free(t);
}
