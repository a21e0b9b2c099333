//go:build ignore

/* Compute kernel: 40x40 integer matrix multiply, four times. */
#include "tinycontainer.h"

#define N 40
static int32_t a[N][N], b[N][N], c[N][N];

static int32_t run(void)
{
	int32_t sum = 0;
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) {
			a[i][j] = i * 7 + j * 3 + 1;
			b[i][j] = i - j * 5 + 2;
		}
	for (int r = 0; r < 4; r++) {
		for (int i = 0; i < N; i++)
			for (int j = 0; j < N; j++) {
				int32_t s = 0;
				for (int k = 0; k < N; k++)
					s += a[i][k] * b[k][j];
				c[i][j] = s;
			}
		for (int i = 0; i < N; i++)
			a[i][(i + r) % N] = c[i][N - 1 - i] & 0xff;
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++)
			sum = sum * 31 + c[i][j];
	return sum;
}

TC_MAIN(run)
