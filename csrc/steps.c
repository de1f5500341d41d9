/* What each plan op does: one step function per op, and STEPS, the table that maps the op to it and to the
 * args it takes. The walker (spawn.c) checks a step against the table before anything runs (step_fits), then
 * runs it (step_run). The bigger steps are other files' do_* (fs.c, proc.c, copyup.c, passwd.c). */
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpulist.h"
#include "internal.h"

static void sync_parent(struct child_ctx *c, int tag) {
  struct ocirun_msg m;
  if (send_msg(c->sync_fd, MSG_SYNC, tag, NULL, 0) < 0) die(c, errno, "sync with the runtime");
  ssize_t n;
  do n = recv(c->sync_fd, &m, sizeof m, MSG_WAITALL); while (n < 0 && errno == EINTR);
  if (n != sizeof m) die(c, n < 0 ? errno : EPIPE, "sync with the runtime");
  if (m.type != MSG_GO) _exit(1); /* the parent gave up: it reports the reason itself */
  if (m.len) {
    /* the state JSON for hooks: a small mapping that stays for the life of the init */
    char *buf = mmap(NULL, m.len + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) die(c, errno, "sync with the runtime");
    do n = recv(c->sync_fd, buf, m.len, MSG_WAITALL); while (n < 0 && errno == EINTR);
    if (n != (ssize_t)m.len) die(c, n < 0 ? errno : EPIPE, "sync with the runtime");
    buf[m.len] = 0;
    c->state_json = buf;
    c->state_len = m.len;
  }
}

/* unshare(); a new pid namespace only applies to children, so fork and let the grandchild carry on. */
static void do_unshare(struct child_ctx *c, unsigned long flags) {
  if (unshare(flags & ~CLONE_NEWPID) < 0) die(c, errno, "unshare(0x%lx)", flags);
  if (!(flags & CLONE_NEWPID)) return;
  if (unshare(CLONE_NEWPID) < 0) die(c, errno, "unshare(CLONE_NEWPID)");
  fork_into_pidns(c);
}

static void do_setns(struct child_ctx *c, const char *path, int nstype) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(c, errno, "open namespace %s", path);
  if (nstype == CLONE_NEWPID) {
    join_pidns(c, fd, path);
    return;
  }
  if (setns(fd, nstype) < 0) die(c, errno, "setns %s", path);
  close(fd);
}

static void write_proc_self(struct child_ctx *c, const char *file, const char *value) {
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(c, errno, "open %s", file);
  ssize_t n = write(fd, value, strlen(value));
  if (n < 0) die(c, errno, "write %s", file);
  close(fd);
}

static int open_cwd(struct child_ctx *c, const char *cwd) {
  int err, root = c->root_fd >= 0 ? c->root_fd : open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd = root >= 0 ? resolve_in_root(root, cwd, 0, 0, &err) : (err = errno, -1);
  if (root >= 0 && root != c->root_fd) close(root);
  if (fd < 0) die(c, err, "chdir to cwd %s", cwd);
  return fd;
}

/* The set*id calls as raw syscalls. They were needed while the plan ran in a raw clone() of the (possibly
 * threaded: ocirun.cgroups.prewarm_attach) runtime, where glibc's wrappers could wait forever on a lock
 * copied while held; ocirun-init is a fresh single-threaded process, but the kernel's per-thread call is
 * still the whole job. */
static int set_gid(gid_t g) { return (int)syscall(SYS_setresgid, g, g, g); }
static int set_uid(uid_t u) { return (int)syscall(SYS_setresuid, u, u, u); }

/* ---- the steps: one function per op, each reading its args as STEPS (below) declares them ---- */

static void step_setns(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (a[0].kind == ARG_INT && a[1].i == CLONE_NEWPID) {
    join_pidns(c, (int)a[0].i, NULL);
  } else if (a[0].kind == ARG_INT) { /* an fd the runtime opened (exec: before any setns hides the paths) */
    if (setns((int)a[0].i, (int)a[1].i) < 0) die(c, errno, "setns");
    close((int)a[0].i);
  } else {
    do_setns(c, a[0].s, (int)a[1].i);
  }
}

static void step_unshare(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_unshare(c, (unsigned long)a[0].i);
}

static void step_sync(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { sync_parent(c, (int)a[0].i); }

static void step_setresid0(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (set_gid(0) < 0 || set_uid(0) < 0) die(c, errno, "become root in the user namespace");
}

static void step_setsid(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (setsid() < 0 && errno != EPERM) die(c, errno, "setsid");
}

static void step_hostname(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (sethostname(a[0].s, a[0].len) < 0) die(c, errno, "sethostname");
}

static void step_domainname(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (setdomainname(a[0].s, a[0].len) < 0) die(c, errno, "setdomainname");
}

static void step_propagate_root(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_propagate_root(c, (unsigned long)a[0].i);
}

static void step_rootfs(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_rootfs(c, a[0].s, (int)a[1].i, n > 2 ? (unsigned long)a[2].i : 0);
}

static void step_mount(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_mount(c, a, n); }

static void step_mount_copyup(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_mount_copyup(c, a); }

static void step_mknod(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_mknod(c, a); }

static void step_bind_dev(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_bind_dev(c, a[0].s, a[1].s);
}

static void step_symlink(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_symlink(c, a[0].s, a[1].s);
}

static void step_mask(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_mask(c, a[0].s); }

static void step_readonly(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_readonly(c, a[0].s); }

static void step_remount_ro(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_remount_ro(c, a[0].s);
}

static void step_hook(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_hook(c, a, n); }

static void step_pivot(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (a[0].i != PIVOT_ROOT && a[0].i != PIVOT_MOVE && a[0].i != PIVOT_CHROOT) die(c, EINVAL, "pivot mode %lld", (long long)a[0].i);
  do_pivot(c, (int)a[0].i);
}

static void step_propagate_newroot(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_propagate_newroot(c, (unsigned long)a[0].i);
}

static void step_root_readonly(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_root_readonly(c); }

static void step_sysctl(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_sysctl(c, a[0].s, a[1].s);
}

static void step_rlimit(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  struct rlimit rl = {(rlim_t)a[1].i, (rlim_t)a[2].i};
  if (setrlimit((int)a[0].i, &rl) < 0)
    die(c, errno, "setrlimit(%d, %lld, %lld)", (int)a[0].i, (long long)a[1].i, (long long)a[2].i);
}

static void step_oom_score_adj(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  char v[32];
  snprintf(v, sizeof v, "%lld", (long long)a[0].i);
  write_proc_self(c, "/proc/self/oom_score_adj", v);
}

static void step_new_keyring(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  /* A fresh session keyring so the container can't read the host's; EPERM/ENOSYS are not fatal (runc). */
  if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS && errno != EPERM &&
      errno != EACCES)
    die(c, errno, "join a new session keyring");
}

static void step_console(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_console(c, (int)a[0].i, (int)a[1].i, (int)a[2].i);
}

static void step_caps_bounding(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_caps_bounding(c, (uint64_t)a[0].i);
}

static void step_keepcaps(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (prctl(PR_SET_KEEPCAPS, (unsigned long)a[0].i, 0, 0, 0) < 0) die(c, errno, "prctl(PR_SET_KEEPCAPS)");
}

static void step_setgroups(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  static gid_t gids[OCIRUN_MAX_ARGS];
  uint32_t k = (uint32_t)a[0].i;
  if (a[0].i < 0 || k + 1 != n) die(c, EINVAL, "setgroups: %lld groups announced, %u given", (long long)a[0].i, n - 1);
  for (uint32_t i = 0; i < k; i++) {
    if (a[i + 1].kind != ARG_INT) die(c, EINVAL, "setgroups: group %u is not a number", i);
    gids[i] = (gid_t)a[i + 1].i;
  }
  if (syscall(SYS_setgroups, (size_t)k, gids) < 0) die(c, errno, "setgroups");
}

static void step_setgid(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (set_gid((gid_t)a[0].i) < 0) die(c, errno, "setgid(%lld)", (long long)a[0].i);
}

static void step_setuid(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (set_uid((uid_t)a[0].i) < 0) die(c, errno, "setuid(%lld)", (long long)a[0].i);
}

static void step_caps(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_caps(c, (uint64_t)a[0].i, (uint64_t)a[1].i, (uint64_t)a[2].i, (uint64_t)a[3].i);
}

static void step_umask(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { umask((mode_t)a[0].i); }

static void step_no_new_privs(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die(c, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
}

static void step_seccomp(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_seccomp(c, &a[0], (unsigned int)a[1].i, (int)a[2].i);
}

static void step_mkdir_cwd(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  int err, fd = c->root_fd >= 0 ? resolve_in_root(c->root_fd, a[0].s, 1, 0, &err) : (err = EBADF, -1);
  if (fd < 0) die(c, err, "create cwd %s", a[0].s);
  close(fd);
}

static void step_chdir_try(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (c->cwd_fd < 0) c->cwd_fd = open_cwd(c, a[0].s);
  if (fchdir(c->cwd_fd) == 0) {
    c->cwd_done = 1;
    close(c->cwd_fd);
    c->cwd_fd = -1;
  } else if (errno != EACCES && errno != EPERM) {
    die(c, errno, "chdir to cwd %s", a[0].s);
  }
}

/* Resolved inside the root, so a cwd like /proc/self/fd/N can never name a host directory (CVE-2024-21626
 * class); fchdir checks the search permission as the final user. */
static void step_chdir(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (c->cwd_done) return;
  if (c->cwd_fd < 0) c->cwd_fd = open_cwd(c, a[0].s);
  if (fchdir(c->cwd_fd) < 0) die(c, errno, "chdir to cwd %s", a[0].s);
  close(c->cwd_fd);
  c->cwd_fd = -1;
}

static void step_find_exec(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_find_exec(c, a[0].s, a[1].s);
}

/* Everything above stdio and the preserved fds is closed at execve: no host fd leaks in. */
static void step_close_fds(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (syscall(SYS_close_range, (unsigned int)a[0].i, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) < 0) {
    for (int fd = (int)a[0].i; fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
}

static void step_wait_start(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_wait_start(c, (int)a[0].i);
}

static void step_exec(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) { do_exec(c, a, n); }

static void step_personality(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (personality((unsigned long)a[0].i) < 0) die(c, errno, "personality");
}

static void step_cgroup_ns_unshare(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (unshare(CLONE_NEWCGROUP) < 0) die(c, errno, "unshare(CLONE_NEWCGROUP)");
}

static void step_write_attr(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  write_proc_self(c, a[0].s, a[1].s);
}

/* A memfd the runtime maps too (MAP_SHARED survives our execve only through a file). */
static void step_trace(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  struct stat st;
  void *m = fstat((int)a[0].i, &st) < 0 ? MAP_FAILED
            : mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, (int)a[0].i, 0);
  if (m != MAP_FAILED) c->trace = m;
  close((int)a[0].i);
}

static void step_ioprio(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (int)((a[0].i << 13) | a[1].i)) < 0)
    die(c, errno, "ioprio_set");
}

static void step_sched(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  struct {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
  } attr = {48, (uint32_t)a[0].i, (uint64_t)a[3].i, (int32_t)a[1].i, (uint32_t)a[2].i,
            (uint64_t)a[4].i, (uint64_t)a[5].i, (uint64_t)a[6].i};
  if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0) die(c, errno, "sched_setattr");
}

static void step_cpu_affinity(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  cpu_set_t set;
  int r = parse_cpu_list(a[0].s, &set);
  if (r < 0) die(c, -r, "cpu list \"%s\"", a[0].s);
  if (sched_setaffinity(0, sizeof set, &set) < 0) die(c, errno, "sched_setaffinity(%s)", a[0].s);
}

static void step_lookup_home(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_lookup_home(c, a[0].i);
}

static void step_chown_stdio(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  do_chown_stdio(c, (uid_t)a[0].i);
}

static void step_pidns_fork(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  if (c->pidns_pending) fork_into_pidns(c); /* (done already where a proc mount could not wait for it) */
}

/* Each op's step and the args it takes, one letter each: 'i' an int, 's' a string (or bytes), '*' either.
 * After a '|' the rest is optional, as a whole; a final '+' lets more follow, which the step checks itself.
 * The walker refuses a step whose args do not fit before the plan runs (ocirun_check_plan), so a step reads
 * the args it declares without checking them; an op without an entry is refused the same way. */
typedef void step_fn(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n);
static const struct step {
  step_fn *run;
  const char *args;
} STEPS[OP_MAX] = {
  [OP_SETNS] = {step_setns, "*i"},                 /* path or fd, nstype */
  [OP_UNSHARE] = {step_unshare, "i"},
  [OP_SYNC] = {step_sync, "i"},
  [OP_SETRESID0] = {step_setresid0, ""},
  [OP_SETSID] = {step_setsid, ""},
  [OP_HOSTNAME] = {step_hostname, "s"},
  [OP_DOMAINNAME] = {step_domainname, "s"},
  [OP_PROPAGATE_ROOT] = {step_propagate_root, "i"},
  [OP_ROOTFS] = {step_rootfs, "si|i"},
  [OP_MOUNT] = {step_mount, "sssisiiii|ii"},       /* (the source fd and its mode: plan.h) */
  [OP_MKNOD] = {step_mknod, "siiiii"},
  [OP_BIND_DEV] = {step_bind_dev, "ss"},
  [OP_SYMLINK] = {step_symlink, "ss"},
  [OP_MASK] = {step_mask, "s"},
  [OP_READONLY] = {step_readonly, "s"},
  [OP_HOOK] = {step_hook, "si+"},                  /* (argv, env and flags: do_hook) */
  [OP_PIVOT] = {step_pivot, "i"},
  [OP_PROPAGATE_NEWROOT] = {step_propagate_newroot, "i"},
  [OP_ROOT_READONLY] = {step_root_readonly, ""},
  [OP_SYSCTL] = {step_sysctl, "ss"},
  [OP_RLIMIT] = {step_rlimit, "iii"},
  [OP_OOM_SCORE_ADJ] = {step_oom_score_adj, "i"},
  [OP_NEW_KEYRING] = {step_new_keyring, ""},
  [OP_CONSOLE] = {step_console, "iii"},
  [OP_CAPS_BOUNDING] = {step_caps_bounding, "i"},
  [OP_KEEPCAPS] = {step_keepcaps, "i"},
  [OP_SETGROUPS] = {step_setgroups, "i+"},         /* (the groups: step_setgroups) */
  [OP_SETGID] = {step_setgid, "i"},
  [OP_SETUID] = {step_setuid, "i"},
  [OP_CAPS] = {step_caps, "iiii"},
  [OP_UMASK] = {step_umask, "i"},
  [OP_NO_NEW_PRIVS] = {step_no_new_privs, ""},
  [OP_SECCOMP] = {step_seccomp, "sii"},
  [OP_CHDIR] = {step_chdir, "s"},
  [OP_FIND_EXEC] = {step_find_exec, "ss"},
  [OP_CLOSE_FDS] = {step_close_fds, "i"},
  [OP_WAIT_START] = {step_wait_start, "i"},
  [OP_EXEC] = {step_exec, "i+"},                   /* (argv and env: do_exec) */
  [OP_PERSONALITY] = {step_personality, "i"},
  [OP_CGROUP_NS_UNSHARE] = {step_cgroup_ns_unshare, ""},
  [OP_WRITE_ATTR] = {step_write_attr, "ss"},
  [OP_TRACE] = {step_trace, "i"},
  [OP_MOUNT_COPYUP] = {step_mount_copyup, "sssisiiii"},
  [OP_IOPRIO] = {step_ioprio, "ii"},
  [OP_SCHED] = {step_sched, "iiiiiii"},
  [OP_CPU_AFFINITY] = {step_cpu_affinity, "s"},
  [OP_REMOUNT_RO] = {step_remount_ro, "s"},
  [OP_MKDIR_CWD] = {step_mkdir_cwd, "s"},
  [OP_CHDIR_TRY] = {step_chdir_try, "s"},
  [OP_LOOKUP_HOME] = {step_lookup_home, "i"},
  [OP_CHOWN_STDIO] = {step_chown_stdio, "i"},
  [OP_PIDNS_FORK] = {step_pidns_fork, ""},
};

/* Whether args a[0..n) fit the declaration `sig` (STEPS). */
static int args_fit(const char *sig, const struct ocirun_arg *a, uint32_t n) {
  uint32_t k = 0;
  for (; *sig; sig++) {
    if (*sig == '+') return 1;
    if (*sig == '|') {
      if (k == n) return 1;
      continue;
    }
    if (k >= n || (*sig == 'i' && a[k].kind != ARG_INT) || (*sig == 's' && a[k].kind != ARG_STR)) return 0;
    k++;
  }
  return k == n;
}

int step_fits(uint32_t op, const struct ocirun_arg *a, uint32_t n) {
  return op > 0 && op < OP_MAX && STEPS[op].run && args_fit(STEPS[op].args, a, n);
}

void step_run(struct child_ctx *c, uint32_t op, const struct ocirun_arg *a, uint32_t n) { STEPS[op].run(c, a, n); }
