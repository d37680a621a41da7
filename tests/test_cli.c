#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

TestSuite(cli, .init = tu_init);

struct cli_case {
	char args[256];
	int status;      /* expected exit status: 0 ok, 1 runtime error, 2 usage error */
	char want[160];  /* substring of the output */
};

static struct cli_case cases[] = {
	{"", 2, "usage: lifsim"},
	{"--help", 0, "verbs:"},
	{"--version", 0, "lifsim " PACKAGE_VERSION " (commit "},
	{"frobnicate", 2, "lifsim: unknown verb 'frobnicate' (verbs: synth"},
	{"swep x.ini", 2, "lifsim: unknown verb 'swep' (did you mean 'sweep'?)"},
	{"STATS x.h5", 2, "did you mean 'stats'?"},
	{"synth --help", 0, "generator parameters (dense models):"},
	{"stats --help", 0, "usage: lifsim stats"},
	{"synth --bogus", 2, "lifsim synth: unknown option '--bogus'"},
	{"synth MODELS/opt-6.7b.ini", 2, "lifsim synth: no output file"},
	{"synth", 2, "expected one MODEL.ini argument"},
	{"synth MODELS/opt-6.7b.ini -o x.h5 --set phi=2", 2, "phi: '2' is outside [0, 0.9999]"},
	{"synth MODELS/opt-6.7b.ini -o x.h5 --set nope=1", 2, "unknown generator parameter 'nope'"},
	{"synth /nonexistent.ini -o x.h5", 1, "/nonexistent.ini: cannot open"},
	{"stats /nonexistent.h5", 1, "lifsim stats: /nonexistent.h5: cannot open"},
	{"--threads 0 stats x", 2, "--threads: '0' is not a thread count"},
	{"stats --coact-samples -3 x.h5", 2, "--coact-samples: '-3' is not an integer"},
	{"synth MODELS/opt-6.7.ini -o x.h5", 1, "opt-6.7.ini: cannot open: No such file or directory "
						"(did you mean 'opt-6.7b.ini'?)"},
	{"sweep --bogus x.ini", 2, "lifsim sweep: unknown option '--bogus'"},
	{"sweep x.ini", 2, "missing -o DIR"},
	{"merge", 2, "missing -o DIR"},
	/* flags that mirror INI keys take the keys' bounds */
	{"replay x.ini --tokens 2000000000", 2,
	 "--tokens: '2000000000' is outside [1, 1073741824] (as [validate] tokens)"},
	{"replay x.ini --engine aio", 2, "--engine: 'aio' is not one of psync|io_uring|mem"},
	{"layout x.ini --bundle 0", 2, "--bundle: '0' is outside [1, 1048576] (as [sim] bundle)"},
	{"layout x.ini --dtype fp8", 2, "'fp8' is not one of fp32|fp16|bf16|int8 (as [model] dtype)"},
	{"calibrate --arena 2TiB", 2, "(as [validate] arena)"},
};

ParameterizedTestParameters(cli, errors_and_help_are_clear)
{
	return cr_make_param_array(struct cli_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct cli_case *c, cli, errors_and_help_are_clear, .init = tu_init)
{
	char args[512], out[8192];
	const char *m = strstr(c->args, "MODELS/");
	if (m)
		snprintf(args, sizeof args, "%.*s%s%s", (int)(m - c->args), c->args,
			 tu_src("models/llms/"), m + 7);
	else
		snprintf(args, sizeof args, "%s", c->args);
	int st = tu_lifsim(out, sizeof out, "%s", args);
	cr_expect_eq(st, c->status, "status %d for '%s': %s", st, args, out);
	cr_expect(strstr(out, c->want) != NULL, "output of '%s' lacks '%s':\n%s", args, c->want, out);
}

Test(cli, synth_then_stats_end_to_end)
{
	char out[8192];
	const char *trace = tu_path("e2e.h5"), *csv = tu_path("e2e.csv");
	int st = tu_lifsim(out, sizeof out, "synth %s --tokens 80 --seed 4 -o %s",
			   tu_src("tests/data/tiny.ini"), trace);
	cr_assert_eq(st, 0, "%s", out);
	st = tu_lifsim(out, sizeof out, "--threads 1 stats %s -o %s", trace, csv);
	cr_assert_eq(st, 0, "%s", out);
	cr_expect(strstr(out, "trace: tiny (synthetic), 80 tokens x 3 layers x 203 neurons"), "%s", out);
	cr_expect_eq(access(csv, F_OK), 0);
}

Test(cli, stats_on_a_corrupt_trace_fails_cleanly_without_output)
{
	char out[8192];
	const char *bad = tu_write("bad.h5", "garbage");
	int st = tu_lifsim(out, sizeof out, "stats %s -o %s", bad, tu_path("bad.csv"));
	cr_expect_eq(st, 1, "%s", out);
	cr_expect(strstr(out, "not an HDF5 file"), "%s", out);
	cr_expect_neq(access(tu_path("bad.csv"), F_OK), 0);
}

Test(cli, an_unknown_key_in_an_experiment_suggests_the_nearest)
{
	char out[8192];
	const char *ini = tu_write("typo.ini", "[experiment]\nmodel = x.ini\ndevice = y.ini\n"
				   "[sim]\nwindw = 3\n");
	int st = tu_lifsim(out, sizeof out, "sweep %s --dry-run", ini);
	cr_expect_eq(st, 1, "%s", out);
	cr_expect(strstr(out, "[sim] windw: unknown key (did you mean 'window'?)") != NULL, "%s", out);
}
