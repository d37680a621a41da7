#include "sim/sweep/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 256

int report_csv_split(char *line, char **f, int cap)
{
	int n = 0;
	char *p = line;
	while (n < cap) {
		if (*p == '"') {
			char *w = ++p;
			f[n++] = w;
			while (*p) {
				if (*p == '"' && p[1] != '"')
					break;
				if (*p == '"')
					p++; /* "" is a quote */
				*w++ = *p++;
			}
			if (*p == '"')
				p++;
			*w = '\0';
		} else {
			f[n++] = p;
			p += strcspn(p, ",\n\r");
		}
		if (*p != ',') {
			*p = '\0';
			break;
		}
		*p++ = '\0';
	}
	return n;
}

int report_refs(const char *results_csv, FILE *out, struct lif_err *err)
{
	FILE *f = fopen(results_csv, "r");
	if (!f)
		return err_set(err, ERR_IO, "%s: cannot open", results_csv);
	static char head[65536], line[65536];
	char *h[MAX_COLS], *v[MAX_COLS];
	int mine[MAX_COLS], ref[MAX_COLS], np = 0, label = 0;
	if (!fgets(head, sizeof head, f)) {
		fclose(f);
		return err_set(err, ERR_FORMAT, "%s: empty", results_csv);
	}
	int nh = report_csv_split(head, h, MAX_COLS);
	for (int i = 0; i < nh; i++) {
		if (!strcmp(h[i], "row"))
			label = i;
		if (strncmp(h[i], "ref_", 4))
			continue;
		for (int j = 0; j < nh; j++)
			if (!strcmp(h[j], h[i] + 4)) {
				mine[np] = j, ref[np++] = i;
				break;
			}
	}
	if (np) {
		fprintf(out, "%-12s %-24s %14s %14s %9s\n", label ? "row" : "point", "metric", "lifsim",
			"reference", "diff");
	}
	while (np && fgets(line, sizeof line, f)) {
		int nv = report_csv_split(line, v, MAX_COLS);
		for (int k = 0; k < np; k++) {
			if (ref[k] >= nv || !v[ref[k]][0])
				continue; /* this point has no such reference */
			double a = strtod(v[mine[k]], NULL), b = strtod(v[ref[k]], NULL);
			char diff[32] = "";
			if (b != 0)
				snprintf(diff, sizeof diff, "%+.1f%%", 100 * (a / b - 1));
			fprintf(out, "%-12s %-24s %14.6g %14.6g %9s\n", v[label], h[mine[k]], a, b, diff);
		}
	}
	fclose(f);
	return 0;
}
