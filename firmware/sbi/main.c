/* minivm-sbi boot: learn the machine from the DTB in a1, set M-mode up the way OpenSBI
 * leaves it for a supervisor (delegation, counters, PMP), load the payload from the first
 * virtio-blk disk and drop to S-mode at its entry with a0 = hartid, a1 = DTB. */
#include "platform.h"
#include "sbi.h"
#include "trap.h"
#include "../lib/csr.h"
#include "../lib/fdt.h"

struct machine_info machine;
uint32_t platform_timebase; /* from the DTB (read_dtb), for the disk driver's timeouts */
int platform_sstc; /* the hart has Sstc's stimecmp, enabled for S (menvcfg.STCE) */

extern char __stack_top[];

/* Runs `body` with illegal-instruction traps caught; 0 if it ran, -1 if the hart refused. */
#define M_PROBE(body) ({ m_probe = M_PROBE_ARMED; body; int r_ = m_probe == M_PROBE_FAULTED ? -1 : 0; m_probe = 0; r_; })

static void read_dtb(uintptr_t dtb)
{
	struct fdt_machine m;
	/* Look only where RAM can be: a stray a1 must not fault the firmware before its banner. */
	int plausible = dtb >= 0x80000000u && !(dtb & 3);
	int ok = fdt_read_machine(plausible ? (const void *)dtb : NULL, &m) == 0;
	machine.model = m.model;
	machine.ram_base = m.ram_base;
	machine.ram_size = m.ram_size;
	machine.ram_mib = m.ram_mib;
	machine.dtb = ok ? dtb : 0;
	machine.dtb_size = m.size;
	platform_timebase = m.timebase;
}

/* Privileged spec §3.7: with any PMP entry implemented, S/U may touch only what an entry
 * allows. Entry 0 hides the firmware (NAPOT, no permissions, not locked so M is exempt);
 * entry 1 opens everything else. A hart without PMP needs none of this. */
static void open_pmp(void)
{
	uint32_t fw_napot = (FW_BASE >> 2) | ((FW_SIZE >> 3) - 1);
	if (M_PROBE(csr_write(pmpaddr0, fw_napot)))
		return;
	M_PROBE(csr_write(pmpaddr1, 0xffffffffu));
	M_PROBE(csr_write(pmpcfg0, (0x1fu << 8) | 0x18u));
}

/* QEMU's and minivm's boot ROM pass a2 = OpenSBI's fw_dynamic_info (fw_dynamic.h layout:
 * magic "OSBI", version, next_addr, next_mode, options, boot_hart). A nonzero next_addr
 * means the user gave -kernel: that payload, already loaded, wins over the disk. */
#define FW_DYNAMIC_MAGIC 0x4942534fu
#define FW_DYNAMIC_NEXT_MODE_S 1u

static uintptr_t kernel_payload(uintptr_t info)
{
	/* Trust only the boot ROM's region or RAM, so a stray a2 cannot fault us. */
	int in_rom = info >= 0x1000 && info < 0x10000 - 24;
	int in_ram = info >= machine.ram_base && info < machine.ram_base + machine.ram_size - 24;
	if ((info & 3) || (!in_rom && !in_ram))
		return 0;
	const uint32_t *fw = (const uint32_t *)info;
	if (fw[0] != FW_DYNAMIC_MAGIC || fw[2] == 0)
		return 0;
	if (fw[3] != FW_DYNAMIC_NEXT_MODE_S) {
		printf("minivm-sbi: ignoring the -kernel payload: it asks for mode %u, not S\n", fw[3]);
		return 0;
	}
	printf("minivm-sbi: booting the -kernel payload at 0x%08x\n", fw[2]);
	return fw[2];
}

void sbi_main(uint32_t hartid, uintptr_t dtb, uintptr_t fw_dynamic) __attribute__((noreturn));
void sbi_main(uint32_t hartid, uintptr_t dtb, uintptr_t fw_dynamic)
{
	uart_init();
	read_dtb(dtb);
	printf("\nminivm-sbi %u.%u (SBI v%u.%u) on %s, %u MiB RAM at 0x%08x\n",
	       SBI_IMPL_VERSION >> 16, SBI_IMPL_VERSION & 0xffff,
	       SBI_SPEC_VERSION >> 24, SBI_SPEC_VERSION & 0xffffff,
	       machine.model, machine.ram_mib, machine.ram_base);
	if (!machine.dtb)
		printf("minivm-sbi: no device tree at 0x%08x, assuming QEMU virt defaults\n", dtb);

	/* What OpenSBI delegates on a hart without H: misaligned fetch, breakpoint, U ecall and
	 * the three page faults; S software, timer and external interrupts. */
	csr_write(medeleg, (1u << CAUSE_MISALIGNED_FETCH) | (1u << CAUSE_BREAKPOINT) |
			   (1u << CAUSE_USER_ECALL) | (1u << CAUSE_FETCH_PAGE_FAULT) |
			   (1u << CAUSE_LOAD_PAGE_FAULT) | (1u << CAUSE_STORE_PAGE_FAULT));
	csr_write(mideleg, (1u << IRQ_S_SOFT) | (1u << IRQ_S_TIMER) | (1u << IRQ_S_EXT));
	/* cycle, time and instret readable from S (and from U if S allows it in scounteren). */
	M_PROBE(csr_write(mcounteren, 7));
	open_pmp();
	/* Sstc (Privileged spec 1.12 ch. 16): where the hart has stimecmp, S may use it only with
	 * menvcfg.STCE set. OpenSBI sets it; Linux 6.1 reads "sstc" from riscv,isa (QEMU's default
	 * rv32 CPU lists it) and then writes stimecmp directly, an illegal instruction otherwise.
	 * With STCE set, STIP follows stimecmp and M can no longer raise it by hand, so the SBI
	 * timer then programs stimecmp too (ecall.c), as OpenSBI does. Probe the CSR itself: a
	 * hart may keep a writable STCE bit without having stimecmp. */
	platform_sstc = M_PROBE(csr_read(0x14d /* stimecmp */)) == 0;
	if (platform_sstc) {
		csr_set(0x31a /* menvcfgh */, 1u << 31);
		sstc_set_timer(~0ull);
	}
	clint_set_mtimecmp(~0ull);
	csr_write(mie, 1u << IRQ_M_SOFT);

	uintptr_t entry = kernel_payload(fw_dynamic);
	if (!entry)
		entry = load_payload();
	if (!entry) {
		printf("minivm-sbi: nothing to boot; powering off\n");
		finisher_write((2u << 16) | FINISHER_FAIL);
	}
	printf("minivm-sbi: entering S-mode at 0x%08x (a0 = hart %u, a1 = DTB at 0x%08x)\n\n",
	       entry, hartid, dtb);

	M_PROBE(csr_write(satp, 0));
	csr_write(stvec, 0);
	csr_write(sie, 0);
	uint32_t mstatus = csr_read(mstatus);
	mstatus &= ~(MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MPRV | MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP);
	mstatus |= 1u << MSTATUS_MPP_SHIFT;
	csr_write(mstatus, mstatus);
	csr_write(mepc, entry);
	csr_write(mscratch, (uintptr_t)__stack_top);
	register uintptr_t a0 __asm__("a0") = hartid;
	register uintptr_t a1 __asm__("a1") = dtb;
	__asm__ volatile("mret" ::"r"(a0), "r"(a1));
	__builtin_unreachable();
}
