/* The CRC-32 (IEEE, reflected, table-driven) kernel shared by crc32.bpf.c
 * and crc32.c, so eBPF and WebAssembly run the same C code. Each
 * activation checksums CRC_LEN bytes and returns the CRC. */
#define CRC_LEN 4096

static uint32_t crc_table[256];
static uint8_t crc_data[CRC_LEN];
static int32_t crc_ready;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
	for (uint32_t i = 0; i < CRC_LEN; i++)
		crc_data[i] = (uint8_t)(i * 7 + 3);
	crc_ready = 1;
}

static uint32_t crc32(const uint8_t *p, uint32_t n)
{
	uint32_t c = 0xffffffffu;
	for (uint32_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

static int32_t crc_main(void)
{
	if (!crc_ready)
		crc_init();
	return (int32_t)crc32(crc_data, CRC_LEN);
}

TC_MAIN(crc_main)
