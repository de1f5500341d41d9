/* ocirun-init: the program every process the runtime starts runs first (the container's init and `exec`
 * children), executed out of a sealed memfd by the clone child (sealed_init.c). Built statically on its own
 * (ocirun/_build_c.py), never part of the cffi module.
 *
 * argv: ocirun-init SYNC_FD PLAN_FD PPID FLAGS. The fds are the clone child's, inherited through the execve:
 * the sync socket to the runtime and the sealed memfd holding the plan; PPID is the runtime's pid as the
 * child saw it (0 in a new pid namespace); FLAGS are INIT_* (internal.h). The environment is empty. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#ifdef OCIRUN_ERRTAB
/* The runtime's messages name errors in its own C library's words (glibc: "Too many levels of symbolic
 * links", musl: "Symbolic link loop"); _build_c.py writes that library's table for a musl build, and this
 * strerror replaces musl's. */
#include OCIRUN_ERRTAB
char *strerror(int e) {
  static char unknown[32];
  if (e >= 0 && e < (int)(sizeof errtab / sizeof errtab[0]) && errtab[e]) return (char *)errtab[e];
  snprintf(unknown, sizeof unknown, "Unknown error %d", e);
  return unknown;
}
#endif

static long number(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  return *s && !*end ? v : -1;
}

int main(int argc, char **argv) {
  /* The execve made us dumpable again; nobody in the container may read our memory or open our exe. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  prctl(PR_SET_NAME, "ocirun-init", 0, 0, 0);
  if (argc != 5) {
    static const char msg[] = "ocirun-init: the container init of ocirun; only the runtime starts it\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    return 1;
  }
  struct child_ctx c = {.sync_fd = (int)number(argv[1]), .root_fd = -1, .start_conn = -1, .cwd_fd = -1};
  int plan_fd = (int)number(argv[2]);
  long ppid = number(argv[3]), flags = number(argv[4]);
  if (flags > 0 && (flags & INIT_CARRY_CAPS)) drop_carried_caps(&c);
  /* An execve keeps the parent-death signal, but the runtime may have died before the clone child armed it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != ppid) _exit(1);
  struct stat st;
  if (plan_fd < 0 || fstat(plan_fd, &st) < 0) die(&c, plan_fd < 0 ? EBADF : errno, "read the plan");
  void *plan = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, plan_fd, 0);
  if (plan == MAP_FAILED) die(&c, errno, "read the plan");
  close(plan_fd);
  ocirun_init_main(plan, (size_t)st.st_size, c.sync_fd);
}
