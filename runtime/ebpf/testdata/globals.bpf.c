/* globals: state in .data and .bss survives between activations; constants
 * come from .rodata and a table of string pointers (data relocations). */
#include "tinycontainer.h"

int32_t activations = 100;            /* .data */
static uint32_t history[16];          /* .bss */
static const int32_t weights[4] = {1, 10, 100, 1000}; /* .rodata */
static const char *const words[] = {"zero", "one", "two", "three"};
struct link {
	const int32_t *w;
	uint32_t *h;
};
static struct link links = {&weights[2], &history[1]}; /* pointers in .data */

static int32_t globals(void)
{
	uint32_t n = activations++ - 100; /* 0, 1, 2, ... */
	history[n & 15] = n;
	int32_t sum = 0;
	for (uint32_t i = 0; i < 16; i++)
		sum += history[i];
	if (*links.w != 100 || links.h != &history[1])
		return -1;
	/* activation number, the sum so far, a .rodata weight, and the
	 * length of a string found through the pointer table */
	return (int32_t)n * 1000000 + sum * 1000 + weights[n & 3] * 10 + (int32_t)tc_strlen(words[n & 3]);
}

TC_MAIN(globals)
