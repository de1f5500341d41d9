/* tmpcopyup: a tmpfs mounted over a directory of the rootfs starts with that directory's contents (runc's
 * EXT_COPYUP; podman --read-only puts such tmpfs on /tmp, /var/tmp, /run). The directory is opened before the
 * mount: the fd keeps seeing what the tmpfs then hides, so no scratch mount point is needed. Every walk is
 * relative to fds opened with O_NOFOLLOW: a symlink in the rootfs is copied as a symlink, never followed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

static int copy_file(int sfd, int dfd, const char *name, const struct stat *st) {
  int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return -1;
  int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 07777);
  if (out < 0) {
    close(in);
    return -1;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while ((n = read(in, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0) {
        rc = -1;
        break;
      }
      off += w;
    }
    if (rc) break;
  }
  if (n < 0) rc = -1;
  if (!rc && (fchown(out, st->st_uid, st->st_gid) < 0 || fchmod(out, st->st_mode & 07777) < 0)) rc = -1;
  int e = errno;
  close(in);
  close(out);
  errno = e;
  return rc;
}

/* Copy the entries of directory sfd into directory dfd; returns -1 with errno and the failing name in what[256]. */
static int copy_tree(int sfd, int dfd, char *what, int depth) {
  if (depth > 64) return errno = ELOOP, -1;
  int rfd = openat(sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = rfd >= 0 ? fdopendir(rfd) : NULL;
  if (!d) {
    if (rfd >= 0) close(rfd);
    return -1;
  }
  struct dirent *de;
  int rc = 0;
  while (!rc && (errno = 0, de = readdir(d))) {
    const char *n = de->d_name;
    if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
    struct stat st;
    if (fstatat(sfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      rc = -1;
    } else if (S_ISDIR(st.st_mode)) {
      int s2 = -1, d2 = -1;
      if (mkdirat(dfd, n, 0700) < 0 ||
          (s2 = openat(sfd, n, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
          (d2 = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
          copy_tree(s2, d2, what, depth + 1) < 0 || fchown(d2, st.st_uid, st.st_gid) < 0 ||
          fchmod(d2, st.st_mode & 07777) < 0)
        rc = -1;
      int e = errno;
      if (s2 >= 0) close(s2);
      if (d2 >= 0) close(d2);
      errno = e;
    } else if (S_ISREG(st.st_mode)) {
      rc = copy_file(sfd, dfd, n, &st);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t len = readlinkat(sfd, n, target, sizeof target - 1);
      if (len < 0) {
        rc = -1;
      } else {
        target[len] = 0;
        rc = symlinkat(target, dfd, n) < 0 || fchownat(dfd, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0;
        rc = -rc;
      }
    } else {
      rc = mknodat(dfd, n, st.st_mode, st.st_rdev) < 0 ||
           fchownat(dfd, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
           fchmodat(dfd, n, st.st_mode & 07777, 0) < 0;
      rc = -rc;
    }
  }
  if (!rc && errno) rc = -1; /* readdir failed */
  int e = errno;
  if (rc && de && !*what) snprintf(what, 256, "%s", de->d_name);
  closedir(d);
  errno = e;
  return rc;
}

void do_mount_copyup(struct child_ctx *c, const struct ocirun_arg *a) {
  const char *dst = a[1].s, *data = a[4].s;
  int err;
  int lower = resolve_in_root(c->root_fd, dst, 0, 0, &err); /* missing: nothing to copy, do_mount creates it */
  struct stat st;
  if (lower >= 0 && (fstat(lower, &st) < 0 || !S_ISDIR(st.st_mode))) {
    close(lower);
    lower = -1;
  }
  do_mount(c, a, 9);
  if (lower < 0) return;
  int upper = resolve_in_root(c->root_fd, dst, 0, 0, &err);
  if (upper < 0) die(c, err, "tmpcopyup: reopen %s", dst);
  int top = openat(upper, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0) die(c, errno, "tmpcopyup: open %s", dst);
  char what[256] = "";
  if (copy_tree(lower, top, what, 0) < 0) die(c, errno, "tmpcopyup: copy %s/%s", dst, what);
  /* As runc: the tmpfs root takes the directory's owner, and its mode unless the mount options set one. */
  if (fchown(top, st.st_uid, st.st_gid) < 0) die(c, errno, "tmpcopyup: chown %s", dst);
  if (!strstr(data, "mode=") && fchmod(top, st.st_mode & 07777) < 0) die(c, errno, "tmpcopyup: chmod %s", dst);
  close(top);
  close(upper);
  close(lower);
}
