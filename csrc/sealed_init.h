/* The container's init is ocirun-init (csrc/init_main.c), a small static program executed out of a sealed
 * memfd: /proc/<pid>/exe of every process the runtime starts is then a file nobody can write, not a host
 * binary (CVE-2019-5736 class), and a waiting init holds its own few pages, not a copy of the Python heap.
 * Called from ocirun/executor.py through cffi; see sealed_init.cdef. */
#ifndef OCIRUN_SEALED_INIT_H
#define OCIRUN_SEALED_INIT_H

/* Copy the init program at `path` into a memfd sealed against any change (made once per process; later
 * calls return the same fd, whatever `path`; NULL only asks for it). Returns the fd, or -errno. Where the
 * kernel refuses executable memfds (vm.memfd_noexec=2) the copy is a read-only file of a private tmpfs
 * instead; when that fails too, *fallback_err (if given) gets its errno. */
int ocirun_seal_init(const char *path, int *fallback_err);

#endif
