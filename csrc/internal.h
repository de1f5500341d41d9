/* Shared by the C helper's files; never seen by Python. */
#ifndef OCIRUN_INTERNAL_H
#define OCIRUN_INTERNAL_H
#include "plan.h"

struct child_ctx {
  int sync_fd;       /* to the Python parent; -1 once the parent is gone (after create) */
  int root_fd;       /* the rootfs (after OP_ROOTFS), later "/" */
  int start_conn;    /* the `start` caller's connection, while it waits for exec */
  int cwd_fd;        /* process.cwd resolved inside the root (OP_OPEN_CWD, OP_CHDIR_TRY), for OP_CHDIR */
  int cwd_done;      /* OP_CHDIR_TRY got there: OP_CHDIR has nothing left to do */
  const char *state_json; /* sent by the parent with the hooks go; fed to hooks on stdin */
  uint32_t state_len;
  char exec_path[4096];   /* resolved by OP_FIND_EXEC */
  const char *home_env;   /* "HOME=..." from the container's passwd (OP_LOOKUP_HOME), added to the exec env */
  unsigned long long console_rdev; /* the pty OP_CONSOLE made (0: none): the one terminal OP_CHOWN_STDIO chowns */
  const char *label;      /* current step's label, for errors */
  struct ocirun_trace *trace;         /* --trace only (OP_TRACE) */
  struct ocirun_trace_rec *trace_cur; /* the running step's record */
  int pidns_pending; /* a pid namespace is set for our children (SETNS), not entered yet (PIDNS_FORK) */
  int pidns_fd;      /* that namespace, while pending */
};

/* Report an error (errno-style) to whoever waits for us and exit. Never returns. */
__attribute__((noreturn, format(printf, 3, 4))) void die(struct child_ctx *c, int err, const char *fmt, ...);

int send_msg(int fd, uint32_t type, int32_t value, const void *data, uint32_t len);

/* fs.c */
int resolve_in_root(int root_fd, const char *path, int create, int want_file, int *err);
void do_propagate_root(struct child_ctx *c, unsigned long flags);
void do_rootfs(struct child_ctx *c, const char *path, int bind, unsigned long parent_prop);
void do_mount(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n);
void do_mknod(struct child_ctx *c, const struct ocirun_arg *a);
void do_bind_dev(struct child_ctx *c, const char *host, const char *path);
void do_symlink(struct child_ctx *c, const char *target, const char *path);
void do_mask(struct child_ctx *c, const char *path);
void do_readonly(struct child_ctx *c, const char *path);
void do_remount_ro(struct child_ctx *c, const char *path);
void do_pivot(struct child_ctx *c, int no_pivot);
void do_propagate_newroot(struct child_ctx *c, unsigned long flags);
void do_root_readonly(struct child_ctx *c);
void do_sysctl(struct child_ctx *c, const char *key, const char *value);

/* passwd.c */
void do_lookup_home(struct child_ctx *c, long long uid);

/* pidns.c: setns of a pid namespace to enter later; the fork that enters it (the runtime follows the new
 * pid: MSG_PID); a proc mount for that namespace before the fork: 1 when mounted, 0 when the kernel could not
 * and we forked instead (mount as usual then) */
void join_pidns(struct child_ctx *c, int fd, const char *path); /* path: for errors, or NULL */
void fork_into_pidns(struct child_ctx *c);
int mount_proc_for_children(struct child_ctx *c, const char *src, const char *target, const char *dst,
                            unsigned long flags, const char *data);

/* copyup.c */
void do_mount_copyup(struct child_ctx *c, const struct ocirun_arg *a);

/* proc.c */
void do_hook(struct child_ctx *c, const struct ocirun_arg *a, uint32_t nargs);
void do_console(struct child_ctx *c, int sock, int rows, int cols);
void do_chown_stdio(struct child_ctx *c, uid_t uid);
void do_caps_bounding(struct child_ctx *c, uint64_t keep);
void do_caps(struct child_ctx *c, uint64_t eff, uint64_t perm, uint64_t inh, uint64_t amb);
void do_seccomp(struct child_ctx *c, const struct ocirun_arg *bpf, unsigned int flags, int notify);
void do_find_exec(struct child_ctx *c, const char *argv0, const char *path);
void do_wait_start(struct child_ctx *c, int lfd);
__attribute__((noreturn)) void do_exec(struct child_ctx *c, const struct ocirun_arg *a, uint32_t nargs);

/* sealed_init.c: the plan in a sealed memfd (or -errno); the clone child's execveat of ocirun-init, whose
 * argv carries the fds, the runtime's pid as the child sees it (0: none visible) and these flags */
enum { INIT_CARRY_CAPS = 1 }; /* born in a new user namespace: capabilities ride the ambient set */
int plan_memfd(const char *plan, size_t len);
__attribute__((noreturn)) void exec_sealed_init(struct child_ctx *c, int plan_fd, long ppid, int flags);
void drop_carried_caps(struct child_ctx *c);

/* spawn.c: what ocirun-init (init_main.c) runs once it has the plan */
__attribute__((noreturn)) void ocirun_init_main(const char *plan, size_t len, int sync_fd);
#endif
