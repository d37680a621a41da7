#include "sim/verbs.h"
int verb_synth(int argc, char **argv, const struct cli_global *g)
{
	(void)argc, (void)argv, (void)g;
	return cli_failf("synth", "not built yet");
}
