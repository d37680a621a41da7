/* moe_real: the MoE real path (expert weight files, the simulator's read
 * plan, moe_replay, replay --router-trace, kind = moevalidate) on hand-made
 * router traces with the mem engine, and its errors on bad input. */
#include <criterion/criterion.h>
#include <gsl/gsl_rng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/device.h"
#include "sim/core/moe.h"
#include "sim/real/io.h"
#include "sim/real/moereplay.h"
#include "sim/real/wfile.h"
#include "tests/testutil.h"
#include "traces/router.h"

TestSuite(moe_real, .init = tu_init);

/* One MoE layer, 4 experts, top-2, d_expert 32 over d_model 64 in fp16: one
 * expert matrix is 4096 bytes (aligned for O_DIRECT), an expert 12288. */
static struct llm_desc hand_model(void)
{
	struct llm_desc d = {.name = "hand", .layers = 1, .d_model = 64, .d_ffn = 32, .heads = 4,
			     .vocab = 100, .ffn_kind = LLM_FFN_GATED3, .dtype = LLM_FP16,
			     .experts = 4, .experts_per_token = 2, .d_expert = 32};
	struct lif_err e = {0};
	cr_assert_eq(llm_derive(&d, "hand", &e), 0, "%s", e.msg);
	return d;
}

/* 0,1 | 0,2 | 1,2 | 0,1 (tests/test_moe.c's hand trace). */
static struct router_trace *hand_trace(void)
{
	static const int16_t rows[] = {0, 1, 0, 2, 1, 2, 0, 1};
	struct router_meta m = {.model = "hand", .layers = 1, .experts = 4, .top_k = 2,
				.d_expert = 32, .tokens = 4};
	struct lif_err e = {0};
	struct router_trace *rt = router_trace_new(&m, &e);
	cr_assert_not_null(rt, "%s", e.msg);
	memcpy(rt->ids, rows, sizeof rows);
	for (int i = 0; i < 8; i++)
		rt->weights[i] = 0.5f;
	return rt;
}

struct rcase {
	int layout;
	int64_t max_gap;
	int64_t reads[4];     /* per token, hand-worked */
	int64_t off0, len0;   /* token 0's first extent */
};

/* The inserts of LRU with two experts (expert -> cache slot), hand-worked:
 * 0->0, 1->1 | 2->1 (evicts 1) | 1->0 (evicts 0) | 0->0 (evicts 1), 1->1
 * (evicts 2). Slots of the layer's region are the expert ids in every case
 * below (cosel's chain is 0, 1, 2, 3). */
static const int ins_first[5] = {0, 2, 3, 4, 6};
static const int ins_expert[6] = {0, 1, 2, 1, 0, 1}, ins_slot[6] = {0, 1, 1, 0, 0, 1};

/* LRU with two experts held misses 0,1 | 2 | 1 | 0,1 (6 misses). */
static const struct rcase cases[] = {
	/* one extent per expert at slot x 12288 */
	{MOE_LAYOUT_EXPERT, -1, {2, 1, 1, 2}, 0, 12288},
	/* experts 0 and 1 touch: one read each time both miss */
	{MOE_LAYOUT_EXPERT, 0, {1, 1, 1, 1}, 0, 24576},
	/* per matrix: gate, up, down at (matrix x 4 + slot) x 4096 */
	{MOE_LAYOUT_MATRIX, -1, {6, 3, 3, 6}, 0, 4096},
	/* per matrix, experts 0 and 1 of one matrix touch */
	{MOE_LAYOUT_MATRIX, 0, {3, 3, 3, 3}, 0, 8192},
	/* co-selected: the chain 0, 1, 2, 3 (0 and 1 most often together) */
	{MOE_LAYOUT_COSEL, -1, {2, 1, 1, 2}, 0, 12288},
};

static void run_case(const struct rcase *c, const char *name)
{
	struct llm_desc m = hand_model();
	struct router_trace *rt = hand_trace();
	struct device dev;
	struct lif_err e = {0};
	cr_assert_eq(m.expert_matrix_bytes, 4096);
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	struct moe_params p = {.cache_policy = "lru", .expert_cache = 2, .parallelism = 4,
			       .max_gap = c->max_gap, .layout = c->layout};
	struct moe_result r;
	struct moe_plan plan = {0};
	cr_assert_eq(moe_run_plan(rt, &m, &dev, &p, NULL, &r, &plan, &e), 0, "%s", e.msg);
	int slot[4];
	cr_assert_eq(moe_layer_slots(rt, 0, c->layout, slot), 0);
	for (int x = 0; x < 4; x++)
		cr_expect_eq(slot[x], x, "slot of expert %d", x);
	cr_expect_eq(memcmp(slot, plan.slot, sizeof slot), 0);
	/* the plan: hand-worked extents; bytes are always 6 experts' */
	int64_t total_reads = 0, total_bytes = 0;
	for (int t = 0; t < 4; t++) {
		cr_expect_eq(plan.first[t + 1] - plan.first[t], c->reads[t], "token %d", t);
		total_reads += c->reads[t];
	}
	for (int64_t j = 0; j < plan.n; j++)
		total_bytes += plan.len[j];
	cr_expect_eq(total_bytes, 6 * 12288);
	cr_expect_eq(plan.off[0], c->off0);
	cr_expect_eq(plan.len[0], c->len0);
	/* the plan is what the run costed */
	cr_expect_float_eq(r.reads_per_token, total_reads / 4.0, 1e-12);
	cr_expect_float_eq(r.expert_bytes_read_per_token, total_bytes / 4.0, 1e-9);
	double ns = 0;
	for (int t = 0; t < 4; t++)
		ns += plan.io_ns[t];
	cr_expect_float_eq(r.io_ms, ns / 4 * 1e-6, 1e-12);
	/* the copies into the cache: each insert's expert (three matrix pieces in
	 * the matrix layout) from its place in the region to its cache slot */
	const int pieces = c->layout == MOE_LAYOUT_MATRIX ? 3 : 1;
	const int64_t piece = 12288 / pieces;
	cr_expect_eq(plan.cache_bytes, 2 * 12288);
	cr_expect_eq(plan.cn, 6 * pieces);
	for (int t = 0; t < 4; t++) {
		cr_expect_eq(plan.cfirst[t], ins_first[t] * pieces, "token %d", t);
		for (int j = ins_first[t]; j < ins_first[t + 1]; j++)
			for (int k = 0; k < pieces; k++) {
				int64_t x = j * pieces + k;
				int64_t src = pieces > 1 ? (k * 4 + ins_expert[j]) * piece
							 : ins_expert[j] * 12288;
				cr_expect_eq(plan.csrc[x], src, "token %d copy %lld", t, (long long)x);
				cr_expect_eq(plan.cdst[x], ins_slot[j] * 12288 + k * piece, "token %d", t);
				cr_expect_eq(plan.clen[x], piece);
			}
	}
	cr_expect_float_eq(r.expert_bytes_copied_per_token, 6 * 12288 / 4.0, 1e-9);
	/* the file, and the replay of the plan with checksums on */
	const char *path = tu_path(name);
	cr_assert_eq(wfile_write_moe(path, &m, c->layout, plan.slot, 7, NULL, NULL, &e), 0, "%s", e.msg);
	struct wfile *w = wfile_open(path, &e);
	cr_assert_not_null(w, "%s", e.msg);
	cr_expect_eq(wfile_info(w)->version, 3);
	cr_expect_eq(wfile_info(w)->experts, 4);
	struct io_engine *io = io_open("mem", path, 4, IO_CHECK_ALIGN, &e);
	cr_assert_not_null(io, "%s", e.msg);
	struct moe_replay_token tok[4];
	struct moe_replay_opts o = {.verify = 1};
	cr_assert_eq(moe_replay(&plan, &m, w, io, &o, tok, &e), 0, "%s", e.msg);
	for (int t = 0; t < 4; t++) {
		cr_expect_eq(tok[t].reads, c->reads[t], "token %d", t);
		int64_t b = 0;
		for (int64_t j = plan.first[t]; j < plan.first[t + 1]; j++)
			b += plan.len[j];
		cr_expect_eq(tok[t].bytes_read, b, "token %d", t);
		cr_expect_eq(tok[t].bytes_io, b, "aligned: nothing widened");
		cr_expect_eq(tok[t].bytes_copied, (ins_first[t + 1] - ins_first[t]) * 12288, "token %d", t);
		cr_expect_eq(tok[t].copies, (ins_first[t + 1] - ins_first[t]) * pieces, "token %d", t);
		cr_expect_float_eq(tok[t].total_ms, tok[t].io_ms + tok[t].mem_ms, 1e-12);
	}
	/* from a later token on: the earlier ones are not read */
	o.first_token = 2;
	cr_assert_eq(moe_replay(&plan, &m, w, io, &o, tok, &e), 0, "%s", e.msg);
	cr_expect_eq(tok[0].reads + tok[1].reads, 0);
	cr_expect_eq(tok[2].reads, c->reads[2]);
	io_close(io);
	wfile_close(w);
	moe_plan_free(&plan);
	router_trace_free(rt);
}

Test(moe_real, replay_reads_the_hand_worked_extents_in_every_layout)
{
	char name[32];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(name, sizeof name, "h%zu.lsw", i);
		run_case(&cases[i], name);
	}
}

/* Prefetch's reads are in the plan too (wrong guesses read for nothing), and
 * the replay reads them: bytes and reads equal the run's. */
Test(moe_real, prefetched_and_wasted_reads_are_planned_and_replayed)
{
	struct llm_desc m = hand_model();
	struct router_trace *rt = hand_trace();
	struct device dev;
	struct lif_err e = {0};
	cr_assert_eq(device_load(tu_src("models/devices/ufs40-phone.ini"), &dev, &e), 0, "%s", e.msg);
	gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
	gsl_rng_set(rng, 3);
	const int pf[2] = {MOE_PREFETCH_ORACLE, MOE_PREFETCH_MODELED};
	for (int k = 0; k < 2; k++) {
		struct moe_params p = {.cache_policy = "lru", .expert_cache = 1, .parallelism = 2,
				       .max_gap = -1, .layout = MOE_LAYOUT_MATRIX, .prefetch = pf[k],
				       .prefetch_accuracy = 0};
		struct moe_result r;
		struct moe_plan plan = {0};
		cr_assert_eq(moe_run_plan(rt, &m, &dev, &p, rng, &r, &plan, &e), 0, "%s", e.msg);
		const char *path = tu_path("pf.lsw");
		cr_assert_eq(wfile_write_moe(path, &m, p.layout, plan.slot, 1, NULL, NULL, &e), 0, "%s", e.msg);
		struct wfile *w = wfile_open(path, &e);
		struct io_engine *io = w ? io_open("mem", path, 2, IO_CHECK_ALIGN, &e) : NULL;
		cr_assert(w && io, "%s", e.msg);
		struct moe_replay_token tok[4];
		struct moe_replay_opts o = {.verify = 1};
		cr_assert_eq(moe_replay(&plan, &m, w, io, &o, tok, &e), 0, "%s", e.msg);
		double bytes = 0, reads = 0, copied = 0;
		for (int t = 0; t < 4; t++)
			bytes += (double)tok[t].bytes_read, reads += (double)tok[t].reads,
			copied += (double)tok[t].bytes_copied;
		/* the replay copies what the model charges: every miss is kept (LRU)
		 * and copied, the wrong guesses are read but never copied */
		cr_expect_float_eq(copied / 4, r.expert_bytes_copied_per_token, 1e-9, "prefetch %d", pf[k]);
		cr_expect_float_eq(copied, bytes - 4 * r.prefetch_wasted_bytes_per_token, 1e-6, "prefetch %d",
				   pf[k]);
		cr_expect_float_eq(bytes / 4, r.expert_bytes_read_per_token, 1e-9, "prefetch %d", pf[k]);
		cr_expect_float_eq(reads / 4, r.reads_per_token, 1e-12, "prefetch %d", pf[k]);
		/* oracle wastes nothing; accuracy 0 guesses 2 wrong experts per token,
		 * read unless resident */
		if (k)
			cr_expect(r.prefetch_wasted_bytes_per_token > 0 &&
				  r.prefetch_wasted_bytes_per_token <= 2.0 * 12288 + 1e-9, "%g",
				  r.prefetch_wasted_bytes_per_token);
		else
			cr_expect_float_eq(r.prefetch_wasted_bytes_per_token, 0, 1e-12);
		io_close(io);
		wfile_close(w);
		moe_plan_free(&plan);
	}
	gsl_rng_free(rng);
	router_trace_free(rt);
}

/* An expert's matrix k lies where moe_matrix_offset says, as wfile_piece. */
Test(moe_real, expert_bytes_land_at_the_simulators_offsets)
{
	struct llm_desc m = hand_model();
	struct lif_err e = {0};
	const int slot[4] = {2, 0, 3, 1}; /* a cosel-like order */
	for (int layout = 0; layout < 3; layout++) {
		const char *path = tu_path("o.lsw");
		cr_assert_eq(wfile_write_moe(path, &m, layout, slot, 11, NULL, NULL, &e), 0, "%s", e.msg);
		struct wfile *w = wfile_open(path, &e);
		cr_assert_not_null(w, "%s", e.msg);
		const struct wfile_info *i = wfile_info(w);
		char *region = malloc((size_t)i->layer_bytes), want[4096];
		FILE *f = fopen(path, "rb");
		cr_assert(f && !fseek(f, i->ffn_offset, SEEK_SET) &&
			  fread(region, 1, (size_t)i->layer_bytes, f) == (size_t)i->layer_bytes);
		fclose(f);
		for (int x = 0; x < 4; x++)
			for (int k = 0; k < 3; k++) {
				wfile_piece(11, 0, k, x, LLM_FP16, want, 4096);
				cr_expect_eq(memcmp(region + moe_matrix_offset(&m, layout, slot[x], k), want,
						    4096), 0, "layout %d expert %d matrix %d", layout, x, k);
			}
		cr_expect_eq(wfile_moe_verify(w, 0, 0, region, i->layer_bytes, &e), 0, "%s", e.msg);
		region[5000] ^= 1;
		cr_expect_neq(wfile_moe_verify(w, 0, 0, region, i->layer_bytes, &e), 0);
		cr_expect(strstr(e.msg, "checksum mismatch at MoE layer 0 piece 1"), "%s", e.msg);
		free(region);
		wfile_close(w);
	}
}

/* A file for a router trace of tinymoe, in a layout. */
static void tiny_files(char *model, size_t cap)
{
	char out[4096];
	snprintf(model, cap, "%s", tu_src("models/llms/tinymoe.ini"));
	if (access(tu_path("r.h5"), F_OK))
		cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s --tokens 12 --seed 5 -o %s", model,
				       tu_path("r.h5")), 0, "%s", out);
}

Test(moe_real, layout_and_replay_commands_agree_with_the_simulator)
{
	char out[16384], model[4096], dev[4096];
	tiny_files(model, sizeof model);
	snprintf(dev, sizeof dev, "%s", tu_src("models/devices/ufs40-phone.ini"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s --expert-layout cosel --router-trace %s -o %s",
			       model, tu_path("r.h5"), tu_path("c.lsw")), 0, "%s", out);
	cr_expect(strstr(out, "expert layout cosel, 4 MoE layers x 16 experts of 98304 bytes"), "%s", out);
	cr_assert_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s "
			       "--engine mem --arena 4MiB --moe expert_cache=4 --moe expert_layout=cosel "
			       "--moe max_gap=1MiB --tokens 6", model, tu_path("r.h5"), tu_path("c.lsw"), dev),
		     0, "%s", out);
	cr_expect(strstr(out, "token,io_ms,mem_ms,total_ms,bytes_read,reads,bytes_copied,io_ms_pred,"
			 "mem_ms_pred,bytes_read_pred,reads_pred,bytes_copied_pred,total_ms_pred\n"), "%s", out);
	/* every token read what the plan says */
	char *line = strchr(out, '\n');
	int rows = 0;
	long long first_reads = -1;
	while (line && line[1]) {
		long long t, b, n, c, bp, np, cp;
		double x[4];
		cr_assert_eq(sscanf(line + 1, "%lld,%lf,%lf,%lf,%lld,%lld,%lld,%lf,%lf,%lld,%lld,%lld", &t,
				    &x[0], &x[1], &x[2], &b, &n, &c, &x[3], &x[3], &bp, &np, &cp), 12,
			     "%s", line + 1);
		cr_expect_eq(b, bp, "token %lld bytes", t);
		cr_expect_eq(c, cp, "token %lld bytes copied", t);
		cr_expect(c > 0 || t > 0, "the cold token 0 copies what it keeps");
		cr_expect_eq(n, np, "token %lld reads", t);
		if (t == 0)
			first_reads = n;
		rows++;
		line = strchr(line + 1, '\n');
	}
	cr_expect_eq(rows, 6);
	/* the cold first token misses its 2 experts in each of the 4 layers: with
	 * max_gap 1 MiB (more than the 15 experts between them) one read a layer */
	cr_expect_eq(first_reads, 4, "%s", out);
}

Test(moe_real, bad_input_gives_clear_errors)
{
	char out[8192], model[4096], dev[4096], dense[4096];
	tiny_files(model, sizeof model);
	snprintf(dev, sizeof dev, "%s", tu_src("models/devices/ufs40-phone.ini"));
	snprintf(dense, sizeof dense, "%s", tu_src("tests/data/tiny.ini"));
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s -o %s", model, tu_path("e.lsw")), 0, "%s", out);
	const char *args = "--engine mem --arena 4MiB --moe expert_cache=4";
	/* a dense weight file */
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s --layout rowcol -o %s", dense, tu_path("d.lsw")),
		     0, "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s %s",
			       model, tu_path("r.h5"), tu_path("d.lsw"), dev, args), 1);
	cr_expect(strstr(out, "d.lsw: a dense weight file"), "%s", out);
	/* and the expert file given to a dense replay */
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s -o %s --tokens 5", dense, tu_path("t.h5")), 0, "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --trace %s --weights %s --engine mem --arena 4MiB", dense,
			       tu_path("t.h5"), tu_path("e.lsw")), 1);
	cr_expect(strstr(out, "e.lsw: an MoE expert file"), "%s", out);
	/* another layout, another scale (wrong model) */
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s %s "
			       "--moe expert_layout=matrix", model, tu_path("r.h5"), tu_path("e.lsw"), dev,
			       args), 1);
	cr_expect(strstr(out, "written in expert layout expert; the point uses matrix"), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s %s "
			       "--scale 0.5", model, tu_path("r.h5"), tu_path("e.lsw"), dev, args), 1);
	cr_expect(strstr(out, "written for tinymoe: 4 MoE layers x 16 experts of 98304 bytes"), "%s", out);
	/* a router trace of another model */
	cr_assert_eq(tu_lifsim(out, sizeof out, "synth %s -o %s --tokens 5", tu_src("models/llms/olmoe-1b-7b.ini"),
			       tu_path("o.h5")), 0, "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s %s",
			       model, tu_path("o.h5"), tu_path("e.lsw"), dev, args), 1);
	cr_expect(strstr(out, "does not match tinymoe"), "%s", out);
	/* truncated */
	char cmd[8400];
	snprintf(cmd, sizeof cmd, "head -c 100000 %s > %s", tu_path("e.lsw"), tu_path("tr.lsw"));
	cr_assert_eq(system(cmd), 0);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s %s",
			       model, tu_path("r.h5"), tu_path("tr.lsw"), dev, args), 1);
	cr_expect(strstr(out, "tr.lsw: file is 100000 bytes but its header says"), "%s", out);
	/* a damaged MoE header field */
	snprintf(cmd, sizeof cmd, "cp %s %s && printf '\\x05' | dd of=%s bs=1 seek=330 conv=notrunc 2>/dev/null",
		 tu_path("e.lsw"), tu_path("h.lsw"), tu_path("h.lsw"));
	cr_assert_eq(system(cmd), 0);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s %s",
			       model, tu_path("r.h5"), tu_path("h.lsw"), dev, args), 1);
	cr_expect(strstr(out, "h.lsw: corrupt header"), "%s", out);
	/* usage */
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s",
			       model, tu_path("r.h5"), tu_path("e.lsw"), dev), 2);
	cr_expect(strstr(out, "give --moe expert_cache=N or --moe dram_budget=BYTES"), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "replay %s --router-trace %s --weights %s --device %s "
			       "--moe colour=red", model, tu_path("r.h5"), tu_path("e.lsw"), dev), 2);
	cr_expect(strstr(out, "--moe: 'colour=red' is not KEY=VALUE with a [moe] key"), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "layout %s --expert-layout cosel -o %s", model,
			       tu_path("x.lsw")), 2);
	cr_expect(strstr(out, "give --router-trace"), "%s", out);
	cr_expect_eq(tu_lifsim(out, sizeof out, "layout %s --expert-layout matrix -o %s", dense,
			       tu_path("x.lsw")), 2);
	cr_expect(strstr(out, "are for mixture-of-experts models"), "%s", out);
	cr_expect_neq(access(tu_path("x.lsw"), F_OK), 0, "nothing written");
}

Test(moe_real, moevalidate_writes_validation_and_summary)
{
	char out[16384], model[4096], ini[8192];
	tiny_files(model, sizeof model);
	cr_assert_eq(tu_lifsim(out, sizeof out, "layout %s --expert-layout matrix -o %s", model,
			       tu_path("m.lsw")), 0, "%s", out);
	snprintf(ini, sizeof ini,
		 "[experiment]\nkind = moevalidate\nmodel = %s\ndevice = %s\ntrace = %s\n"
		 "[moe]\nexpert_cache = 2, 8\nexpert_layout = matrix\nmax_gap = 0, 1MiB\n"
		 "parallelism = 4\nwarmup_tokens = 4\n"
		 "[validate]\nweights = %s\nengine = mem\nrepeats = 2\ntokens = 6\n"
		 "probe_seconds = 0.002\narena = 4MiB\n",
		 model, tu_src("models/devices/ufs40-phone.ini"), tu_path("r.h5"), tu_path("m.lsw"));
	const char *x = tu_write("mv.ini", ini);
	cr_assert_eq(tu_lifsim(out, sizeof out, "validate %s -o %s", x, tu_path("mv")), 0, "%s", out);
	cr_expect(strstr(out, "io_ms,all,4,") && strstr(out, "io_ms_corr,all,4,") &&
		  strstr(out, "total_ms_corr,all,4,"), "%s", out);
	char path[1024], line[8192];
	snprintf(path, sizeof path, "%s/validation.csv", tu_path("mv"));
	FILE *f = fopen(path, "r");
	cr_assert(f && fgets(line, sizeof line, f));
	cr_expect(strstr(line, "expert_hit_rate,expert_bytes_read_per_token"), "%s", line);
	cr_expect(strstr(line, "io_ms_pred,io_ms_meas,io_rel_err") && strstr(line, "io_rel_err_corr") &&
		  strstr(line, "total_ms_pred,total_ms_meas,total_rel_err"), "%s", line);
	/* the replay read what was predicted, point by point */
	char *h = strdup(line);
	int ib = -1, im = -1, col = 0;
	for (char *s = strtok(h, ",\n"); s; s = strtok(NULL, ",\n"), col++) {
		if (!strcmp(s, "bytes_per_token_pred"))
			ib = col;
		if (!strcmp(s, "bytes_per_token_meas"))
			im = col;
	}
	free(h);
	cr_assert(ib >= 0 && im >= 0);
	int rows = 0;
	while (fgets(line, sizeof line, f)) {
		double v[128];
		int n = 0;
		for (char *s = strtok(line, ",\n"); s && n < 128; s = strtok(NULL, ",\n"))
			v[n++] = strtod(s, NULL);
		cr_expect_float_eq(v[ib], v[im], 1e-6, "row %d", rows);
		cr_expect_gt(v[ib], 0, "row %d", rows);
		rows++;
	}
	fclose(f);
	cr_expect_eq(rows, 4);
	/* a point whose weight file is in another layout is an error that says so */
	snprintf(ini, sizeof ini,
		 "[experiment]\nkind = moevalidate\nmodel = %s\ndevice = %s\ntrace = %s\n"
		 "[moe]\nexpert_cache = 2\nexpert_layout = expert\n[validate]\nweights = %s\nengine = mem\n",
		 model, tu_src("models/devices/ufs40-phone.ini"), tu_path("r.h5"), tu_path("m.lsw"));
	x = tu_write("mvbad.ini", ini);
	cr_expect_eq(tu_lifsim(out, sizeof out, "validate %s -o %s", x, tu_path("mvb")), 1, "%s", out);
	cr_expect(strstr(out, "written in expert layout matrix; the point uses expert"), "%s", out);
}
