/*
 * report: a sweep's results beside published numbers. For every result
 * column X that has a column ref_X (the experiment's [reference] keys, see
 * sim/sweep/kind_simulate.c), print per point: lifsim's X, the reference and the
 * relative difference, as an aligned table.
 */
#ifndef LIFSIM_REPORT_H
#define LIFSIM_REPORT_H

#include <stdio.h>

#include "sim/base/err.h"

/* Print the table for results_csv to out; prints nothing when the results
 * have no reference columns. */
int report_refs(const char *results_csv, FILE *out, struct lif_err *err);

#endif
