/* cgroup v2 device filter: the ordered OCI device rules compiled to a BPF_PROG_TYPE_CGROUP_DEVICE
 * program, loaded, and attached with BPF_F_ALLOW_MULTI (replacing the program attached before).
 *
 * Semantics: the request's access bits start "pending". Rules are visited from the last to the first;
 * a rule matching type/major/minor decides the pending bits it names: an allow rule clears them (all
 * clear -> allow), a deny rule that names any pending bit denies. Nothing left to visit -> deny.
 * So, per access bit, the last matching rule wins; with a deny-all first this is v1's allow list.
 *
 * Registers: R2 = device type, R3 = pending access bits, R4 = major, R5 = minor, R1 = scratch.
 */
#include "cgroup_devices.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(struct bpf_insn) == sizeof(struct ocirun_bpf_insn), "bpf_insn layout");

#define ACC_ALL (BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE)
#define MAX_DEV_NUMBER 0x7fffffffLL /* compared as a 64-bit register against a sign-extended imm */

struct prog {
    struct bpf_insn *insns;
    size_t len;
    size_t cap;
    int overflow;
};

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    if (p->len >= p->cap) {
        p->overflow = 1;
        p->len++;
        return;
    }
    struct bpf_insn *i = &p->insns[p->len++];
    memset(i, 0, sizeof(*i));
    i->code = code;
    i->dst_reg = dst;
    i->src_reg = src;
    i->off = off;
    i->imm = imm;
}

#define LDX_W(dst, src, off) emit(p, BPF_LDX | BPF_W | BPF_MEM, dst, src, off, 0)
#define ALU32_IMM(op, dst, imm) emit(p, BPF_ALU | (op) | BPF_K, dst, 0, 0, imm)
#define MOV32_REG(dst, src) emit(p, BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV64_IMM(dst, imm) emit(p, BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define JMP_IMM(op, dst, imm) emit(p, BPF_JMP | (op) | BPF_K, dst, 0, 0, imm)
#define EXIT() emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Append the block for one rule; returns 1 when the block ends every path (nothing after it runs). */
static int emit_rule(struct prog *p, const struct ocirun_dev_rule *r)
{
    size_t jumps[4];
    size_t njumps = 0;
    unsigned int bits = r->access & ACC_ALL;
    int conditional = 0;

    if (bits == 0)
        return 0; /* names no access: decides nothing */
    if (r->type == 'b' || r->type == 'c') {
        jumps[njumps++] = p->len;
        JMP_IMM(BPF_JNE, BPF_REG_2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
        conditional = 1;
    }
    if (r->major >= 0) {
        jumps[njumps++] = p->len;
        JMP_IMM(BPF_JNE, BPF_REG_4, (int32_t)r->major);
        conditional = 1;
    }
    if (r->minor >= 0) {
        jumps[njumps++] = p->len;
        JMP_IMM(BPF_JNE, BPF_REG_5, (int32_t)r->minor);
        conditional = 1;
    }
    if (r->allow) {
        if (bits != ACC_ALL) {
            ALU32_IMM(BPF_AND, BPF_REG_3, (int32_t)(~bits & ACC_ALL));
            jumps[njumps++] = p->len;
            JMP_IMM(BPF_JNE, BPF_REG_3, 0);
            conditional = 1;
        }
        MOV64_IMM(BPF_REG_0, 1);
        EXIT();
    } else {
        if (bits != ACC_ALL) {
            MOV32_REG(BPF_REG_1, BPF_REG_3);
            ALU32_IMM(BPF_AND, BPF_REG_1, (int32_t)bits);
            jumps[njumps++] = p->len;
            JMP_IMM(BPF_JEQ, BPF_REG_1, 0);
            conditional = 1;
        }
        MOV64_IMM(BPF_REG_0, 0);
        EXIT();
    }
    /* every "does not match" jump goes to the first instruction after this block */
    for (size_t k = 0; k < njumps && !p->overflow; k++)
        p->insns[jumps[k]].off = (int16_t)(p->len - jumps[k] - 1);
    return !conditional;
}

static int build(const struct ocirun_dev_rule *rules, size_t n, struct prog *p)
{
    for (size_t i = 0; i < n; i++) {
        const struct ocirun_dev_rule *r = &rules[i];
        if (r->type != 'a' && r->type != 'b' && r->type != 'c')
            return -EINVAL;
        if (r->major < -1 || r->major > MAX_DEV_NUMBER || r->minor < -1 || r->minor > MAX_DEV_NUMBER)
            return -ERANGE;
        if (r->access & ~(unsigned int)ACC_ALL)
            return -EINVAL;
    }
    /* struct bpf_cgroup_dev_ctx { u32 access_type (type | access << 16); u32 major; u32 minor; } */
    LDX_W(BPF_REG_2, BPF_REG_1, 0);
    ALU32_IMM(BPF_AND, BPF_REG_2, 0xFFFF);
    LDX_W(BPF_REG_3, BPF_REG_1, 0);
    ALU32_IMM(BPF_RSH, BPF_REG_3, 16);
    LDX_W(BPF_REG_4, BPF_REG_1, 4);
    LDX_W(BPF_REG_5, BPF_REG_1, 8);
    for (size_t i = n; i-- > 0;) {
        /* an unconditional block makes everything before it unreachable: the verifier refuses that */
        if (emit_rule(p, &rules[i]))
            return p->overflow ? -ENOSPC : (int)p->len;
    }
    MOV64_IMM(BPF_REG_0, 0);
    EXIT();
    return p->overflow ? -ENOSPC : (int)p->len;
}

int ocirun_devcg_build(const struct ocirun_dev_rule *rules, size_t n, struct ocirun_bpf_insn *out, size_t cap)
{
    struct bpf_insn *tmp = calloc(cap ? cap : 1, sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    struct prog p = {tmp, 0, cap, 0};
    int len = build(rules, n, &p);
    if (len < 0) {
        free(tmp);
        return len;
    }
    for (int i = 0; i < len; i++) {
        out[i].code = tmp[i].code;
        out[i].regs = (uint8_t)(tmp[i].dst_reg | (tmp[i].src_reg << 4));
        out[i].off = tmp[i].off;
        out[i].imm = tmp[i].imm;
    }
    free(tmp);
    return len;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int ocirun_devcg_load(const struct ocirun_dev_rule *rules, size_t n, char *log, size_t log_size)
{
    size_t cap = 8 + 10 * n;
    struct bpf_insn *insns = calloc(cap, sizeof(*insns));
    if (!insns)
        return -ENOMEM;
    struct prog p = {insns, 0, cap, 0};
    int len = build(rules, n, &p);
    if (len < 0) {
        free(insns);
        return len;
    }
    static const char license[] = "GPL";
    union bpf_attr attr;
    long fd = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        for (int retry = 0; retry < 30; retry++) {
            memset(&attr, 0, sizeof(attr));
            attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
            attr.insns = (uint64_t)(uintptr_t)insns;
            attr.insn_cnt = (uint32_t)len;
            attr.license = (uint64_t)(uintptr_t)license;
            if (attempt == 1 && log && log_size > 1) { /* second try only to fill the verifier log */
                log[0] = 0;
                attr.log_buf = (uint64_t)(uintptr_t)log;
                attr.log_size = (uint32_t)log_size;
                attr.log_level = 1;
            }
            fd = sys_bpf(BPF_PROG_LOAD, &attr);
            if (fd >= 0 || errno != EAGAIN) /* the verifier can be interrupted by signals */
                break;
        }
        if (fd >= 0 || !log || log_size <= 1)
            break;
    }
    int err = errno;
    free(insns);
    return fd >= 0 ? (int)fd : -err;
}

int ocirun_devcg_query(int cgroup_fd, uint32_t *ids, size_t cap)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = (uint32_t)cgroup_fd;
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_cnt = (uint32_t)cap;
    attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
    if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
        return -errno;
    return (int)attr.query.prog_cnt;
}

static int detach_id(int cgroup_fd, uint32_t id)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_id = id;
    long fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    long rc = sys_bpf(BPF_PROG_DETACH, &attr);
    int err = errno;
    close((int)fd);
    return (rc < 0 && err != ENOENT) ? -err : 0;
}

int ocirun_devcg_attach(int cgroup_fd, int prog_fd)
{
    enum { MAX_OLD = 64 };
    uint32_t old[MAX_OLD];
    int nold = ocirun_devcg_query(cgroup_fd, old, MAX_OLD);
    if (nold < 0)
        return nold;

    union bpf_attr attr;
    long rc = -1;
    int replaced = 0;
    if (nold == 1) { /* atomic swap when there is exactly one program (ours from a previous apply) */
        memset(&attr, 0, sizeof(attr));
        attr.prog_id = old[0];
        long oldfd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
        if (oldfd >= 0) {
            memset(&attr, 0, sizeof(attr));
            attr.target_fd = (uint32_t)cgroup_fd;
            attr.attach_bpf_fd = (uint32_t)prog_fd;
            attr.attach_type = BPF_CGROUP_DEVICE;
            attr.attach_flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
            attr.replace_bpf_fd = (uint32_t)oldfd;
            rc = sys_bpf(BPF_PROG_ATTACH, &attr);
            replaced = rc == 0;
            close((int)oldfd);
        }
    }
    if (!replaced) {
        memset(&attr, 0, sizeof(attr));
        attr.target_fd = (uint32_t)cgroup_fd;
        attr.attach_bpf_fd = (uint32_t)prog_fd;
        attr.attach_type = BPF_CGROUP_DEVICE;
        attr.attach_flags = BPF_F_ALLOW_MULTI;
        if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
            return -errno;
        /* the new filter is in place before the old ones go: no window without a filter */
        for (int i = 0; i < nold; i++) {
            int d = detach_id(cgroup_fd, old[i]);
            if (d < 0)
                return d;
        }
    }
    return 0;
}

long ocirun_cg_statfs_magic(const char *path)
{
    struct statfs st;
    if (statfs(path, &st) < 0)
        return -errno;
    return (long)(unsigned long)st.f_type;
}

long ocirun_cg_fstatfs_magic(int fd)
{
    struct statfs st;
    if (fstatfs(fd, &st) < 0)
        return -errno;
    return (long)(unsigned long)st.f_type;
}
