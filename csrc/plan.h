/* The plan: a flat list of steps compiled by ocirun/plan.py and carried out by the container's init.
 * Wire format (little endian, host order):
 *   "OCIP" u32 nsteps, then per step: u32 op, u32 nargs, char label[] (u32 len + bytes + NUL),
 *   then nargs args, each: u8 kind (0 = int64, 1 = bytes) then i64, or u32 len + bytes + NUL.
 * Strings point into the buffer: the child never copies or allocates to read it. */
#ifndef OCIRUN_PLAN_H
#define OCIRUN_PLAN_H
#include <stddef.h>
#include <stdint.h>

/* Keep in sync with OPS in ocirun/plan.py (checked by tests/test_plan.py). */
enum ocirun_op {
  OP_SETNS = 1,        /* path, nstype */
  OP_UNSHARE,          /* flags (CLONE_NEWPID here forks: the grandchild carries on) */
  OP_SYNC,             /* tag: tell the parent, wait for its go (payload stored as the state JSON) */
  OP_SETRESID0,        /* become root of a new user namespace */
  OP_SETSID,
  OP_HOSTNAME,         /* name */
  OP_DOMAINNAME,       /* name */
  OP_PROPAGATE_ROOT,   /* flags: mount(NULL, "/", flags) */
  OP_ROOTFS,           /* path, bind[, parent propagation]: (make the mount holding it private/slave, bind it on
                          itself and) open it as the root of every later path */
  OP_MOUNT,            /* src, dst, fstype, flags, data, propagation, kind(0 fs,1 bind,2 bind-file), recattr_set, recattr_clr
                          [, source fd, mode: 1 = when the bind of src is refused, ask the runtime for the
                          source (MSG_MOUNT); 2 = attach the fd (an id-mapped copy) with move_mount] */
  OP_MKNOD,            /* path, mode (with S_IFCHR/S_IFBLK/S_IFIFO), major, minor, uid, gid */
  OP_BIND_DEV,         /* host path, path */
  OP_SYMLINK,          /* target, path */
  OP_MASK,             /* path */
  OP_READONLY,         /* path */
  OP_HOOK,             /* path, timeout, argc, argv..., envc, env..., flags (HOOK_* below) */
  OP_PIVOT,            /* mode: 0 pivot_root, 1 MS_MOVE + chroot (--no-pivot: the host's proc/sysfs detached first),
                          2 chroot only (no mount ns) */
  OP_PROPAGATE_NEWROOT,/* flags, applied to "/" after pivot */
  OP_ROOT_READONLY,
  OP_SYSCTL,           /* key (with dots), value */
  OP_RLIMIT,           /* resource, soft, hard */
  OP_OOM_SCORE_ADJ,    /* value */
  OP_NEW_KEYRING,
  OP_CONSOLE,          /* console socket fd, rows, cols */
  OP_CAPS_BOUNDING,    /* mask */
  OP_KEEPCAPS,         /* 0/1 */
  OP_SETGROUPS,        /* n, gids... */
  OP_SETGID,           /* gid */
  OP_SETUID,           /* uid */
  OP_CAPS,             /* effective, permitted, inheritable, ambient */
  OP_UMASK,            /* mask */
  OP_NO_NEW_PRIVS,
  OP_SECCOMP,          /* bpf bytes, flags, notify(0/1) */
  OP_CHDIR,            /* path */
  OP_FIND_EXEC,        /* argv0, PATH value: resolve now so a missing command fails create */
  OP_CLOSE_FDS,        /* first fd kept closed-on-exec from here */
  OP_WAIT_START,       /* listening socket fd: accept, read the go byte, keep the connection until exec */
  OP_EXEC,             /* argc, argv..., envc, env... */
  OP_PERSONALITY,      /* domain */
  OP_CGROUP_NS_UNSHARE,/* unshare(CLONE_NEWCGROUP) once the parent placed us */
  OP_WRITE_ATTR,       /* file, value: an LSM label for the coming execve (/proc/self/attr/...) */
  OP_TRACE,            /* address of a MAP_SHARED struct ocirun_trace the runtime reads: time every later step */
  OP_OPEN_CWD,         /* path: resolve the cwd inside the root now (before seccomp may forbid openat2) */
  OP_MOUNT_COPYUP,     /* the mount step's args; then copy what the mount hides into it (tmpfs tmpcopyup) */
  OP_IOPRIO,           /* class, level: ioprio_set for the process */
  OP_SCHED,            /* policy, nice, priority, flags, runtime, deadline, period: sched_setattr */
  OP_CPU_AFFINITY,     /* cpu list ("0-3,6"): sched_setaffinity */
  OP_REMOUNT_RO,       /* path: make that mount read-only (a tmpfs or /dev mounted rw until the rootfs is set up) */
  OP_MKDIR_CWD,        /* path: create process.cwd (and its parents) inside the root, 0755 */
  OP_CHDIR_TRY,        /* path: chdir there while privileged; on EACCES/EPERM keep it resolved for CHDIR */
  OP_LOOKUP_HOME,      /* uid: HOME=<its home in the container's /etc/passwd, or /> is added to the exec env */
  OP_CHOWN_STDIO,      /* uid: stdio (the container's pty, pipes, files; not /dev/null or other ttys) to that uid */
  OP_PIDNS_FORK,       /* fork into the pid namespace SETNS set for our children; the grandchild carries on */
  OP_MAX
};

/* --trace: the child timestamps each step (CLOCK_MONOTONIC, as Python's time.monotonic_ns) into memory
 * shared with the runtime. Only present when tracing; a record is published (n bumped) before the step
 * runs, end_ns is set after it returns: 0 means it never returned (execve, or an error: err is set). */
struct ocirun_trace_rec {
  uint32_t step;  /* index in the plan */
  int32_t err;
  int64_t start_ns, end_ns;
};
struct ocirun_trace {
  uint32_t n, cap;
  struct ocirun_trace_rec rec[];
};

enum { ARG_INT = 0, ARG_STR = 1 };

/* OP_HOOK's flags (ocirun/plan.py HOOK_*): the state it reads (the second document: "created"), and an env
 * that is the process's, which gets the HOME the init looked up (OP_LOOKUP_HOME) as the process does. */
enum { HOOK_STATE_CREATED = 1, HOOK_PROCESS_ENV = 2 };

struct ocirun_arg {
  int kind;
  int64_t i;
  const char *s;
  uint32_t len;
};

#define OCIRUN_MAX_ARGS 8192

struct ocirun_step {
  uint32_t op;
  uint32_t nargs;
  const char *label;
  const unsigned char *argp; /* where this step's args start in the buffer */
};

/* Sync protocol messages between the Python parent and the child. */
/* MSG_MOUNT: "give me the source of the bind mount <label>" (payload); answered by MSG_GO carrying an fd. */
enum { MSG_SYNC = 1, MSG_ERROR, MSG_PID, MSG_READY, MSG_FD, MSG_MOUNT, MSG_GO = 100, MSG_ABORT };
struct ocirun_msg {
  uint32_t type;
  int32_t value;
  uint32_t len;
};

#endif
