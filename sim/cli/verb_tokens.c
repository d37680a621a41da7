/* lifsim tokens: print a point's per-token detail (sim/sweep/pertoken.h) as CSV. */
#include <stdio.h>
#include <string.h>

#include "sim/sweep/pertoken.h"
#include "sim/cli/verbs.h"

int verb_tokens(int argc, char **argv, const struct cli_global *g)
{
	static const struct option longopts[] = {{"help", no_argument, 0, 'h'}, {0}};
	int c;
	while ((c = cli_getopt("tokens", argc, argv, "h", longopts)) != -1) {
		if (c != 'h')
			return CLI_EXIT_USAGE;
		printf("usage: lifsim tokens DIR/per_token/POINT_ID.h5\n\n"
		       "Print a sweep point's per-token costs (written with [output] per_token = true)\n"
		       "as CSV: token,%s\n", PERTOKEN_COLUMNS);
		return 0;
	}
	if (optind != argc - 1)
		return cli_failf("tokens", "expected one per-token file (see lifsim tokens --help)");
	struct lif_err err = {0};
	int rc = pertoken_print_csv(argv[optind], stdout, &err);
	if (rc == ERR_INVAL) /* a trace given for a per-token file */
		return cli_failf("tokens", "%s", err.msg);
	return rc ? cli_fail("tokens", &err) : 0;
}
