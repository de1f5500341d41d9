/* What Python calls to take the seccomp listener fd from the container's init (see seccomp_fd.cdef). */
#ifndef OCIRUN_SECCOMP_FD_H
#define OCIRUN_SECCOMP_FD_H

/* A copy of process `pid`'s fd `fd` (pidfd_getfd), or -errno. */
int ocirun_pidfd_getfd(int pid, int fd);
#endif
