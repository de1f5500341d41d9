/* The process side of the child: hooks, console, privileges, seccomp, and the final execve. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ocirun.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif

/* argv/envp arrays live on the stack of the step that uses them. */
static int fill_vec(const struct ocirun_arg *a, uint32_t n, uint32_t *pos, char **vec, int max) {
  if (*pos >= n) return -1;
  int64_t cnt = a[*pos].i;
  (*pos)++;
  if (cnt < 0 || cnt >= max || *pos + cnt > n) return -1;
  for (int64_t i = 0; i < cnt; i++) vec[i] = (char *)a[*pos + i].s;
  vec[cnt] = NULL;
  *pos += (uint32_t)cnt;
  return (int)cnt;
}

/* The state a hook reads on stdin: the runtime sends two documents, NUL-separated, with the hooks go, the
 * container's view for createContainer (status "creating") and for startContainer ("created"). */
static const char *hook_state(struct child_ctx *c, int second, size_t *len) {
  const char *s = c->state_json;
  if (!s) return NULL;
  size_t first = strnlen(s, c->state_len);
  if (second && first < c->state_len) {
    *len = c->state_len - first - 1;
    return s + first + 1;
  }
  *len = first;
  return s;
}

void do_hook(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  const char *path = a[0].s;
  int64_t timeout = a[1].i;
  static char *argv[1024], *envp[8192]; /* (an environment as large as do_exec's: it may be the process's) */
  uint32_t pos = 2;
  int envc;
  if (fill_vec(a, n, &pos, argv, 1024) < 0 || (envc = fill_vec(a, n, &pos, envp, 8191)) < 0 || pos + 1 != n)
    die(c, EINVAL, "malformed hook");
  int64_t flags = a[pos].i;
  if ((flags & HOOK_PROCESS_ENV) && c->home_env) {
    envp[envc] = (char *)c->home_env;
    envp[envc + 1] = NULL;
  }
  size_t state_len = 0;
  const char *state = hook_state(c, (int)(flags & HOOK_STATE_CREATED), &state_len);
  int pfd[2], pidfd = -1;
  if (pipe2(pfd, O_CLOEXEC) < 0) die(c, errno, "pipe for hook %s", path);
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &pidfd, 0, 0);
  if (pid < 0) die(c, errno, "fork hook %s", path);
  if (pid == 0) {
    dup2(pfd[0], 0);
    execve(path, argv, envp);
    _exit(127);
  }
  close(pfd[0]);
  if (state) {
    /* Large states are fine: the hook may not read stdin at all, so don't let a full pipe block us. */
    signal(SIGPIPE, SIG_IGN);
    ssize_t w = write(pfd[1], state, state_len);
    (void)w;
    signal(SIGPIPE, SIG_DFL);
  }
  close(pfd[1]);
  struct pollfd p = {pidfd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, timeout > 0 ? (int)(timeout * 1000) : -1); while (r < 0 && errno == EINTR);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    die(c, 0, "hook %s timed out after %llds", path, (long long)timeout);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die(c, errno, "wait for hook %s", path);
  close(pidfd);
  if (WIFSIGNALED(st)) die(c, 0, "hook %s killed by signal %d", path, WTERMSIG(st));
  if (WEXITSTATUS(st)) die(c, 0, "hook %s exited with status %d", path, WEXITSTATUS(st));
}

void do_console(struct child_ctx *c, int sock, int rows, int cols) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) die(c, errno, "open /dev/ptmx");
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0) die(c, errno, "unlock pty");
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) die(c, errno, "open pty peer");
  if (rows > 0 && cols > 0) {
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(slave, TIOCSWINSZ, &ws);
  }
  unsigned int ptn = 0;
  char name[64];
  ioctl(master, TIOCGPTN, &ptn);
  snprintf(name, sizeof name, "/dev/pts/%u", ptn);
  int r = ocirun_send_fd(sock, master, name, strlen(name));
  if (r < 0) die(c, -r, "send the pty master to the console socket");
  close(master);
  close(sock);
  /* /dev/console inside the container is the pty, as for runc. */
  int err, cfd = c->root_fd >= 0 ? resolve_in_root(c->root_fd, "dev/console", 1, 1, &err) : -1;
  if (cfd >= 0) {
    char target[64], src[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", cfd);
    snprintf(src, sizeof src, "/proc/self/fd/%d", slave);
    if (mount(src, target, NULL, MS_BIND, NULL) < 0) die(c, errno, "bind the pty on /dev/console");
    close(cfd);
  }
  struct stat st;
  if (fstat(slave, &st) == 0) c->console_rdev = st.st_rdev;
  if (ioctl(slave, TIOCSCTTY, 0) < 0) die(c, errno, "make the pty the controlling terminal");
  for (int fd = 0; fd < 3; fd++)
    if (dup2(slave, fd) < 0) die(c, errno, "dup the pty to stdio");
  if (slave > 2) close(slave);
}

/* runc's fixStdioPermissions: stdio becomes the process user's (uid only: the pty keeps devpts's tty gid), so
 * it can reopen /dev/stdout or /proc/self/fd/N (pipes are 0600) and use its terminal. Skipped: what it
 * already owns, /dev/null, and any terminal but the pty made for it (runc would hand the caller's own
 * terminal to the container's uid). An owner outside a user namespace's map (EPERM) or a read-only /dev
 * (EROFS) leaves the fd as it is, as runc. */
void do_chown_stdio(struct child_ctx *c, uid_t uid) {
  for (int fd = 0; fd < 3; fd++) {
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_uid == uid) continue;
    if ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && (!c->console_rdev || st.st_rdev != c->console_rdev))
      continue;
    if (fchown(fd, uid, (gid_t)-1) < 0 && errno != EPERM && errno != EROFS && errno != EINVAL)
      die(c, errno, "chown stdio fd %d to uid %u", fd, (unsigned)uid);
  }
}

void do_caps_bounding(struct child_ctx *c, uint64_t keep) {
  for (int cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) break; /* past the kernel's last capability */
      die(c, errno, "drop capability %d from the bounding set", cap);
    }
  }
}

void do_caps(struct child_ctx *c, uint64_t eff, uint64_t perm, uint64_t inh, uint64_t amb) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2] = {
      {(uint32_t)eff, (uint32_t)perm, (uint32_t)inh},
      {(uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32)},
  };
  if (syscall(SYS_capset, &h, d) < 0) die(c, errno, "set capabilities");
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  /* Ambient caps need to be permitted and inheritable; the kernel refuses others, as for runc. */
  for (int cap = 0; cap < 64; cap++)
    if (amb & (1ULL << cap)) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
}

void do_seccomp(struct child_ctx *c, const struct ocirun_arg *bpf, unsigned int flags, int notify) {
  struct sock_fprog prog = {.len = (unsigned short)(bpf->len / 8), .filter = (struct sock_filter *)bpf->s};
  if (bpf->len % 8 || bpf->len / 8 > 0xffff) die(c, EINVAL, "seccomp program of %u bytes", bpf->len);
  if (notify) flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
  if (r < 0) die(c, errno, "load seccomp filter");
  if (notify) {
    /* Only write(2) and read(2) until the runtime holds its copy (pidfd_getfd: csrc/seccomp_fd.c): a profile
     * may notify sendmsg, and a notified syscall before the listener has the fd would wait forever. (It may
     * not notify write: seccomp.py refuses that, as runc.) */
    if (c->sync_fd < 0) die(c, EINVAL, "seccomp notify needs the runtime present");
    struct ocirun_msg m = {MSG_FD, (int32_t)r, 0};
    ssize_t n;
    do n = write(c->sync_fd, &m, sizeof m); while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof m) die(c, n < 0 ? errno : EPIPE, "send seccomp listener fd");
    do n = read(c->sync_fd, &m, sizeof m); while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof m || m.type != MSG_GO) _exit(1); /* the runtime gave up: it reports why */
    close((int)r);
  }
}

static int executable(const char *p) {
  struct stat st;
  if (stat(p, &st) < 0) return -errno;
  if (S_ISDIR(st.st_mode)) return -EACCES;
  if (access(p, X_OK) < 0) return -errno;
  return 0;
}

void do_find_exec(struct child_ctx *c, const char *argv0, const char *path) {
  c->label = "";
  if (strchr(argv0, '/')) {
    int r = executable(argv0);
    if (r < 0) die(c, -r, "exec: \"%s\"", argv0);
    snprintf(c->exec_path, sizeof c->exec_path, "%s", argv0);
    return;
  }
  int denied = 0;
  const char *p = path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (*p) {
    const char *e = strchr(p, ':');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    int k = n ? snprintf(c->exec_path, sizeof c->exec_path, "%.*s/%s", (int)n, p, argv0)
              : snprintf(c->exec_path, sizeof c->exec_path, "./%s", argv0);
    if (k > 0 && k < (int)sizeof c->exec_path) {
      int r = executable(c->exec_path);
      if (r == 0) return;
      if (r == -EACCES) denied = 1;
    }
    p += n;
    if (*p == ':') p++;
  }
  if (denied) die(c, EACCES, "exec: \"%s\"", argv0);
  die(c, ENOENT, "exec: \"%s\": executable file not found in $PATH", argv0);
}

static void exit_on_signal(int sig) { _exit(128 + sig); }

void do_wait_start(struct child_ctx *c, int lfd) {
  /* From here on the init outlives `create`. */
  prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  /* As pid 1 of its namespace the init ignores signals it has no handler for, so `kill` of a created
   * container would do nothing: handle the terminating ones until execve resets them. */
  static const int term[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGPWR};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = exit_on_signal;
  for (size_t i = 0; i < sizeof term / sizeof term[0]; i++) sigaction(term[i], &sa, NULL);
  if (send_msg(c->sync_fd, MSG_READY, 0, NULL, 0) < 0) die(c, errno, "report ready");
  close(c->sync_fd);
  c->sync_fd = -1;
  for (;;) {
    int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      die(c, errno, "wait for start");
    }
    char b;
    ssize_t n;
    do n = read(conn, &b, 1); while (n < 0 && errno == EINTR);
    if (n == 1 && b == 'S') {
      c->start_conn = conn;
      break;
    }
    close(conn);
  }
  close(lfd);
  c->label = "";
}

void do_exec(struct child_ctx *c, const struct ocirun_arg *a, uint32_t n) {
  static char *argv[4096], *envp[8192];
  uint32_t pos = 0;
  int envc;
  if (fill_vec(a, n, &pos, argv, 4096) < 0 || (envc = fill_vec(a, n, &pos, envp, 8191)) < 0)
    die(c, EINVAL, "malformed exec");
  if (c->home_env) {
    envp[envc] = (char *)c->home_env;
    envp[envc + 1] = NULL;
  }
  const char *p = c->exec_path[0] ? c->exec_path : argv[0];
  /* The process outlives the runtime (exec --detach, or runc-like survival of a killed `exec`). */
  prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  execve(p, argv, envp);
  c->label = "";
  die(c, errno, "exec: \"%s\"", argv[0]);
}
