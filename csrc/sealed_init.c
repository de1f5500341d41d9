/* The sealed init, runtime side: a memfd copy of ocirun-init that nobody can change, the plan handed over in
 * a second memfd, and the clone child's execveat of the first.
 *
 * Why: the clone child used to run the plan as a copy of the runtime process, so /proc/<init>/exe was the
 * host's ocirun binary (a process given CAP_SYS_PTRACE could open it for writing, CVE-2019-5736 class) and a
 * created container kept a copy-on-write image of the Python heap (~3.4 MiB private). Now the child's first
 * act is an execveat of the memfd: its exe is a sealed copy (F_SEAL_WRITE|GROW|SHRINK|SEAL, and EXEC where
 * the kernel has it), its memory that of a ~100 KiB static program. The copy is made once per runtime
 * process, so every child that process starts (init or `exec`) shares it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "sealed_init.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#define CONTENT_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static int init_fd = -1;

static int memfd(const char *name, unsigned int flags) { return (int)syscall(SYS_memfd_create, name, flags); }

/* Kernels before 6.3 know neither MFD_EXEC nor MFD_NOEXEC_SEAL (EINVAL); since, vm.memfd_noexec decides
 * what a memfd without them may do, so say what we want. */
static int memfd_with(const char *name, unsigned int exec_flag) {
  int fd = memfd(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | exec_flag);
  if (fd < 0 && errno == EINVAL) fd = memfd(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  return fd;
}

/* Seal the content (and the mode, where F_SEAL_EXEC exists: 6.3+) and check that it took. */
static int seal(int fd) {
  if (fcntl(fd, F_ADD_SEALS, CONTENT_SEALS | F_SEAL_EXEC) < 0 &&
      (errno != EINVAL || fcntl(fd, F_ADD_SEALS, CONTENT_SEALS) < 0))
    return -errno;
  int got = fcntl(fd, F_GET_SEALS);
  if (got < 0) return -errno;
  return (got & CONTENT_SEALS) == CONTENT_SEALS ? 0 : -EPERM;
}

static int write_all(int fd, const char *p, size_t len) {
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : -EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int copy_file(int dst, int src, off_t size) {
  off_t off = 0;
  while (off < size) {
    ssize_t n = sendfile(dst, src, &off, (size_t)(size - off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? -errno : -EIO; /* the file shrank under us */
  }
  return 0;
}

/* The fallback where vm.memfd_noexec=2 forbids an executable memfd: the copy goes into a tmpfs of our own
 * that is mounted nowhere (fsopen, fsmount: a detached mount no other process can reach), whose superblock
 * and mount are then made read-only. Nobody can write the file again, whatever their capabilities (EROFS
 * where a memfd gives EPERM), and it is never the host's file (a read-only bind mount of ocirun-init, or an
 * overlayfs over its directory, would still be: runc's ways). Returns an O_RDONLY fd of the file, or -errno. */
static int tmpfs_copy(int src, off_t size) {
  int fs, mnt = -1, w = -1, pick = -1, fd = -1, r;
  struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
  if ((fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC)) < 0) return -errno;
  if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "nr_inodes", "2", 0) < 0 ||
      syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
      (mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0 ||
      (w = openat(mnt, "ocirun-init", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0555)) < 0) {
    r = -errno;
    goto out;
  }
  r = copy_file(w, src, size);
  if (close(w) < 0 && !r) r = -errno;
  w = -1;
  if (r) goto out;
  /* Read-only: the superblock (reconfigured through fspick), then the mount. */
  if ((pick = (int)syscall(SYS_fspick, mnt, "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC)) < 0 ||
      syscall(SYS_fsconfig, pick, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
      syscall(SYS_fsconfig, pick, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0) < 0 ||
      syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0 ||
      (fd = openat(mnt, "ocirun-init", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
    r = -errno;
    goto out;
  }
  /* Check the guarantee rather than trust it: no open for writing may succeed. */
  int probe = openat(mnt, "ocirun-init", O_WRONLY | O_CLOEXEC);
  r = probe < 0 && errno == EROFS ? 0 : -EPERM;
  if (probe >= 0) close(probe);
out:;
  int fds[] = {fs, mnt, w, pick};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0) close(fds[i]);
  if (r && fd >= 0) close(fd);
  return r ? r : fd;
}

int ocirun_seal_init(const char *path, int *fallback_err) {
  if (init_fd >= 0) return init_fd;
  if (!path) return -ENOEXEC; /* (ocirun_spawn asks for the fd made earlier) */
  int src = open(path, O_RDONLY | O_CLOEXEC), fd = -1, r = 0;
  struct stat st;
  if (src < 0) return -errno;
  if (fstat(src, &st) < 0)
    r = -errno;
  else if (!S_ISREG(st.st_mode) || st.st_size < 64)
    r = -ENOEXEC;
  else if ((fd = memfd_with("ocirun-init", MFD_EXEC)) < 0) {
    r = -errno; /* EACCES: vm.memfd_noexec=2 forbids executable memfds */
    int f = tmpfs_copy(src, st.st_size);
    if (f >= 0) {
      close(src);
      return init_fd = f;
    }
    if (fallback_err) *fallback_err = -f;
  } else if ((r = copy_file(fd, src, st.st_size)) == 0 && fchmod(fd, 0555) < 0)
    r = -errno;
  if (!r) r = seal(fd);
  close(src);
  if (r) {
    if (fd >= 0) close(fd);
    return r;
  }
  init_fd = fd;
  return fd;
}

int plan_memfd(const char *plan, size_t len) {
  int fd = memfd_with("ocirun-plan", MFD_NOEXEC_SEAL), r;
  if (fd < 0) return -errno;
  if ((r = write_all(fd, plan, len)) < 0 || (r = seal(fd)) < 0) {
    close(fd);
    return r;
  }
  return fd;
}

/* Decimal, without stdio: this runs in a raw clone of a possibly threaded process. */
static char *fmt_int(char *buf, size_t n, long v) {
  char *p = buf + n;
  unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
  *--p = 0;
  do *--p = (char)('0' + u % 10); while ((u /= 10) && p > buf + 1);
  if (v < 0) *--p = '-';
  return p;
}

/* An execve in a new user namespace whose root has no mapping yet (the runtime writes the maps at the
 * first sync point) drops every capability: carry them across in the ambient set. ocirun-init empties
 * the ambient and inheritable sets again (drop_carried_caps), as clone(CLONE_NEWUSER) had left them. */
static void carry_caps(struct child_ctx *c) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) die(c, errno, "read capabilities");
  d[0].inheritable = d[0].permitted;
  d[1].inheritable = d[1].permitted;
  if (syscall(SYS_capset, &h, d) < 0) die(c, errno, "keep capabilities across the execve of the init");
  for (int cap = 0; cap < 64; cap++)
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno == EINVAL) break; /* past the last */
}

void drop_carried_caps(struct child_ctx *c) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 || syscall(SYS_capget, &h, d) < 0)
    die(c, errno, "reset capabilities");
  d[0].inheritable = d[1].inheritable = 0;
  if (syscall(SYS_capset, &h, d) < 0) die(c, errno, "reset capabilities");
}

void exec_sealed_init(struct child_ctx *c, int plan_fd, long ppid, int flags) {
  char a[24], b[24], d[24], e[24];
  char *argv[] = {(char *)"ocirun-init", fmt_int(a, sizeof a, c->sync_fd), fmt_int(b, sizeof b, plan_fd),
                  fmt_int(d, sizeof d, ppid), fmt_int(e, sizeof e, flags), NULL};
  char *envp[] = {NULL}; /* nothing of the runtime's environment reaches the container */
  if (init_fd < 0) die(c, ENOEXEC, "exec the container init: not loaded");
  if (flags & INIT_CARRY_CAPS) carry_caps(c);
  syscall(SYS_execveat, init_fd, "", argv, envp, AT_EMPTY_PATH);
  die(c, errno, "exec the container init");
}
