/*
 * flip: copy a file with N bytes flipped at seeded random offsets (each XORed
 * with a seeded nonzero byte), to make corrupt inputs reproducibly.
 *
 *   flip IN OUT SEED N [SPAN]
 *
 * SPAN limits the offsets to the file's first SPAN bytes (where HDF5 keeps
 * its superblock and root object header).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: flip IN OUT SEED N [SPAN]\n");
		return 2;
	}
	FILE *in = fopen(argv[1], "rb");
	if (!in || fseek(in, 0, SEEK_END)) {
		perror(argv[1]);
		return 1;
	}
	long n = ftell(in);
	rewind(in);
	unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf || n <= 0 || fread(buf, 1, (size_t)n, in) != (size_t)n) {
		fprintf(stderr, "flip: %s: cannot read\n", argv[1]);
		return 1;
	}
	fclose(in);
	uint64_t s = strtoull(argv[3], NULL, 10);
	long span = argc == 6 ? atol(argv[5]) : n;
	if (span <= 0 || span > n)
		span = n;
	for (long i = 0, k = atol(argv[4]); i < k; i++) {
		uint64_t r = next(&s);
		buf[r % (uint64_t)span] ^= (unsigned char)(1 + (r >> 32) % 255);
	}
	FILE *out = fopen(argv[2], "wb");
	if (!out || fwrite(buf, 1, (size_t)n, out) != (size_t)n || fclose(out)) {
		perror(argv[2]);
		return 1;
	}
	free(buf);
	return 0;
}
