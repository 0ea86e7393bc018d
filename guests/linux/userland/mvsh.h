/* mvsh: the one program of minivm's Linux userland. As PID 1 it sets up /dev, /proc and /sys
 * and moves the root to the virtio-blk disk; then it is the serial console's shell, with the
 * teaching guest's workloads (dirty/check, disk, bench cpu) and a few small tools built in. */
#ifndef MINIVM_MVSH_H
#define MINIVM_MVSH_H
#include "sys-rv32.h"

#define MIB (1u << 20)

/* printf with what nolibc's lacks: field widths and zero padding (%08x, %03u), %llu/%llx. */
void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A decimal or 0x-hex argument in [min, max], or a message and -1. */
int arg_u32(const char *cmd, const char *what, const char *s, unsigned int min, unsigned int max, unsigned int *v);
/* Reads a whole small file (from /proc) into buf, NUL-terminated; bytes read or -1. */
int read_small(const char *path, char *buf, int size);

void init_system(void);

void cmd_echo(int argc, char **argv);
void cmd_cat(int argc, char **argv);
void cmd_ls(int argc, char **argv);
void cmd_mount(int argc, char **argv);
void cmd_uptime(int argc, char **argv);
void cmd_free(int argc, char **argv);
void cmd_sync(int argc, char **argv);
void cmd_halt(int argc, char **argv);
void cmd_reboot(int argc, char **argv);
void cmd_dirty(int argc, char **argv);
void cmd_check(int argc, char **argv);
void cmd_disk(int argc, char **argv);
void cmd_bench(int argc, char **argv);
void cmd_spawn(int argc, char **argv);

#endif
