#include "sim/sweep/report.h"
#include "sim/base/csv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Print one point's rows: each metric that has a reference value. */
static void point_rows(FILE *out, const struct csv *c, size_t k, const long *mine,
		       const long *ref, size_t np, long label)
{
	char *const *v = c->recs[k].f;
	for (size_t j = 0; j < np; j++) {
		if (!v[ref[j]][0])
			continue; /* this point has no such reference */
		double a = strtod(v[mine[j]], NULL), b = strtod(v[ref[j]], NULL);
		char diff[32] = "";
		if (b != 0)
			snprintf(diff, sizeof diff, "%+.1f%%", 100 * (a / b - 1));
		fprintf(out, "%-12s %-24s %14.6g %14.6g %9s\n", v[label], c->recs[0].f[mine[j]], a, b,
			diff);
	}
}

int report_refs(const char *results_csv, FILE *out, struct lif_err *err)
{
	struct csv c;
	int rc = csv_read(results_csv, &c, err);
	if (rc)
		return rc;
	const struct csv_rec *h = &c.recs[0];
	long *mine = malloc((h->n + 1) * sizeof *mine), *ref = malloc((h->n + 1) * sizeof *ref);
	long label = csv_col(&c, "row") < 0 ? 0 : csv_col(&c, "row");
	size_t np = 0;
	if (!mine || !ref)
		rc = err_set(err, ERR_NOMEM, "out of memory");
	for (size_t i = 0; !rc && i < h->n; i++) {
		long j = strncmp(h->f[i], "ref_", 4) ? -1 : csv_col(&c, h->f[i] + 4);
		if (j >= 0)
			mine[np] = j, ref[np++] = (long)i;
	}
	if (np)
		fprintf(out, "%-12s %-24s %14s %14s %9s\n", label ? "row" : "point", "metric", "lifsim",
			"reference", "diff");
	for (size_t k = 1; np && k < c.n; k++)
		point_rows(out, &c, k, mine, ref, np, label);
	free(mine), free(ref);
	csv_free(&c);
	return rc;
}
