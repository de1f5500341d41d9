/* Everything the child does to the filesystem: every path inside the rootfs is resolved with
 * openat2(RESOLVE_IN_ROOT) so a hostile rootfs (symlinks to / or to host paths) can never make us
 * mount or write outside it; mounts then target /proc/self/fd/N of the resolved fd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"
#include "ocirun.h"

#ifndef MOUNT_ATTR_SIZE_VER0
#define MOUNT_ATTR_SIZE_VER0 32
#endif

static int openat2_in_root(int root, const char *path, int flags, unsigned long long resolve) {
  struct open_how how = {.flags = (unsigned long long)(flags | O_CLOEXEC),
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve};
  while (*path == '/') path++;
  if (!*path) path = ".";
  return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

/* Resolve `path` inside the root, creating missing directories (and the last component as a file if
 * want_file) when `create` is set; symlinks are followed by hand, always relative to the root, as
 * securejoin's MkdirAll does. Returns an O_PATH fd, or -1 with *err set. */
#define MAX_DEPTH 256
static int resolve_flags(int root, const char *path, int create, int want_file, unsigned long long resolve, int *err) {
  int fd = openat2_in_root(root, path, O_PATH, resolve);
  if (fd >= 0 || !create || errno != ENOENT) {
    *err = fd < 0 ? errno : 0;
    return fd;
  }
  /* The queue of components still to walk; symlink targets are spliced in front. */
  char queue[8192], target[4096];
  size_t qlen = strlen(path);
  if (qlen >= sizeof queue) {
    *err = ENAMETOOLONG;
    return -1;
  }
  memcpy(queue, path, qlen + 1);
  int stack[MAX_DEPTH], depth = 0, links = 0;
  stack[0] = openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (stack[0] < 0) {
    *err = errno;
    return -1;
  }
  char *q = queue;
  for (;;) {
    while (*q == '/') q++;
    if (!*q) break;
    char *slash = strchr(q, '/');
    size_t clen = slash ? (size_t)(slash - q) : strlen(q);
    char comp[256];
    if (clen >= sizeof comp) {
      *err = ENAMETOOLONG;
      goto fail;
    }
    memcpy(comp, q, clen);
    comp[clen] = 0;
    q += clen;
    int last = 1;
    for (const char *r = q; *r; r++)
      if (*r != '/') {
        last = 0;
        break;
      }
    if (!strcmp(comp, ".")) continue;
    if (!strcmp(comp, "..")) { /* never above the root */
      if (depth > 0) close(stack[depth--]);
      continue;
    }
    int cfd = openat(stack[depth], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0 && errno == ENOENT) {
      int r = (last && want_file) ? mknodat(stack[depth], comp, S_IFREG | 0644, 0) : mkdirat(stack[depth], comp, 0755);
      if (r < 0 && errno != EEXIST) {
        *err = errno;
        goto fail;
      }
      cfd = openat(stack[depth], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (cfd < 0) {
      *err = errno;
      goto fail;
    }
    struct stat st;
    if (fstat(cfd, &st) < 0) {
      *err = errno;
      close(cfd);
      goto fail;
    }
    if (S_ISLNK(st.st_mode)) {
      if (resolve & RESOLVE_NO_SYMLINKS) {
        *err = ELOOP;
        close(cfd);
        goto fail;
      }
      ssize_t n = readlinkat(cfd, "", target, sizeof target - 1);
      close(cfd);
      if (n < 0 || ++links > 40) {
        *err = n < 0 ? errno : ELOOP;
        goto fail;
      }
      target[n] = 0;
      size_t rest = strlen(q);
      if ((size_t)n + 1 + rest >= sizeof queue) {
        *err = ENAMETOOLONG;
        goto fail;
      }
      /* queue := target + "/" + rest (rest may overlap queue: move it first) */
      memmove(queue + n + 1, q, rest + 1);
      memcpy(queue, target, (size_t)n);
      queue[n] = '/';
      q = queue;
      if (target[0] == '/')
        while (depth > 0) close(stack[depth--]);
      continue;
    }
    if (depth + 1 >= MAX_DEPTH) {
      *err = ENAMETOOLONG;
      close(cfd);
      goto fail;
    }
    stack[++depth] = cfd;
  }
  *err = 0;
  fd = stack[depth];
  for (int i = 0; i < depth; i++) close(stack[i]);
  return fd;
fail:
  while (depth >= 0) close(stack[depth--]);
  return -1;
}

int resolve_in_root(int root_fd, const char *path, int create, int want_file, int *err) {
  return resolve_flags(root_fd, path, create, want_file, 0, err);
}

static void fdpath(char *buf, size_t n, int fd) { snprintf(buf, n, "/proc/self/fd/%d", fd); }

/* MS_* flags a bind remount must keep (the kernel refuses to clear locked ones). */
static unsigned long kept_flags(int fd) {
  struct statvfs sv;
  unsigned long f = 0;
  if (fstatvfs(fd, &sv) < 0) return 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
  return f;
}

void do_propagate_root(struct child_ctx *c, unsigned long flags) {
  if (mount(NULL, "/", NULL, flags, NULL) < 0) die(c, errno, "set propagation of /");
}

/* Give the mount that holds `path` the propagation `flags`, walking up from path to the first mount point
 * (EINVAL: not a mount point), as runc's rootfsParentMountPropagation. */
static void propagate_parent_mount(struct child_ctx *c, const char *path, unsigned long flags) {
  char p[4096];
  size_t n = strlen(path);
  if (n >= sizeof p) die(c, ENAMETOOLONG, "rootfs %s", path);
  memcpy(p, path, n + 1);
  for (;;) {
    if (mount(NULL, p, NULL, flags, NULL) == 0) return;
    if (errno != EINVAL || !strcmp(p, "/")) die(c, errno, "set propagation of the mount holding %s", path);
    char *s = strrchr(p, '/');
    if (s == p) s[1] = 0;
    else *s = 0;
  }
}

void do_rootfs(struct child_ctx *c, const char *path, int bind, unsigned long parent_prop) {
  if (parent_prop) propagate_parent_mount(c, path, parent_prop);
  if (bind && mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) die(c, errno, "bind mount rootfs %s", path);
  c->root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (c->root_fd < 0) die(c, errno, "open rootfs %s", path);
}

static int reopen(struct child_ctx *c, const char *dst, unsigned long long resolve) {
  int err;
  int fd = resolve_flags(c->root_fd, dst, 0, 0, resolve, &err);
  if (fd < 0) die(c, err, "reopen mount point %s", dst);
  return fd;
}

/* The source of a bind we may not reach (a user namespace's root, a 0700 parent): the runtime opens it inside
 * our mount namespace with its own privileges and sends the fd (runc's procMountPlease). Binding from that
 * fd copies our namespace's mount of it, whose flags stay locked as the host set them. */
static int source_from_runtime(struct child_ctx *c) {
  struct ocirun_msg m;
  if (c->sync_fd < 0) return errno = EACCES, -1;
  if (send_msg(c->sync_fd, MSG_MOUNT, 0, c->label, (uint32_t)strlen(c->label)) < 0) die(c, errno, "ask the runtime for the source");
  int fd = ocirun_recv_fd(c->sync_fd, (char *)&m, sizeof m);
  if (fd < 0 || m.type != MSG_GO) _exit(1); /* the runtime gave up: it reports why */
  return fd;
}

/* args[9], args[10] (see plan.h): MOUNT_SRC_ASK, the runtime's help when our own bind of the path is refused;
 * MOUNT_SRC_FD, the id-mapped copy the runtime made before the clone (ocirun/mountsrc.py), attached as it is. */
static int bind_source(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n, int dst_fd, const char *target) {
  const char *src = a[0].s;
  unsigned long rec = (unsigned long)a[3].i & MS_REC;
  int src_fd = n > 10 ? (int)a[9].i : -1, mode = n > 10 ? (int)a[10].i : 0;
  if (mode == MOUNT_SRC_FD) {
    int r = (int)syscall(SYS_move_mount, src_fd, "", dst_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
    int e = errno;
    close(src_fd);
    errno = e;
    return r;
  }
  int r = mount(src, target, NULL, MS_BIND | rec, NULL);
  if (r == 0 || mode != MOUNT_SRC_ASK || (errno != EACCES && errno != EPERM)) return r;
  int fd = source_from_runtime(c);
  char p[64];
  fdpath(p, sizeof p, fd);
  r = mount(p, target, NULL, MS_BIND | rec, NULL);
  int e = errno;
  close(fd);
  errno = e;
  return r;
}

void do_mount(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  const char *src = a[0].s, *dst = a[1].s, *fstype = a[2].s, *data = a[4].s;
  unsigned long flags = (unsigned long)a[3].i, prop = (unsigned long)a[5].i;
  int kind = (int)a[6].i;
  uint64_t attr_set = (uint64_t)a[7].i, attr_clr = (uint64_t)a[8].i;
  /* proc and sysfs never land on a symlink: that is how a rootfs would redirect them (CVE-2019-16884 class). */
  unsigned long long resolve =
      (kind == MOUNT_FS && (!strcmp(fstype, "proc") || !strcmp(fstype, "sysfs"))) ? RESOLVE_NO_SYMLINKS : 0;
  int err, fd = resolve_flags(c->root_fd, dst, 1, kind == MOUNT_BIND_FILE, resolve, &err);
  char target[64];
  if (fd < 0) die(c, err, "mount point %s", dst);
  fdpath(target, sizeof target, fd);
  if (kind != MOUNT_FS) {
    if (bind_source(c, a, n, fd, target) < 0) die(c, errno, "bind mount %s on %s", src, dst);
    close(fd);
    unsigned long rest = flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (rest) {
      fd = reopen(c, dst, 0);
      fdpath(target, sizeof target, fd);
      if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | rest | (kept_flags(fd) & ~MS_RDONLY & ~(MS_NOATIME|MS_NODIRATIME|MS_RELATIME)), NULL) < 0 &&
          mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | rest | kept_flags(fd), NULL) < 0)
        die(c, errno, "remount %s", dst);
      close(fd);
    }
  } else {
    /* proc shows its mounter's pid namespace: before we enter one we join (PIDNS_FORK), name that one */
    int done = c->pidns_pending && !strcmp(fstype, "proc") && mount_proc_for_children(c, src, target, dst, flags, data);
    if (!done && mount(*src ? src : fstype, target, fstype, flags & ~MS_REMOUNT, *data ? data : NULL) < 0)
      die(c, errno, "mount %s (%s) on %s", src, fstype, dst);
    close(fd);
  }
  if (prop || attr_set || attr_clr) {
    fd = reopen(c, dst, 0);
    fdpath(target, sizeof target, fd);
    if (prop && mount(NULL, target, NULL, prop, NULL) < 0) die(c, errno, "set propagation of %s", dst);
    if (attr_set || attr_clr) {
      struct mount_attr ma = {.attr_set = attr_set, .attr_clr = attr_clr};
      if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof ma) < 0)
        die(c, errno, "set recursive mount attributes of %s", dst);
    }
    close(fd);
  }
}

static int parent_of(struct child_ctx *c, const char *path, const char **base) {
  char buf[4096];
  size_t n = strlen(path);
  if (n >= sizeof buf) die(c, ENAMETOOLONG, "%s", path);
  memcpy(buf, path, n + 1);
  char *s = strrchr(buf, '/');
  int err, fd;
  if (s) {
    *s = 0;
    *base = path + (s - buf) + 1;
    fd = resolve_in_root(c->root_fd, buf, 1, 0, &err);
  } else {
    *base = path;
    fd = resolve_in_root(c->root_fd, ".", 0, 0, &err);
  }
  if (fd < 0) die(c, err, "parent directory of %s", path);
  return fd;
}

void do_mknod(struct child_ctx *c, const struct ocirun_arg *a) {
  const char *path = a[0].s, *base;
  mode_t mode = (mode_t)a[1].i;
  dev_t dev = makedev((unsigned)a[2].i, (unsigned)a[3].i);
  int pfd = parent_of(c, path, &base);
  /* mknodat needs a real directory fd: reopen the O_PATH one. */
  char p[64];
  fdpath(p, sizeof p, pfd);
  int dfd = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  close(pfd);
  if (dfd < 0) die(c, errno, "open parent of %s", path);
  /* Made with its mode exactly (no umask), then owned through an fd of the node itself: nothing is changed by
   * name afterwards, where a chmod would follow a symlink someone else who can write the rootfs put there. */
  mode_t umask_was = umask(0);
  int r = mknodat(dfd, base, mode, dev);
  if (r < 0 && errno == EEXIST && unlinkat(dfd, base, 0) == 0) r = mknodat(dfd, base, mode, dev);
  int e = errno;
  umask(umask_was);
  if (r < 0) die(c, e, "mknod %s", path);
  int nfd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (nfd < 0 || fstat(nfd, &st) < 0) die(c, errno, "open %s", path);
  if ((st.st_mode & S_IFMT) != (mode & S_IFMT) || (!S_ISFIFO(mode) && st.st_rdev != dev))
    die(c, EEXIST, "mknod %s: replaced while it was made", path);
  if (fchownat(nfd, "", (uid_t)a[4].i, (gid_t)a[5].i, AT_EMPTY_PATH) < 0) die(c, errno, "chown %s", path);
  close(nfd);
  close(dfd);
}

void do_bind_dev(struct child_ctx *c, const char *host, const char *path) {
  int err, fd = resolve_in_root(c->root_fd, path, 1, 1, &err);
  char target[64];
  if (fd < 0) die(c, err, "device %s", path);
  fdpath(target, sizeof target, fd);
  if (mount(host, target, NULL, MS_BIND, NULL) < 0) die(c, errno, "bind mount device %s", host);
  close(fd);
}

void do_symlink(struct child_ctx *c, const char *target, const char *path) {
  const char *base;
  int pfd = parent_of(c, path, &base);
  char p[64];
  fdpath(p, sizeof p, pfd);
  int dfd = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  close(pfd);
  if (dfd < 0) die(c, errno, "open parent of %s", path);
  if (symlinkat(target, dfd, base) < 0 && errno != EEXIST) die(c, errno, "symlink %s", path);
  close(dfd);
}

void do_mask(struct child_ctx *c, const char *path) {
  int err, fd = resolve_in_root(c->root_fd, path, 0, 0, &err);
  struct stat st;
  char target[64];
  if (fd < 0) {
    if (err == ENOENT) return;
    die(c, err, "masked path %s", path);
  }
  if (fstat(fd, &st) < 0) die(c, errno, "stat masked path %s", path);
  fdpath(target, sizeof target, fd);
  if (S_ISDIR(st.st_mode)) {
    if (mount("tmpfs", target, "tmpfs", MS_RDONLY, NULL) < 0) die(c, errno, "mask %s", path);
  } else if (mount("/dev/null", target, NULL, MS_BIND, NULL) < 0) {
    die(c, errno, "mask %s", path);
  }
  close(fd);
}

void do_readonly(struct child_ctx *c, const char *path) {
  int err, fd = resolve_in_root(c->root_fd, path, 0, 0, &err);
  char target[64];
  if (fd < 0) {
    if (err == ENOENT) return;
    die(c, err, "readonly path %s", path);
  }
  fdpath(target, sizeof target, fd);
  if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0) die(c, errno, "bind %s", path);
  close(fd);
  fd = reopen(c, path, 0);
  fdpath(target, sizeof target, fd);
  if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(fd), NULL) < 0)
    die(c, errno, "make %s read-only", path);
  close(fd);
}

/* Only this mount's read-only flag changes (mount_setattr without AT_RECURSIVE); the old remount, with
 * the flags the kernel keeps locked, where mount_setattr is missing. */
void do_remount_ro(struct child_ctx *c, const char *path) {
  int fd = reopen(c, path, 0);
  struct mount_attr ma = {.attr_set = MOUNT_ATTR_RDONLY};
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &ma, sizeof ma) < 0) {
    char target[64];
    if (errno != ENOSYS) die(c, errno, "make %s read-only", path);
    fdpath(target, sizeof target, fd);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(fd), NULL) < 0)
      die(c, errno, "make %s read-only", path);
  }
  close(fd);
}

/* mountinfo's octal escapes (\040 for a space...) undone in place. */
static void unescape(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
      *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
      s += 3;
    } else {
      *o++ = *s;
    }
  }
  *o = 0;
}

/* The mount points of full (root "/") proc and sysfs mounts outside `rootfs`, NUL-separated into out. */
static size_t full_proc_sysfs_mounts(struct child_ctx *c, const char *rootfs, char *out, size_t cap) {
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(c, errno, "open /proc/self/mountinfo");
  static char buf[65536];
  size_t have = 0, used = 0, rlen = strlen(rootfs);
  int eof = 0;
  while (!eof) {
    ssize_t r;
    do r = read(fd, buf + have, sizeof buf - 1 - have); while (r < 0 && errno == EINTR);
    if (r < 0) die(c, errno, "read /proc/self/mountinfo");
    if (r == 0) eof = 1;
    have += (size_t)r;
    size_t start = 0;
    char *nl;
    while ((nl = memchr(buf + start, '\n', have - start))) {
      *nl = 0;
      /* id parent major:minor root mountpoint opts [optional...] - fstype source superopts */
      char *f[5], *p = buf + start, *sep = strstr(p, " - ");
      int k = 0;
      for (char *t = p; k < 5 && t && *t; k++) {
        f[k] = t;
        t = strchr(t, ' ');
        if (t) *t++ = 0;
      }
      start = (size_t)(nl - buf) + 1;
      if (k < 5 || !sep || strcmp(f[3], "/")) continue;
      char *fstype = sep + 3, *sp = strchr(fstype, ' ');
      if (sp) *sp = 0;
      if (strcmp(fstype, "proc") && strcmp(fstype, "sysfs")) continue;
      unescape(f[4]);
      size_t n = strlen(f[4]);
      if (!strncmp(f[4], rootfs, rlen) && (f[4][rlen] == '/' || !f[4][rlen])) continue; /* the container's */
      if (used + n + 1 > cap) die(c, ENOBUFS, "too many proc/sysfs mounts to hide");
      memcpy(out + used, f[4], n + 1);
      used += n + 1;
    }
    if (start == 0 && have == sizeof buf - 1) die(c, ENAMETOOLONG, "a mountinfo line");
    memmove(buf, buf + start, have - start);
    have -= start;
  }
  close(fd);
  return used;
}

/* --no-pivot: the host's own proc and sysfs mounts stay in our mount namespace behind the chroot, and while
 * a full unmasked procfs is visible there the kernel lets a user namespace of the container mount a fresh
 * one (unshare -mrpf; mount -t proc). Detach them first (a tmpfs over one we may not unmount), as runc's
 * msMoveRoot; slave first so the unmount can't reach the host. */
static void hide_host_proc_sysfs(struct child_ctx *c) {
  static char paths[65536];
  char rootfs[4096], fdp[64];
  fdpath(fdp, sizeof fdp, c->root_fd);
  ssize_t n = readlink(fdp, rootfs, sizeof rootfs - 1);
  if (n < 0) die(c, errno, "rootfs path");
  rootfs[n] = 0;
  size_t used = full_proc_sysfs_mounts(c, rootfs, paths, sizeof paths);
  for (size_t off = 0; off < used; off += strlen(paths + off) + 1) {
    const char *p = paths + off;
    if (mount(NULL, p, NULL, MS_SLAVE | MS_REC, NULL) < 0) {
      if (errno == ENOENT) continue; /* gone with a parent we detached already */
      die(c, errno, "make %s rslave", p);
    }
    if (umount2(p, MNT_DETACH) < 0) {
      if (errno != EINVAL && errno != EPERM) die(c, errno, "unmount %s", p);
      if (mount("tmpfs", p, "tmpfs", 0, NULL) < 0) die(c, errno, "cover %s", p);
    }
  }
}

void do_pivot(struct child_ctx *c, int mode) {
  if (mode == PIVOT_MOVE) hide_host_proc_sysfs(c);
  if (fchdir(c->root_fd) < 0) die(c, errno, "chdir to rootfs");
  if (mode == PIVOT_CHROOT) { /* no mount namespace: nothing to move */
    if (chroot(".") < 0) die(c, errno, "chroot");
  } else if (mode == PIVOT_MOVE) {
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) die(c, errno, "move rootfs to /");
    if (chroot(".") < 0) die(c, errno, "chroot");
  } else {
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0) die(c, errno, "open /");
    if (syscall(SYS_pivot_root, ".", ".") < 0) die(c, errno, "pivot_root");
    if (fchdir(oldroot) < 0) die(c, errno, "chdir to old root");
    /* Stop our unmount from propagating back to the host. */
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) die(c, errno, "make old root rslave");
    if (umount2(".", MNT_DETACH) < 0) die(c, errno, "unmount old root");
    close(oldroot);
  }
  if (chdir("/") < 0) die(c, errno, "chdir /");
  close(c->root_fd);
  c->root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (c->root_fd < 0) die(c, errno, "open new root");
}

void do_propagate_newroot(struct child_ctx *c, unsigned long flags) {
  if (mount(NULL, "/", NULL, flags, NULL) < 0) die(c, errno, "set rootfs propagation");
}

void do_root_readonly(struct child_ctx *c) {
  int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  unsigned long kept = fd >= 0 ? kept_flags(fd) : 0;
  if (fd >= 0) close(fd);
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, NULL) < 0) die(c, errno, "make rootfs read-only");
}

void do_sysctl(struct child_ctx *c, const char *key, const char *value) {
  char path[512];
  int n = snprintf(path, sizeof path, "proc/sys/%s", key);
  if (n < 0 || n >= (int)sizeof path) die(c, ENAMETOOLONG, "sysctl %s", key);
  /* The dotted form (sysctl.d(5)): "." separates, a "/" stands for a "." in a name (eth0/100 is eth0.100). */
  for (char *p = path + 9; *p; p++)
    *p = *p == '.' ? '/' : *p == '/' ? '.' : *p;
  struct open_how how = {.flags = O_WRONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS};
  int fd = (int)syscall(SYS_openat2, c->root_fd, path, &how, sizeof how);
  if (fd < 0) die(c, errno, "sysctl %s", key);
  if (write(fd, value, strlen(value)) < 0) die(c, errno, "sysctl %s=%s", key, value);
  close(fd);
}
