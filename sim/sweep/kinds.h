/*
 * kinds: the point kinds of `lifsim sweep` beyond the runner's own `echo`
 * (sim/sweep/sweep.h describes the contract; sim/sweep/sweep_kinds.c lists them).
 */
#ifndef LIFSIM_KINDS_H
#define LIFSIM_KINDS_H

#include "sim/sweep/sweep.h"

/* [experiment] kind = simulate: one sim_run per point (sim/sweep/kind_simulate.c). */
extern const struct sweep_kind sweep_kind_simulate;

/* [experiment] kind = validate: predict and replay (sim/sweep/kind_validate.c). */
extern const struct sweep_kind sweep_kind_validate;
/* Its [experiment] and [validate] keys (the replay and layout verbs' flags
 * that mirror them parse through these rows). */
extern const struct conf_opt validate_opts[];

/* [experiment] kind = moe: expert caches over a router trace (sim/sweep/kind_moe.c). */
extern const struct sweep_kind sweep_kind_moe;

#endif
