/* sweep_kinds: the point kinds `lifsim sweep` finds by `[experiment] kind`.
 * Add a kind by adding its const struct sweep_kind here (one line each). */
#include "sim/sweep/kinds.h"
#include "sim/sweep/sweep.h"

const struct sweep_kind *const sweep_kinds[] = {
	&sweep_kind_simulate,
	&sweep_kind_echo,
	&sweep_kind_validate,
	&sweep_kind_moe,
	&sweep_kind_moevalidate,
	NULL,
};
