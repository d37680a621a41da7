/* The shipped small model (traces/tinylm): its checkpoint is a standard OPT
 * checkpoint and reproduces, through an independent numpy forward, the
 * held-out loss and per-layer sparsity its recipe records. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"

/* Run a shell command, capturing stdout and stderr; returns its exit status. */
static int run(char *out, size_t cap, const char *cmd)
{
	char full[20100];
	snprintf(full, sizeof full, "%s 2>&1", cmd);
	FILE *p = popen(full, "r");
	cr_assert(p, "cannot run %s", cmd);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void check_cmd(char *cmd, size_t cap, const char *dir)
{
	snprintf(cmd, cap, "/usr/bin/python3 %s --check-only --out %s --text %s --holdout 1 "
		 "--expect-recipe", tu_src("traces/tinylm/train.py"), dir,
		 tu_src("traces/tinylm/heldout.txt"));
}

TestSuite(tinylm, .init = tu_init, .timeout = 120);

Test(tinylm, shipped_checkpoint_reproduces_its_recipe_in_numpy)
{
	char cmd[20000], out[8192];
	check_cmd(cmd, sizeof cmd, tu_src("traces/tinylm"));
	int rc = run(out, sizeof out, cmd);
	cr_assert_eq(rc, 0, "%s", out);
	cr_expect(strstr(out, "checkpoint OK: 68 tensors"), "%s", out);
	cr_expect(strstr(out, "loss and per-layer sparsity match recipe.json"), "%s", out);
}

struct bad_ckpt {
	char sed[160]; /* applied to the copy's config.json ("" = none) */
	long truncate_to; /* bytes of model.safetensors to keep (0 = all) */
	char want[160];
};

static struct bad_ckpt bad_ckpts[] = {
	{"s/\"relu\"/\"gelu\"/", 0, "config.json: activation_function is 'gelu', expected 'relu'"},
	{"s/\"do_layer_norm_before\": true/\"do_layer_norm_before\": false/", 0,
	 "config.json: do_layer_norm_before is False, expected True"},
	{"s/\"ffn_dim\": [0-9]*/\"ffn_dim\": 512/", 0,
	 "tensor model.decoder.layers.0.fc1.weight has shape (1024, 256), expected (512, 256)"},
	{"s/\"num_hidden_layers\": [0-9]*/\"num_hidden_layers\": 9/", 0, "is missing"},
	{"", 4096, "model.safetensors: truncated (header of"},
	{"", 6000000, "model.safetensors: tensor model.decoder.layers"},
};

ParameterizedTestParameters(tinylm, broken_copies_are_rejected_naming_the_key_or_tensor)
{
	return cr_make_param_array(struct bad_ckpt, bad_ckpts, sizeof bad_ckpts / sizeof bad_ckpts[0]);
}

ParameterizedTest(struct bad_ckpt *c, tinylm, broken_copies_are_rejected_naming_the_key_or_tensor,
		  .init = tu_init, .timeout = 120)
{
	char cmd[20000], out[8192];
	const char *dir = tu_path("ckpt");
	char d[4096];
	snprintf(d, sizeof d, "%s", dir);
	snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s %s %s/", d,
		 tu_src("traces/tinylm/config.json"), tu_src("traces/tinylm/model.safetensors"),
		 tu_src("traces/tinylm/recipe.json"), d);
	cr_assert_eq(run(out, sizeof out, cmd), 0, "%s", out);
	if (c->sed[0]) {
		snprintf(cmd, sizeof cmd, "sed -i '%s' %s/config.json", c->sed, d);
		cr_assert_eq(run(out, sizeof out, cmd), 0, "%s", out);
	}
	if (c->truncate_to) {
		snprintf(cmd, sizeof cmd, "truncate -s %ld %s/model.safetensors", c->truncate_to, d);
		cr_assert_eq(run(out, sizeof out, cmd), 0, "%s", out);
	}
	check_cmd(cmd, sizeof cmd, d);
	cr_expect_neq(run(out, sizeof out, cmd), 0, "%s", out);
	cr_expect(strstr(out, c->want), "output '%s' lacks '%s'", out, c->want);
}
