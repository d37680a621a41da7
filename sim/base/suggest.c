#include "sim/base/suggest.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t suggest_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	size_t row[256];
	if (n > 255 || m > 255)
		return (size_t)-1;
	for (size_t j = 0; j <= m; j++)
		row[j] = j;
	for (size_t i = 1; i <= n; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= m; j++) {
			size_t up = row[j];
			int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
			size_t best = diag + !same;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[m];
}

const char *suggest_nearest(const char *word, const char *const *cands, size_t n)
{
	size_t limit = strlen(word) / 3, best = (size_t)-1;
	const char *pick = NULL;
	if (limit < 1)
		limit = 1;
	for (size_t i = 0; i < n; i++) {
		size_t d = suggest_distance(word, cands[i]);
		if (d <= limit && d < best)
			best = d, pick = cands[i];
	}
	return pick;
}

void suggest_file(const char *path, char *buf, size_t cap)
{
	char dir[4096];
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (slash == path)
		snprintf(dir, sizeof dir, "/");
	buf[0] = '\0';
	DIR *d = opendir(dir);
	if (!d)
		return;
	char *names[512];
	size_t n = 0;
	struct dirent *e;
	while (n < 512 && (e = readdir(d)))
		if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name)))
			n++;
	closedir(d);
	const char *pick = suggest_nearest(base, (const char *const *)names, n);
	if (pick)
		snprintf(buf, cap, " (did you mean '%s'?)", pick);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}
