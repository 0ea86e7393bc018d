/* `sbi`: what the firmware offers, asked the way a kernel asks (SBI spec v2.0 §4 base
 * extension probes), one round trip each through HSM, IPI and RFENCE, and an illegal
 * instruction the firmware has to hand back to S. */
#include "guest.h"
#include "../lib/csr.h"

#define SBI_EXT_IPI 0x735049
#define SBI_EXT_RFENCE 0x52464e43
#define SBI_EXT_HSM 0x48534d
#define SBI_EXT_PMU 0x504d55

static const struct {
	const char *name;
	uint32_t eid;
} extensions[] = {
	{ "base", SBI_EXT_BASE }, { "time", SBI_EXT_TIME }, { "ipi", SBI_EXT_IPI },
	{ "rfence", SBI_EXT_RFENCE }, { "hsm", SBI_EXT_HSM }, { "srst", SBI_EXT_SRST },
	{ "dbcn", SBI_EXT_DBCN }, { "pmu", SBI_EXT_PMU }, { "legacy-putchar", SBI_LEGACY_PUTCHAR },
};

void cmd_sbi(int argc, char **argv)
{
	(void)argc, (void)argv;
	struct sbiret spec = sbi_call(SBI_EXT_BASE, 0, 0, 0, 0);
	struct sbiret impl = sbi_call(SBI_EXT_BASE, 1, 0, 0, 0);
	struct sbiret ver = sbi_call(SBI_EXT_BASE, 2, 0, 0, 0);
	printf("sbi: spec v%u.%u implementation 0x%x version 0x%x\n", (uint32_t)spec.value >> 24,
	       (uint32_t)spec.value & 0xffffff, (uint32_t)impl.value, (uint32_t)ver.value);
	printf("sbi: extensions");
	for (size_t i = 0; i < ARRAY_SIZE(extensions); i++) {
		struct sbiret r = sbi_call(SBI_EXT_BASE, 3, extensions[i].eid, 0, 0);
		printf(" %s=%u", extensions[i].name, r.error ? 0u : (uint32_t)(r.value != 0));
	}
	printf("\n");

	struct sbiret hsm = sbi_call(SBI_EXT_HSM, 2, gm.hartid, 0, 0);
	struct sbiret other = sbi_call(SBI_EXT_HSM, 2, gm.hartid + 1, 0, 0);
	printf("sbi: hsm hart %u status=%d error=%d; hart %u error=%d\n", gm.hartid, (int32_t)hsm.value,
	       (int32_t)hsm.error, gm.hartid + 1, (int32_t)other.error);

	/* An IPI to ourselves must come back as a supervisor software interrupt. */
	uint32_t before = soft_interrupts;
	csr_set(sie, 1u << IRQ_S_SOFT);
	struct sbiret ipi = sbi_call(SBI_EXT_IPI, 0, 1u << gm.hartid, 0, 0);
	uint64_t deadline = time_now() + gm.timebase / 10;
	while (soft_interrupts == before && time_now() < deadline)
		;
	csr_clear(sie, 1u << IRQ_S_SOFT);
	printf("sbi: ipi to self error=%d %s\n", (int32_t)ipi.error,
	       soft_interrupts != before ? "delivered" : "NOT delivered");

	/* medeleg leaves illegal instructions with M; the firmware must pass them down with
	 * scause, stval and sepc as if the hart had delegated them. */
	trap_probe_cause = ~0u;
	trap_probe = 1;
	__asm__ volatile("csrr t0, mstatus" ::: "t0", "memory"); /* M-only CSR: illegal in S */
	printf("sbi: illegal instruction came back as scause=%d stval=0x%x\n", (int32_t)trap_probe_cause,
	       trap_probe_tval);

	struct sbiret fi = sbi_call(SBI_EXT_RFENCE, 0, 1u << gm.hartid, 0, 0);
	struct sbiret vma = sbi_call(SBI_EXT_RFENCE, 1, 1u << gm.hartid, 0, 0);
	struct sbiret bad = sbi_call(SBI_EXT_RFENCE, 0, 2u << gm.hartid, 0, 0);
	printf("sbi: rfence fence.i error=%d sfence.vma error=%d, to a missing hart error=%d\n",
	       (int32_t)fi.error, (int32_t)vma.error, (int32_t)bad.error);
}
