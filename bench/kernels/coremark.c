//go:build ignore

/* Compute kernel in the spirit of CoreMark: linked-list search, reversal
 * and merge sort, a string-scanning state machine, a small matrix kernel
 * and a CRC over the results. */
#include "tinycontainer.h"

struct node { struct node *next; int16_t data, idx; };

#define NODES 200
static struct node pool[NODES];
static char text[1024];
static int16_t ma[16][16], mb[16][16];
static int32_t mc[16][16];

static uint16_t crc16(uint16_t crc, uint16_t v)
{
	for (int i = 0; i < 16; i++) {
		uint16_t x = (uint16_t)((v ^ crc) & 1);
		v >>= 1;
		crc = x ? (uint16_t)((crc >> 1) ^ 0xa001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

static struct node *list_init(uint32_t seed)
{
	for (int i = 0; i < NODES; i++) {
		seed = seed * 1103515245u + 12345u;
		pool[i].data = (int16_t)(seed >> 16);
		pool[i].idx = (int16_t)i;
		pool[i].next = i + 1 < NODES ? &pool[i + 1] : 0;
	}
	return &pool[0];
}

static struct node *list_reverse(struct node *l)
{
	struct node *r = 0;
	while (l) {
		struct node *n = l->next;
		l->next = r;
		r = l;
		l = n;
	}
	return r;
}

static struct node *list_find(struct node *l, int16_t data)
{
	while (l && (l->data & 0xff) != data)
		l = l->next;
	return l;
}

static struct node *list_sort(struct node *l, int by_idx)
{
	for (int k = 1;; k *= 2) {
		struct node *p = l, *tail = 0, *head = 0;
		int merges = 0;
		while (p) {
			struct node *q = p;
			int ps = 0, qs = k;
			merges++;
			for (int i = 0; i < k && q; i++, ps++)
				q = q->next;
			while (ps > 0 || (qs > 0 && q)) {
				struct node *e;
				if (!ps) { e = q; q = q->next; qs--; }
				else if (!qs || !q) { e = p; p = p->next; ps--; }
				else if ((by_idx ? p->idx - q->idx : p->data - q->data) <= 0) { e = p; p = p->next; ps--; }
				else { e = q; q = q->next; qs--; }
				if (tail) tail->next = e; else head = e;
				tail = e;
			}
			p = q;
		}
		tail->next = 0;
		l = head;
		if (merges <= 1)
			return l;
	}
}

enum state { START, INT, FLOAT, EXP, SCI, INVALID };

static enum state scan(const char **s, int32_t *transitions)
{
	enum state st = START;
	for (; **s && **s != ','; (*s)++) {
		char c = **s;
		enum state next = st;
		switch (st) {
		case START: next = c >= '0' && c <= '9' ? INT : c == '.' ? FLOAT : INVALID; break;
		case INT: next = c == '.' ? FLOAT : c >= '0' && c <= '9' ? INT : INVALID; break;
		case FLOAT: next = c == 'e' || c == 'E' ? EXP : c >= '0' && c <= '9' ? FLOAT : INVALID; break;
		case EXP: next = c == '+' || c == '-' || (c >= '0' && c <= '9') ? SCI : INVALID; break;
		case SCI: next = c >= '0' && c <= '9' ? SCI : INVALID; break;
		default: break;
		}
		if (next != st)
			(*transitions)++;
		st = next;
	}
	if (**s)
		(*s)++;
	return st;
}

static void text_init(void)
{
	static const char *words[] = {"5012", "1.234", "-874", "+122", "6.0e3", "x.y", "35.54e-2", "7", "0.1E+9"};
	int n = 0;
	for (int i = 0; n < (int)sizeof text - 16; i++) {
		const char *w = words[i % 9];
		while (*w)
			text[n++] = *w++;
		text[n++] = ',';
	}
	text[n] = 0;
}

static int32_t run(void)
{
	uint16_t crc = 0;
	int32_t transitions = 0, counts[6] = {0};
	struct node *l;

	if (!text[0])
		text_init();
	for (int iter = 0; iter < 10; iter++) {
		l = list_init((uint32_t)iter * 7919u + 1u);
		for (int i = 0; i < 50; i++) {
			struct node *f = list_find(l, (int16_t)(i * 5));
			crc = crc16(crc, f ? (uint16_t)f->idx : 0xffff);
		}
		l = list_reverse(l);
		l = list_sort(l, 0);
		crc = crc16(crc, (uint16_t)l->data);
		l = list_sort(l, 1);
		crc = crc16(crc, (uint16_t)l->next->data);

		for (const char *s = text; *s;)
			counts[scan(&s, &transitions)]++;
		crc = crc16(crc, (uint16_t)transitions);

		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 16; j++) {
				ma[i][j] = (int16_t)(i * j + iter);
				mb[i][j] = (int16_t)(i - j + iter);
			}
		for (int i = 0; i < 16; i++)
			for (int j = 0; j < 16; j++) {
				int32_t s = 0;
				for (int k = 0; k < 16; k++)
					s += ma[i][k] * mb[k][j];
				mc[i][j] = s;
			}
		for (int i = 0; i < 16; i++)
			crc = crc16(crc, (uint16_t)mc[i][15 - i]);
	}
	for (int i = 0; i < 6; i++)
		crc = crc16(crc, (uint16_t)counts[i]);
	return crc;
}

TC_MAIN(run)
