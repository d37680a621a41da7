/* Fuzz target: an earlier results.csv as `lifsim sweep` reads it on resume
 * (sim/sweep/sweep.h: rows kept by point_id, the rest computed). The input
 * is DIR/results.csv for a fixed experiment of the `echo` kind (rows, a zip
 * and swept values; five points), then the sweep runs into DIR. Either it
 * fails and leaves results.csv as it was, or it succeeds and results.csv
 * reads back with one row per point. */
#include "fuzz_common.h"
#include "sim/base/csv.h"
#include "sim/base/util.h"
#include "sim/sweep/sweep.h"

static const char experiment[] =
	"[experiment]\nkind = echo\n"
	"[sim]\nwindow = 0\nlayout = separate\n"
	"[predictor]\nrecall = 1.0\nfp_rate = 0.0\n"
	"[sweep]\nrows = naive, predictor\nzip = recall, fp_rate\n"
	"[row predictor]\nsim.mode = hybrid\nrecall = 0.9, 0.95\nfp_rate = 0.1, 0.05\n"
	"window = 0, 5\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sweep *sw;
	static char dir[256], results[300];
	struct lif_err err = {0};
	if (!sw) {
		snprintf(dir, sizeof dir, "%s/lifsim-fuzz-%ld.out", fuzz_tmp(), (long)getpid());
		snprintf(results, sizeof results, "%s/%s", dir, SWEEP_RESULTS);
		if (sweep_new(fuzz_file((const uint8_t *)experiment, sizeof experiment - 1, ".ini"),
			      &sw, &err))
			abort();
	}
	/* the input, written where the run looks for an earlier one */
	if (mkdir(dir, 0700) && access(dir, W_OK))
		abort();
	FILE *f = fopen(results, "wb");
	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
		abort();
	struct sweep_opts o = {.dir = dir, .threads = 1, .flush_s = 1e9};
	struct sweep_report rep;
	int rc = sweep_run(sw, &sweep_kind_echo, NULL, &o, &rep, &err);
	size_t n = 0;
	char *after = util_read_file(results, 0, &n, &err);
	if (rc) {
		/* nothing half-written: the file is the input, untouched */
		if (!after || n != size || (size && memcmp(after, data, size)))
			abort();
	} else {
		struct csv c;
		if (csv_read(results, &c, &err) || c.n != sweep_points(sw) + 1)
			abort();
		csv_free(&c);
	}
	free(after);
	return 0;
}
