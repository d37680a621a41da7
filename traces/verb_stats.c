#include "sim/verbs.h"
int verb_stats(int argc, char **argv, const struct cli_global *g)
{
	(void)argc, (void)argv, (void)g;
	return cli_failf("stats", "not built yet");
}
