/* Bind-mount sources the runtime makes, with its own privileges, for a child that cannot make them itself
 * (called from ocirun/mountsrc.py): an id-mapped detached copy (open_tree(OPEN_TREE_CLONE) +
 * mount_setattr(MOUNT_ATTR_IDMAP) through a user namespace that exists only to carry the mapping) the child
 * attaches with move_mount; or an O_PATH fd of a source opened inside the child's mount namespace. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mountsrc.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif

int ocirun_open_tree(const char *path, int recursive) {
  unsigned int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
  int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, flags);
  return fd < 0 ? -errno : fd;
}

int ocirun_idmap_mount(int tree_fd, int userns_fd, int recursive) {
  struct mount_attr ma = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
  if (syscall(SYS_mount_setattr, tree_fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &ma, sizeof ma) < 0)
    return -errno;
  return 0;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  int e = errno;
  close(fd);
  if (w < 0) return -e;
  return (size_t)w == n ? 0 : -EIO;
}

/* A child in a new user namespace that only waits for the pipe to close; we write its maps, keep a handle
 * on the namespace, and let it go. */
int ocirun_userns_fd(const char *uid_map, const char *gid_map) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) return -errno;
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    char b;
    close(pfd[1]);
    while (read(pfd[0], &b, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  int e = errno;
  close(pfd[0]);
  if (pid < 0) {
    close(pfd[1]);
    return -e;
  }
  char path[64];
  int r;
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
  r = write_file(path, uid_map);
  if (r == 0) {
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    r = write_file(path, gid_map);
  }
  if (r == 0) {
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    r = open(path, O_RDONLY | O_CLOEXEC);
    if (r < 0) r = -errno;
  }
  close(pfd[1]);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  return r;
}

int ocirun_open_in_root(int root_fd, const char *path) {
  struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  while (*path == '/') path++;
  int fd = (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how, sizeof how);
  return fd < 0 ? -errno : fd;
}
