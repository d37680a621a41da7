/*
 * suggest: "did you mean" for unknown names (verbs, keys, model or profile
 * files): the candidate nearest by Levenshtein distance (case-insensitive),
 * when it is near enough to be a typo.
 */
#ifndef LIFSIM_SUGGEST_H
#define LIFSIM_SUGGEST_H

#include <stddef.h>

/* Edit distance between a and b (insertions, deletions, substitutions;
 * case-insensitive). Strings longer than 255 bytes count as far apart. */
size_t suggest_distance(const char *a, const char *b);

/* The candidate nearest to word with a distance of at most
 * max(1, strlen(word) / 3) (a missing or extra letter, a swap counts 2),
 * the first in order on ties; NULL when none is that near. */
const char *suggest_nearest(const char *word, const char *const *cands, size_t n);

/* For a path that does not exist: the nearest file name in its directory,
 * as " (did you mean 'NAME'?)" in buf, or "" when none is near. */
void suggest_file(const char *path, char *buf, size_t cap);

#endif
