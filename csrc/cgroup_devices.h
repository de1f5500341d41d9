/* Device cgroup filter for cgroup v2 (BPF_PROG_TYPE_CGROUP_DEVICE) and cgroupfs statfs helpers.
 * Called from ocirun/cgroups/devices.py and fsutil.py through cffi; see cgroup_devices.cdef. */
#ifndef OCIRUN_CGROUP_DEVICES_H
#define OCIRUN_CGROUP_DEVICES_H

#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>

/* One normalized rule. type: 'a', 'b' or 'c'; major/minor -1 = any; access: BPF_DEVCG_ACC_* bits
 * (linux/bpf.h: Python reads them from the module, see cgroup_devices.cdef). */
struct ocirun_dev_rule {
    int allow;
    int type;
    int64_t major;
    int64_t minor;
    unsigned int access;
};

/* A struct bpf_insn with the register nibbles packed portably: regs = dst | src << 4. */
struct ocirun_bpf_insn {
    uint8_t code;
    uint8_t regs;
    int16_t off;
    int32_t imm;
};

int ocirun_devcg_build(const struct ocirun_dev_rule *rules, size_t n, struct ocirun_bpf_insn *out, size_t cap);
int ocirun_devcg_load(const struct ocirun_dev_rule *rules, size_t n, char *log, size_t log_size);
int ocirun_devcg_attach(int cgroup_fd, int prog_fd);
int ocirun_devcg_query(int cgroup_fd, uint32_t *ids, size_t cap);
long ocirun_cg_statfs_magic(const char *path);
long ocirun_cg_fstatfs_magic(int fd);

#endif
