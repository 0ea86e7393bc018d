/* virtio-blk over virtio-mmio. Register names and the init order are those of the
 * virtio 1.2 spec: §4.2.2 (MMIO registers), §3.1.1 (driver initialisation), §4.2.4 (legacy
 * interface), §5.2.6 (struct virtio_blk_req). */
#include "virtio-blk.h"
#include "string.h"

enum {
	MagicValue = 0x000, Version = 0x004, DeviceID = 0x008,
	DeviceFeatures = 0x010, DeviceFeaturesSel = 0x014,
	DriverFeatures = 0x020, DriverFeaturesSel = 0x024,
	GuestPageSize = 0x028, /* legacy only */
	QueueSel = 0x030, QueueNumMax = 0x034, QueueNum = 0x038,
	QueueAlign = 0x03c, QueuePFN = 0x040, /* legacy only */
	QueueReady = 0x044, QueueNotify = 0x050,
	InterruptStatus = 0x060, InterruptACK = 0x064, Status = 0x070,
	QueueDescLow = 0x080, QueueDescHigh = 0x084,
	QueueDriverLow = 0x090, QueueDriverHigh = 0x094,
	QueueDeviceLow = 0x0a0, QueueDeviceHigh = 0x0a4,
	ConfigGeneration = 0x0fc, Config = 0x100,
};

#define VIRTIO_MAGIC 0x74726976u /* "virt" */
#define STATUS_ACKNOWLEDGE 1u
#define STATUS_DRIVER 2u
#define STATUS_DRIVER_OK 4u
#define STATUS_FEATURES_OK 8u
#define VIRTIO_BLK_F_RO (1u << 5)
#define VIRTIO_BLK_F_FLUSH (1u << 9)
#define VIRTIO_F_VERSION_1_HI (1u << 0) /* feature bit 32 */
#define VIRTIO_BLK_T_IN 0u
#define VIRTIO_BLK_T_OUT 1u
#define VIRTIO_BLK_T_FLUSH 4u
#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u
#define QUEUE_SIZE 8u
#define PAGE 4096u

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[QUEUE_SIZE];
	uint16_t used_event;
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[QUEUE_SIZE];
	uint16_t avail_event;
};

struct virtio_blk_req_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* The legacy layout puts the used ring at the next QueueAlign (4096) boundary after the
 * descriptor table and available ring; using it for modern devices too keeps one layout. */
static struct {
	struct virtq_desc desc[QUEUE_SIZE];
	struct virtq_avail avail;
	uint8_t pad[PAGE - sizeof(struct virtq_desc) * QUEUE_SIZE - sizeof(struct virtq_avail)];
	struct virtq_used used;
} queue __attribute__((aligned(PAGE)));

static struct virtio_blk_req_header header;
static volatile uint8_t req_status;

static uint32_t reg(struct vblk *d, uint32_t off) { return mmio_read32(d->base + off); }
static void set_reg(struct vblk *d, uint32_t off, uint32_t v) { mmio_write32(d->base + off, v); }

int vblk_find(struct vblk *d)
{
	for (int slot = 0; slot < VIRTIO_MMIO_SLOTS; slot++) {
		uintptr_t base = VIRTIO_MMIO_BASE + (uintptr_t)slot * VIRTIO_MMIO_STRIDE;
		if (mmio_read32(base + MagicValue) != VIRTIO_MAGIC)
			continue;
		uint32_t version = mmio_read32(base + Version);
		if ((version != 1 && version != 2) || mmio_read32(base + DeviceID) != VIRTIO_ID_BLOCK)
			continue;
		memset(d, 0, sizeof(*d));
		d->base = base;
		d->slot = slot;
		d->version = version;
		return slot;
	}
	return -1;
}

void vblk_reset(struct vblk *d)
{
	set_reg(d, Status, 0);
}

int vblk_init(struct vblk *d, const char **why)
{
	vblk_reset(d);
	set_reg(d, Status, STATUS_ACKNOWLEDGE);
	set_reg(d, Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);

	set_reg(d, DeviceFeaturesSel, 0);
	uint32_t lo = reg(d, DeviceFeatures), hi = 0;
	if (d->version == 2) {
		set_reg(d, DeviceFeaturesSel, 1);
		hi = reg(d, DeviceFeatures);
		if (!(hi & VIRTIO_F_VERSION_1_HI)) {
			*why = "modern device without VIRTIO_F_VERSION_1";
			goto fail;
		}
	}
	uint32_t want_lo = lo & (VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO);
	set_reg(d, DriverFeaturesSel, 0);
	set_reg(d, DriverFeatures, want_lo);
	if (d->version == 2) {
		set_reg(d, DriverFeaturesSel, 1);
		set_reg(d, DriverFeatures, VIRTIO_F_VERSION_1_HI);
		set_reg(d, Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
		if (!(reg(d, Status) & STATUS_FEATURES_OK)) {
			*why = "device refused our features";
			goto fail;
		}
	} else {
		set_reg(d, GuestPageSize, PAGE);
	}
	d->has_flush = (want_lo & VIRTIO_BLK_F_FLUSH) != 0;
	d->read_only = (want_lo & VIRTIO_BLK_F_RO) != 0;

	set_reg(d, QueueSel, 0);
	uint32_t max = reg(d, QueueNumMax);
	if (max == 0) {
		*why = "queue 0 not available";
		goto fail;
	}
	d->qsize = max < QUEUE_SIZE ? max : QUEUE_SIZE;
	memset(&queue, 0, sizeof(queue));
	d->used_seen = 0;
	set_reg(d, QueueNum, d->qsize);
	if (d->version == 1) {
		set_reg(d, QueueAlign, PAGE);
		set_reg(d, QueuePFN, (uint32_t)((uintptr_t)&queue / PAGE));
	} else {
		set_reg(d, QueueDescLow, (uint32_t)(uintptr_t)queue.desc);
		set_reg(d, QueueDescHigh, 0);
		set_reg(d, QueueDriverLow, (uint32_t)(uintptr_t)&queue.avail);
		set_reg(d, QueueDriverHigh, 0);
		set_reg(d, QueueDeviceLow, (uint32_t)(uintptr_t)&queue.used);
		set_reg(d, QueueDeviceHigh, 0);
		set_reg(d, QueueReady, 1);
	}
	set_reg(d, Status, reg(d, Status) | STATUS_DRIVER_OK);

	/* §4.2.2: re-read config until the generation is stable (legacy devices have none). */
	uint32_t gen, cap_lo, cap_hi;
	do {
		gen = reg(d, ConfigGeneration);
		cap_lo = reg(d, Config);
		cap_hi = reg(d, Config + 4);
	} while (d->version == 2 && gen != reg(d, ConfigGeneration));
	d->capacity = ((uint64_t)cap_hi << 32) | cap_lo;
	return 0;
fail:
	set_reg(d, Status, reg(d, Status) | 128u /* FAILED */);
	return -1;
}

/* Publishes the chain starting at descriptor 0 and polls the used ring for its completion. */
static int submit(struct vblk *d)
{
	struct virtq_avail *avail = &queue.avail;
	avail->ring[avail->idx % d->qsize] = 0;
	fence_rw();
	avail->idx++;
	fence_rw();
	set_reg(d, QueueNotify, 0);

	uint64_t deadline = platform_time() + (uint64_t)platform_timebase * 10;
	volatile uint16_t *used_idx = &queue.used.idx;
	while (*used_idx == d->used_seen) {
		if (platform_time() > deadline)
			return VBLK_ETIMEDOUT;
		if (d->wait)
			d->wait(used_idx, d->used_seen);
	}
	fence_rw();
	d->used_seen++;
	/* Without an interrupt handler nobody else drops the line: acknowledge here too. */
	vblk_ack_interrupt(d);
	d->requests++;
	return req_status == 0 ? VBLK_OK : VBLK_EIO;
}

static int transfer(struct vblk *d, uint32_t type, uint64_t sector, void *buf, uint32_t bytes)
{
	if (bytes == 0 || bytes % VBLK_SECTOR || sector + bytes / VBLK_SECTOR > d->capacity)
		return VBLK_ERANGE;
	header.type = type;
	header.reserved = 0;
	header.sector = sector;
	req_status = 0xff;
	queue.desc[0] = (struct virtq_desc){ (uintptr_t)&header, sizeof(header), VIRTQ_DESC_F_NEXT, 1 };
	queue.desc[1] = (struct virtq_desc){ (uintptr_t)buf, bytes,
		(uint16_t)(VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VIRTQ_DESC_F_WRITE : 0)), 2 };
	queue.desc[2] = (struct virtq_desc){ (uintptr_t)&req_status, 1, VIRTQ_DESC_F_WRITE, 0 };
	return submit(d);
}

uint32_t vblk_ack_interrupt(struct vblk *d)
{
	uint32_t status = reg(d, InterruptStatus);
	if (status)
		set_reg(d, InterruptACK, status);
	return status;
}

int vblk_read(struct vblk *d, uint64_t sector, void *buf, uint32_t bytes)
{
	return transfer(d, VIRTIO_BLK_T_IN, sector, buf, bytes);
}

int vblk_write(struct vblk *d, uint64_t sector, const void *buf, uint32_t bytes)
{
	if (d->read_only)
		return VBLK_EROFS;
	return transfer(d, VIRTIO_BLK_T_OUT, sector, (void *)buf, bytes);
}

int vblk_flush(struct vblk *d)
{
	if (!d->has_flush)
		return VBLK_OK; /* the device offered no flush command, so there is nothing to ask for */
	header.type = VIRTIO_BLK_T_FLUSH;
	header.reserved = 0;
	header.sector = 0;
	req_status = 0xff;
	queue.desc[0] = (struct virtq_desc){ (uintptr_t)&header, sizeof(header), VIRTQ_DESC_F_NEXT, 2 };
	queue.desc[2] = (struct virtq_desc){ (uintptr_t)&req_status, 1, VIRTQ_DESC_F_WRITE, 0 };
	return submit(d);
}
