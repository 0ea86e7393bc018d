/* SBI numbers (RISC-V Supervisor Binary Interface spec v2.0): extension IDs, function IDs
 * and error codes, named as in the spec. */
#ifndef MINIVM_SBI_H
#define MINIVM_SBI_H

#define SBI_SPEC_VERSION 0x02000000u /* major 2 (bits 30:24), minor 0 */
/* Implementation IDs are handed out by the spec (1 = OpenSBI); minivm-sbi is not registered,
 * so it answers with "MVM" in ASCII, far from the assigned range. */
#define SBI_IMPL_ID 0x4d564du
#define SBI_IMPL_VERSION 0x00010000u /* 1.0 */

#define SBI_SUCCESS 0
#define SBI_ERR_FAILED -1
#define SBI_ERR_NOT_SUPPORTED -2
#define SBI_ERR_INVALID_PARAM -3
#define SBI_ERR_DENIED -4
#define SBI_ERR_INVALID_ADDRESS -5
#define SBI_ERR_ALREADY_AVAILABLE -6

#define SBI_EXT_0_1_SET_TIMER 0x0
#define SBI_EXT_0_1_CONSOLE_PUTCHAR 0x1
#define SBI_EXT_0_1_CONSOLE_GETCHAR 0x2
#define SBI_EXT_0_1_CLEAR_IPI 0x3
#define SBI_EXT_0_1_SEND_IPI 0x4
#define SBI_EXT_0_1_REMOTE_FENCE_I 0x5
#define SBI_EXT_0_1_REMOTE_SFENCE_VMA 0x6
#define SBI_EXT_0_1_REMOTE_SFENCE_VMA_ASID 0x7
#define SBI_EXT_0_1_SHUTDOWN 0x8
#define SBI_EXT_BASE 0x10
#define SBI_EXT_TIME 0x54494d45
#define SBI_EXT_IPI 0x735049
#define SBI_EXT_RFENCE 0x52464e43
#define SBI_EXT_HSM 0x48534d
#define SBI_EXT_SRST 0x53525354
#define SBI_EXT_DBCN 0x4442434e

#define SBI_HSM_STATE_STARTED 0
#define SBI_SRST_TYPE_SHUTDOWN 0
#define SBI_SRST_TYPE_COLD_REBOOT 1
#define SBI_SRST_TYPE_WARM_REBOOT 2
#define SBI_SRST_REASON_NONE 0
#define SBI_SRST_REASON_FAILURE 1

#endif
