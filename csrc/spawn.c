/* clone the child and run the plan in it. The child runs only this C code, never Python: right after the
 * clone it execs ocirun-init (sealed_init.c, init_main.c), which walks the plan. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ocirun.h"
#include "sealed_init.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

int send_msg(int fd, uint32_t type, int32_t value, const void *data, uint32_t len) {
  struct ocirun_msg m = {type, value, len};
  struct iovec iov[2] = {{&m, sizeof m}, {(void *)data, len}};
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = data && len ? 2 : 1};
  ssize_t n;
  do n = sendmsg(fd, &mh, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

void die(struct child_ctx *c, int err, const char *fmt, ...) {
  char msg[1024];
  int n = 0;
  va_list ap;
  va_start(ap, fmt);
  if (c->label && *c->label) n = snprintf(msg, sizeof msg, "%s: ", c->label);
  if (n < 0 || n >= (int)sizeof msg) n = 0;
  int m = vsnprintf(msg + n, sizeof msg - n, fmt, ap);
  va_end(ap);
  if (m > 0) n += m;
  if (n >= (int)sizeof msg) n = sizeof msg - 1;
  if (err) {
    int k = snprintf(msg + n, sizeof msg - n, ": %s", strerror(err));
    if (k > 0) n += k;
    if (n >= (int)sizeof msg) n = sizeof msg - 1;
  }
  if (c->trace_cur) c->trace_cur->err = err ? err : -1;
  if (c->sync_fd >= 0) send_msg(c->sync_fd, MSG_ERROR, err, msg, n);
  if (c->start_conn >= 0) {
    ssize_t w = write(c->start_conn, msg, n);
    (void)w;
  }
  _exit(err == ENOENT ? 127 : err == EACCES ? 126 : 1);
}

/* ---- plan parsing ---- */

static int read_u32(const unsigned char **p, const unsigned char *end, uint32_t *v) {
  if (end - *p < 4) return -1;
  memcpy(v, *p, 4);
  *p += 4;
  return 0;
}

static int read_str(const unsigned char **p, const unsigned char *end, const char **s, uint32_t *len) {
  if (read_u32(p, end, len) < 0 || (size_t)(end - *p) < (size_t)*len + 1 || (*p)[*len] != 0) return -1;
  *s = (const char *)*p;
  *p += *len + 1;
  return 0;
}

static int read_arg(const unsigned char **p, const unsigned char *end, struct ocirun_arg *a) {
  if (end - *p < 1) return -1;
  a->kind = **p;
  (*p)++;
  if (a->kind == ARG_INT) {
    if (end - *p < 8) return -1;
    memcpy(&a->i, *p, 8);
    *p += 8;
    return 0;
  }
  if (a->kind == ARG_STR) return read_str(p, end, &a->s, &a->len);
  return -1;
}

/* Walk the plan; with `run` set, carry out each step. Returns -1 on a malformed step (index in *bad). */
static int walk(const char *plan, size_t len, struct child_ctx *c, int *bad);

int ocirun_check_plan(const char *plan, size_t len, int *bad_step) { return walk(plan, len, NULL, bad_step); }

static struct ocirun_arg args_buf[OCIRUN_MAX_ARGS];

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

static void run_step(struct child_ctx *c, uint32_t op, struct ocirun_arg *a, uint32_t n) {
  switch (op) {
  case OP_SETNS:
    if (a[0].kind == ARG_INT && a[1].i == CLONE_NEWPID) {
      join_pidns(c, (int)a[0].i, NULL);
    } else if (a[0].kind == ARG_INT) { /* an fd the runtime opened (exec: before any setns hides the paths) */
      if (setns((int)a[0].i, (int)a[1].i) < 0) die(c, errno, "setns");
      close((int)a[0].i);
    } else {
      do_setns(c, a[0].s, (int)a[1].i);
    }
    break;
  case OP_UNSHARE: do_unshare(c, (unsigned long)a[0].i); break;
  case OP_WRITE_ATTR: write_proc_self(c, a[0].s, a[1].s); break;
  case OP_IOPRIO:
    if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (int)((a[0].i << 13) | a[1].i)) < 0)
      die(c, errno, "ioprio_set");
    break;
  case OP_SCHED: {
    struct {
      uint32_t size, policy;
      uint64_t flags;
      int32_t nice;
      uint32_t priority;
      uint64_t runtime, deadline, period;
    } attr = {48, (uint32_t)a[0].i, (uint64_t)a[3].i, (int32_t)a[1].i, (uint32_t)a[2].i,
              (uint64_t)a[4].i, (uint64_t)a[5].i, (uint64_t)a[6].i};
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0) die(c, errno, "sched_setattr");
    break;
  }
  case OP_PIDNS_FORK: /* (done already where a proc mount could not wait for it) */
    if (c->pidns_pending) fork_into_pidns(c);
    break;
  case OP_CPU_AFFINITY: {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const char *p = a[0].s; *p;) {
      char *end;
      long lo = strtol(p, &end, 10), hi = lo;
      if (end == p) die(c, EINVAL, "cpu list %s", a[0].s);
      if (*end == '-') hi = strtol(end + 1, &end, 10);
      for (long k = lo; k <= hi && k < CPU_SETSIZE; k++) CPU_SET((int)k, &set);
      p = *end == ',' ? end + 1 : end;
      if (*end && *end != ',') die(c, EINVAL, "cpu list %s", a[0].s);
    }
    if (sched_setaffinity(0, sizeof set, &set) < 0) die(c, errno, "sched_setaffinity(%s)", a[0].s);
    break;
  }
  case OP_CGROUP_NS_UNSHARE:
    if (unshare(CLONE_NEWCGROUP) < 0) die(c, errno, "unshare(CLONE_NEWCGROUP)");
    break;
  case OP_SYNC: sync_parent(c, (int)a[0].i); break;
  case OP_SETRESID0:
    if (set_gid(0) < 0 || set_uid(0) < 0) die(c, errno, "become root in the user namespace");
    break;
  case OP_SETSID:
    if (setsid() < 0 && errno != EPERM) die(c, errno, "setsid");
    break;
  case OP_HOSTNAME:
    if (sethostname(a[0].s, a[0].len) < 0) die(c, errno, "sethostname");
    break;
  case OP_DOMAINNAME:
    if (setdomainname(a[0].s, a[0].len) < 0) die(c, errno, "setdomainname");
    break;
  case OP_PROPAGATE_ROOT: do_propagate_root(c, (unsigned long)a[0].i); break;
  case OP_ROOTFS: do_rootfs(c, a[0].s, (int)a[1].i, n > 2 ? (unsigned long)a[2].i : 0); break;
  case OP_MOUNT: do_mount(c, a, n); break;
  case OP_MOUNT_COPYUP: do_mount_copyup(c, a); break;
  case OP_MKNOD: do_mknod(c, a); break;
  case OP_BIND_DEV: do_bind_dev(c, a[0].s, a[1].s); break;
  case OP_SYMLINK: do_symlink(c, a[0].s, a[1].s); break;
  case OP_MASK: do_mask(c, a[0].s); break;
  case OP_READONLY: do_readonly(c, a[0].s); break;
  case OP_HOOK: do_hook(c, a, n); break;
  case OP_PIVOT: do_pivot(c, (int)a[0].i); break;
  case OP_REMOUNT_RO: do_remount_ro(c, a[0].s); break;
  case OP_PROPAGATE_NEWROOT: do_propagate_newroot(c, (unsigned long)a[0].i); break;
  case OP_ROOT_READONLY: do_root_readonly(c); break;
  case OP_SYSCTL: do_sysctl(c, a[0].s, a[1].s); break;
  case OP_RLIMIT: {
    struct rlimit rl = {(rlim_t)a[1].i, (rlim_t)a[2].i};
    if (setrlimit((int)a[0].i, &rl) < 0) die(c, errno, "setrlimit(%d, %lld, %lld)", (int)a[0].i, (long long)a[1].i, (long long)a[2].i);
    break;
  }
  case OP_OOM_SCORE_ADJ: {
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)a[0].i);
    write_proc_self(c, "/proc/self/oom_score_adj", v);
    break;
  }
  case OP_NEW_KEYRING:
    /* A fresh session keyring so the container can't read the host's; EPERM/ENOSYS are not fatal (runc). */
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS && errno != EPERM && errno != EACCES)
      die(c, errno, "join a new session keyring");
    break;
  case OP_CONSOLE: do_console(c, (int)a[0].i, (int)a[1].i, (int)a[2].i); break;
  case OP_CAPS_BOUNDING: do_caps_bounding(c, (uint64_t)a[0].i); break;
  case OP_KEEPCAPS:
    if (prctl(PR_SET_KEEPCAPS, (unsigned long)a[0].i, 0, 0, 0) < 0) die(c, errno, "prctl(PR_SET_KEEPCAPS)");
    break;
  case OP_SETGROUPS: {
    gid_t gids[OCIRUN_MAX_ARGS];
    uint32_t k = (uint32_t)a[0].i;
    if (k + 1 != n) die(c, EINVAL, "setgroups: %u groups announced, %u given", k, n - 1);
    for (uint32_t i = 0; i < k; i++) gids[i] = (gid_t)a[i + 1].i;
    if (syscall(SYS_setgroups, (size_t)k, gids) < 0) die(c, errno, "setgroups");
    break;
  }
  case OP_SETGID:
    if (set_gid((gid_t)a[0].i) < 0) die(c, errno, "setgid(%lld)", (long long)a[0].i);
    break;
  case OP_SETUID:
    if (set_uid((uid_t)a[0].i) < 0) die(c, errno, "setuid(%lld)", (long long)a[0].i);
    break;
  case OP_CAPS: do_caps(c, (uint64_t)a[0].i, (uint64_t)a[1].i, (uint64_t)a[2].i, (uint64_t)a[3].i); break;
  case OP_UMASK: umask((mode_t)a[0].i); break;
  case OP_NO_NEW_PRIVS:
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die(c, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
    break;
  case OP_SECCOMP: do_seccomp(c, &a[0], (unsigned int)a[1].i, (int)a[2].i); break;
  case OP_OPEN_CWD: c->cwd_fd = open_cwd(c, a[0].s); break;
  case OP_LOOKUP_HOME: do_lookup_home(c, a[0].i); break;
  case OP_CHOWN_STDIO: do_chown_stdio(c, (uid_t)a[0].i); break;
  case OP_MKDIR_CWD: {
    int err, fd = c->root_fd >= 0 ? resolve_in_root(c->root_fd, a[0].s, 1, 0, &err) : (err = EBADF, -1);
    if (fd < 0) die(c, err, "create cwd %s", a[0].s);
    close(fd);
    break;
  }
  case OP_CHDIR_TRY:
    if (c->cwd_fd < 0) c->cwd_fd = open_cwd(c, a[0].s);
    if (fchdir(c->cwd_fd) == 0) {
      c->cwd_done = 1;
      close(c->cwd_fd);
      c->cwd_fd = -1;
    } else if (errno != EACCES && errno != EPERM) {
      die(c, errno, "chdir to cwd %s", a[0].s);
    }
    break;
  case OP_CHDIR:
    /* Resolved inside the root, so a cwd like /proc/self/fd/N can never name a host directory
     * (CVE-2024-21626 class); fchdir checks the search permission as the final user. */
    if (c->cwd_done) break;
    if (c->cwd_fd < 0) c->cwd_fd = open_cwd(c, a[0].s);
    if (fchdir(c->cwd_fd) < 0) die(c, errno, "chdir to cwd %s", a[0].s);
    close(c->cwd_fd);
    c->cwd_fd = -1;
    break;
  case OP_FIND_EXEC: do_find_exec(c, a[0].s, a[1].s); break;
  case OP_CLOSE_FDS:
    /* Everything above stdio and the preserved fds is closed at execve: no host fd leaks in. */
    if (syscall(SYS_close_range, (unsigned int)a[0].i, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) < 0) {
      for (int fd = (int)a[0].i; fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    break;
  case OP_WAIT_START: do_wait_start(c, (int)a[0].i); break;
  case OP_TRACE: { /* a memfd the runtime maps too (MAP_SHARED survives our execve only through a file) */
    struct stat st;
    void *m = fstat((int)a[0].i, &st) < 0 ? MAP_FAILED
              : mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, (int)a[0].i, 0);
    if (m != MAP_FAILED) c->trace = m;
    close((int)a[0].i);
    break;
  }
  case OP_EXEC: do_exec(c, a, n);
  case OP_PERSONALITY:
    if (personality((unsigned long)a[0].i) < 0) die(c, errno, "personality");
    break;
  default: die(c, EINVAL, "unknown plan step %u", op);
  }
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Claim the next trace record for step i; the runtime sees it once n is bumped. */
static void trace_begin(struct child_ctx *c, uint32_t i) {
  uint32_t k = c->trace->n;
  if (k >= c->trace->cap) return;
  struct ocirun_trace_rec *r = &c->trace->rec[k];
  r->step = i;
  r->err = 0;
  r->end_ns = 0;
  r->start_ns = now_ns();
  __atomic_store_n(&c->trace->n, k + 1, __ATOMIC_RELEASE);
  c->trace_cur = r;
}

static int walk(const char *plan, size_t len, struct child_ctx *c, int *bad) {
  const unsigned char *p = (const unsigned char *)plan, *end = p + len;
  uint32_t nsteps;
  *bad = -1;
  if (len < 8 || memcmp(p, "OCIP", 4) != 0) return -1;
  p += 4;
  if (read_u32(&p, end, &nsteps) < 0) return -1;
  for (uint32_t i = 0; i < nsteps; i++) {
    uint32_t op, nargs, llen;
    const char *label;
    *bad = (int)i;
    if (read_u32(&p, end, &op) < 0 || read_u32(&p, end, &nargs) < 0 || read_str(&p, end, &label, &llen) < 0)
      return -1;
    if (op == 0 || op >= OP_MAX || nargs > OCIRUN_MAX_ARGS) return -1;
    for (uint32_t k = 0; k < nargs; k++)
      if (read_arg(&p, end, &args_buf[k]) < 0) return -1;
    if (c) {
      c->label = label;
      if (c->trace) trace_begin(c, i);
      run_step(c, op, args_buf, nargs);
      if (c->trace_cur) {
        c->trace_cur->end_ns = now_ns();
        c->trace_cur = NULL;
      }
    }
  }
  *bad = -1;
  return p == end ? 0 : -1;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

#define MAX_KEPT 256 /* id-mapped mounts each bring one */
/* The fds the plan's steps use (SETNS, CONSOLE, WAIT_START, TRACE, id-mapped MOUNT sources) after the `n` already in keep[], and
 * in *first the lowest fd CLOSE_FDS closes at exec (stdio and the preserved fds are below it). */
static int plan_fds(const char *plan, size_t len, int *keep, int n, int *first) {
  const unsigned char *p = (const unsigned char *)plan + 8, *end = (const unsigned char *)plan + len;
  uint32_t nsteps;
  *first = 3;
  memcpy(&nsteps, plan + 4, 4);
  for (uint32_t i = 0; i < nsteps; i++) {
    uint32_t op, nargs, llen;
    const char *label;
    if (read_u32(&p, end, &op) < 0 || read_u32(&p, end, &nargs) < 0 || read_str(&p, end, &label, &llen) < 0) break;
    for (uint32_t k = 0; k < nargs; k++) {
      if (read_arg(&p, end, &args_buf[k]) < 0) return n;
      if (k == 0 && args_buf[0].kind == ARG_INT && n < MAX_KEPT &&
          (op == OP_SETNS || op == OP_CONSOLE || op == OP_WAIT_START || op == OP_TRACE))
        keep[n++] = (int)args_buf[0].i;
      if (k == 0 && op == OP_CLOSE_FDS) *first = (int)args_buf[0].i;
      if (k == 10 && op == OP_MOUNT && args_buf[9].kind == ARG_INT && args_buf[9].i >= 0 && n < MAX_KEPT)
        keep[n++] = (int)args_buf[9].i; /* an id-mapped bind source the runtime made (ocirun/mountsrc.py) */
    }
  }
  return n;
}

/* Close every fd the plan does not name (CVE-2024-21626 class: a leaked host directory fd could become
 * the container's cwd via /proc/self/fd/N). Kept: stdio and the preserved fds below CLOSE_FDS's
 * argument, the sync socket, the plan memfd, the fds the plan's steps use (all made inheritable for
 * the execve of ocirun-init, which makes them close-on-exec again) and `exec_fd`, the init itself. */
static void close_unplanned_fds(const char *plan, size_t len, int sync_fd, int plan_fd, int exec_fd) {
  int keep[MAX_KEPT + 3] = {sync_fd, plan_fd}, first;
  int n = plan_fds(plan, len, keep, 2, &first);
  for (int i = 0; i < n; i++) fcntl(keep[i], F_SETFD, 0);
  keep[n++] = exec_fd;
  qsort(keep, n, sizeof keep[0], cmp_int);
  unsigned int lo = (unsigned int)first;
  for (int i = 0; i < n; i++) {
    if (keep[i] < (int)lo) continue;
    if ((unsigned int)keep[i] > lo) syscall(SYS_close_range, lo, (unsigned int)keep[i] - 1, 0);
    lo = (unsigned int)keep[i] + 1;
  }
  syscall(SYS_close_range, lo, ~0U, 0);
}

/* ocirun-init, with the plan: the fds close_unplanned_fds let through are close-on-exec again (the sync
 * socket's EOF at the final execve tells the runtime the user's program runs), then the plan's steps. */
void ocirun_init_main(const char *plan, size_t len, int sync_fd) {
  struct child_ctx c = {.sync_fd = sync_fd, .root_fd = -1, .start_conn = -1, .cwd_fd = -1};
  int keep[MAX_KEPT + 1] = {sync_fd}, first, bad;
  if (ocirun_check_plan(plan, len, &bad) < 0) die(&c, EINVAL, "malformed plan at step %d", bad);
  int n = plan_fds(plan, len, keep, 1, &first);
  for (int i = 0; i < n; i++) fcntl(keep[i], F_SETFD, FD_CLOEXEC);
  if (walk(plan, len, &c, &bad) < 0) die(&c, EINVAL, "malformed plan at step %d", bad);
  die(&c, EINVAL, "plan ended without exec");
}

/* The clone child, still a copy of the runtime (and of its threads' locks): only what must happen before
 * the execve of ocirun-init, in raw syscalls. */
static void child_main(const char *plan, size_t len, int sync_fd, int plan_fd, int init_fd, long ppid,
                       unsigned long clone_flags) {
  struct child_ctx c = {.sync_fd = sync_fd, .root_fd = -1, .start_conn = -1, .cwd_fd = -1};
  /* The runtime may die while we are half set up: never survive it as a stray process. The signal stays
   * armed across the execve (ocirun-init arms it again and checks that the runtime is still there). */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (ppid && getppid() != ppid) _exit(1); /* it died before that */
  /* Until the execve this process is a copy of the runtime's memory: nobody may read it. ocirun-init sets
   * this again (an execve resets it); the final execve makes the user's program dumpable. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  /* Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve, so reset every disposition. */
  /* The raw syscall: glibc's sigaction() refuses its two internal signals (32, 33), yet a caller may
   * have them ignored, and that too would reach the container. */
  struct { void *handler; unsigned long flags; void *restorer; unsigned long mask; } ksa = {SIG_DFL, 0, NULL, 0};
  for (int sig = 1; sig < _NSIG; sig++) syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof ksa.mask);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  close_unplanned_fds(plan, len, sync_fd, plan_fd, init_fd);
  exec_sealed_init(&c, plan_fd, ppid, clone_flags & CLONE_NEWUSER ? INIT_CARRY_CAPS : 0);
}

int ocirun_spawn(const char *plan, size_t len, unsigned long clone_flags, int cgroup_fd, int *sync_fd) {
  int sv[2], bad, plan_fd, init_fd = ocirun_seal_init(NULL, NULL);
  pid_t pid;
  if (init_fd < 0) return -ENOEXEC;
  if (ocirun_check_plan(plan, len, &bad) < 0) return -EINVAL;
  if ((plan_fd = plan_memfd(plan, len)) < 0) return plan_fd;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    int e = errno;
    close(plan_fd);
    return -e;
  }
  /* In a new pid namespace the child sees no parent: it can't check getppid() then. (A pid namespace to
   * join is the plan's business: SETNS, then PIDNS_FORK once the child is out of the host's mounts.) */
  long ppid = clone_flags & CLONE_NEWPID ? 0 : (long)getpid();
  if (cgroup_fd >= 0) {
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = clone_flags | CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.cgroup = (uint64_t)cgroup_fd;
    pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
  } else {
    pid = (pid_t)syscall(SYS_clone, clone_flags | SIGCHLD, 0, 0, 0, 0);
  }
  if (pid == 0) {
    close(sv[0]);
    child_main(plan, len, sv[1], plan_fd, init_fd, ppid, clone_flags);
    _exit(1);
  }
  int e = errno;
  close(plan_fd);
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return -e;
  }
  *sync_fd = sv[0];
  return pid;
}

int ocirun_send_fd(int sock, int fd, const char *data, size_t len) {
  char cbuf[CMSG_SPACE(sizeof(int))];
  char dummy = 0;
  struct iovec iov = {data && len ? (void *)data : &dummy, data && len ? len : 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  memset(cbuf, 0, sizeof cbuf);
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  ssize_t n;
  do n = sendmsg(sock, &mh, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : 0;
}

int ocirun_recv_fd(int sock, char *buf, size_t buflen) {
  char cbuf[CMSG_SPACE(sizeof(int))];
  char dummy;
  struct iovec iov = {buf && buflen ? buf : &dummy, buf && buflen ? buflen : 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  ssize_t n;
  do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm), sizeof(int));
      return fd;
    }
  return -EBADMSG;
}
