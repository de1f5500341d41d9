/* What Python calls (see ocirun.cdef). */
#ifndef OCIRUN_H
#define OCIRUN_H
#include <stddef.h>

/* Clone the container's init (or an exec'd process) and let it carry out `plan`.
 * clone_flags: the namespaces created by clone itself; cgroup_fd >= 0 uses clone3(CLONE_INTO_CGROUP).
 * Returns the child's pid (> 0) with *sync_fd set to the parent's end of the sync socket, or -errno. */
int ocirun_spawn(const char *plan, size_t len, unsigned long clone_flags, int cgroup_fd, int *sync_fd);

/* Parse a plan without running it; 0 if well formed, else -1 and the step index in *bad_step. */
int ocirun_check_plan(const char *plan, size_t len, int *bad_step);

/* Send / receive a file descriptor over a unix socket (console socket, seccomp listener). */
int ocirun_send_fd(int sock, int fd, const char *data, size_t len);
int ocirun_recv_fd(int sock, char *buf, size_t buflen);
#endif
