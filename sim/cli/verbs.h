/*
 * verbs: the table of `lifsim VERB` entry points. Each verb lives in the
 * module it fronts (sim/cli/verb_synth.c, ...), parses its own options with
 * sim/cli/cli.h, prints its own --help, and returns the exit status.
 */
#ifndef LIFSIM_VERBS_H
#define LIFSIM_VERBS_H

#include "sim/cli/cli.h"

struct verb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv, const struct cli_global *g);
};

int verb_synth(int argc, char **argv, const struct cli_global *g);
int verb_stats(int argc, char **argv, const struct cli_global *g);
int verb_device(int argc, char **argv, const struct cli_global *g);
int verb_sweep(int argc, char **argv, const struct cli_global *g);
int verb_merge(int argc, char **argv, const struct cli_global *g);
int verb_tokens(int argc, char **argv, const struct cli_global *g);
int verb_record(int argc, char **argv, const struct cli_global *g);
int verb_predictor(int argc, char **argv, const struct cli_global *g);
int verb_bench_gemv(int argc, char **argv, const struct cli_global *g);
int verb_layout(int argc, char **argv, const struct cli_global *g);
int verb_calibrate(int argc, char **argv, const struct cli_global *g);
int verb_replay(int argc, char **argv, const struct cli_global *g);
int verb_validate(int argc, char **argv, const struct cli_global *g);

#endif
