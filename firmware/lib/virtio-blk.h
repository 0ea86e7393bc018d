/* A virtio-blk driver over virtio-mmio (virtio 1.2 §4.2 MMIO transport, §5.2 block device,
 * §2.7 split virtqueues), for modern (version 2) and legacy (version 1) devices. It polls
 * the used ring, optionally sleeping in a caller's `wait` hook between looks.
 * One queue of up to 8 descriptors, one request in flight; addresses handed to the device
 * are the buffers' own addresses, so callers must run with VA == PA (or paging off). */
#ifndef MINIVM_VIRTIO_BLK_H
#define MINIVM_VIRTIO_BLK_H
#include "types.h"

#define VIRTIO_MMIO_BASE 0x10001000u
#define VIRTIO_MMIO_STRIDE 0x1000u
#define VIRTIO_MMIO_SLOTS 8
#define VIRTIO_ID_BLOCK 2
#define VBLK_SECTOR 512u
/* The largest single request callers should make. */
#define VBLK_MAX_REQUEST (64u * 1024u)

enum { VBLK_OK = 0, VBLK_EIO = -1, VBLK_ETIMEDOUT = -2, VBLK_ERANGE = -3, VBLK_EROFS = -4 };

struct vblk {
	uintptr_t base;
	int slot;
	uint32_t version;   /* 1 legacy, 2 modern */
	uint32_t qsize;
	uint64_t capacity;  /* in 512-byte sectors */
	int has_flush;
	int read_only;
	uint16_t used_seen;
	uint64_t requests;  /* completed requests, for the shell's statistics */
	/* Called while a request is outstanding; NULL spins. It may sleep until an interrupt,
	 * and must return at once if *used_idx has moved past `seen` (it checks that itself
	 * with interrupts masked, so a completion cannot slip in before it sleeps). */
	void (*wait)(volatile uint16_t *used_idx, uint16_t seen);
};

/* Each binary supplies its clock (used only for request timeouts). */
uint64_t platform_time(void);
extern uint32_t platform_timebase;

/* Finds the first virtio-blk in slots 0..7; fills base/slot/version. -1 if none. */
int vblk_find(struct vblk *d);
/* Resets and initialises the device found by vblk_find(); negative on failure, with *why set. */
int vblk_init(struct vblk *d, const char **why);
int vblk_read(struct vblk *d, uint64_t sector, void *buf, uint32_t bytes);
int vblk_write(struct vblk *d, uint64_t sector, const void *buf, uint32_t bytes);
int vblk_flush(struct vblk *d);
/* For an interrupt handler: acknowledges what the device raised; returns its status bits. */
uint32_t vblk_ack_interrupt(struct vblk *d);
/* Writes status 0 so the device forgets our queue before another driver takes over. */
void vblk_reset(struct vblk *d);

#endif
