/* The runtime's side of the seccomp notify handover: it copies the listener fd out of the init with
 * pidfd_getfd, so the init needs no sendmsg(2) once its filter is loaded (a profile may notify sendmsg: a
 * notified syscall before the listener has the fd would wait forever; runc does the same since 1.2). */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp_fd.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

int ocirun_pidfd_getfd(int pid, int fd) {
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pfd < 0) return -errno;
  int r = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
  int err = errno;
  close(pfd);
  return r < 0 ? -err : r;
}
