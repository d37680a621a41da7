#include "sim/base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct lif_err *e, int code, const char *fmt, ...)
{
	if (!e || e->code != 0)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	e->code = code;
	return code;
}

void err_prefix(struct lif_err *e, const char *fmt, ...)
{
	if (!e || e->code == 0)
		return;
	char pre[512], old[sizeof e->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	snprintf(e->msg, sizeof e->msg, "%.500s: %.500s", pre, old);
}

void err_clear(struct lif_err *e)
{
	e->code = 0;
	e->msg[0] = '\0';
}
