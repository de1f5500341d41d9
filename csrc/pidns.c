/* Entering a pid namespace. setns or unshare of CLONE_NEWPID only names the namespace of our children; we
 * enter it by a fork. The runtime puts off that fork for a namespace that already holds other processes (a
 * container's, when `exec` runs in it or another container joins it): one of them with CAP_SYS_PTRACE could
 * read /proc/<pid>/root of anything that appears there, so nothing of ours may appear before it is out of
 * the host's filesystem (after its mount namespace join, or after pivot_root). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

void fork_into_pidns(struct child_ctx *c) {
  int p[2];
  char ok = 1;
  if (pipe2(p, O_CLOEXEC) < 0) die(c, errno, "fork into the pid namespace");
  /* CLONE_PARENT: the runtime stays the parent, so `run` and `exec` can wait for the new process and
   * pdeathsig still means "the runtime". */
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT, 0, 0, 0, 0);
  if (pid < 0) die(c, errno, "fork into the pid namespace");
  if (pid > 0) {
    /* Report the new pid (the runtime reaps us and follows it), then let it go on: so the runtime always
     * knows it before it hears from it, and it never carries on unknown if we died before the report. */
    if (send_msg(c->sync_fd, MSG_PID, pid, NULL, 0) == 0) {
      ssize_t w = write(p[1], &ok, 1);
      (void)w;
    }
    _exit(0);
  }
  close(p[1]);
  ssize_t n;
  do n = read(p[0], &ok, 1); while (n < 0 && errno == EINTR);
  close(p[0]);
  if (n != 1) _exit(1);
  if (c->pidns_pending) close(c->pidns_fd);
  c->pidns_pending = 0;
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* a fork clears it; dumpable off is inherited */
  /* The runtime may have died before the signal was armed: its end of the sync socket is closed then. */
  struct pollfd pf = {.fd = c->sync_fd, .events = POLLRDHUP};
  if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLRDHUP | POLLERR))) _exit(1);
}

void join_pidns(struct child_ctx *c, int fd, const char *path) {
  if (setns(fd, CLONE_NEWPID) < 0) die(c, errno, "setns%s%s", path ? " " : "", path ? path : "");
  if (c->pidns_pending) close(c->pidns_fd);
  c->pidns_fd = fd; /* kept for a proc mount before the fork */
  c->pidns_pending = 1;
}

int mount_proc_for_children(struct child_ctx *c, const char *src, const char *target, const char *dst,
                            unsigned long flags, const char *data) {
  char opts[4200];
  int n = snprintf(opts, sizeof opts, "pidns=/proc/self/fd/%d%s%s", c->pidns_fd, *data ? "," : "", data);
  if (n < 0 || n >= (int)sizeof opts) die(c, ENAMETOOLONG, "mount options %s", data);
  if (mount(*src ? src : "proc", target, "proc", flags & ~MS_REMOUNT, opts) == 0) return 1;
  if (errno != EINVAL) die(c, errno, "mount %s (proc) on %s", src, dst);
  /* A kernel without pidns= (procfs has it since 2025: this host's 6.18 does, Debian 12's 6.1 does not):
   * enter the namespace now and mount there. What follows until pivot_root is then visible in it with the
   * host's root, as the whole setup is with runc. */
  fork_into_pidns(c);
  return 0;
}
