/* HOME for a process whose env has none: the home directory of its uid in the container's /etc/passwd,
 * read after pivot_root (or setns, for exec) so mounted-over passwd files count, as runc's prepareEnv.
 * The file is the container's: it is opened inside the root (no symlink or .. leaves it) and only when it
 * is a regular file (a FIFO there must not block the runtime). A static buffer streams it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* Go's strconv.Atoi as runc's passwd parser uses it: a malformed number reads as 0. */
static long long atoi_or_zero(const char *s, size_t n) {
  size_t i = 0;
  int neg = 0;
  long long v = 0;
  if (n && (s[0] == '+' || s[0] == '-')) neg = s[i++] == '-';
  if (i == n) return 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9' || v > (1LL << 40)) return 0;
    v = v * 10 + (s[i] - '0');
  }
  return neg ? -v : v;
}

/* One passwd line (name:pass:uid:gid:gecos:home:shell): its home when the uid matches. */
static int match_line(const char *line, size_t n, long long uid, const char **home, size_t *home_len) {
  while (n && (*line == ' ' || *line == '\t' || *line == '\r')) line++, n--;
  while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r')) n--;
  if (!n || line[0] == '#') return 0; /* blank, or a comment (glibc skips them too) */
  const char *field[7] = {0};
  size_t len[7] = {0};
  int k = 0;
  for (const char *p = line, *end = line + n; k < 7; k++) {
    const char *colon = memchr(p, ':', (size_t)(end - p));
    field[k] = p;
    len[k] = colon ? (size_t)(colon - p) : (size_t)(end - p);
    if (!colon) {
      k++;
      break;
    }
    p = colon + 1;
  }
  if ((k > 2 ? atoi_or_zero(field[2], len[2]) : 0) != uid) return 0;
  *home = k > 5 ? field[5] : "";
  *home_len = k > 5 ? len[5] : 0;
  return 1;
}

static int open_passwd(struct child_ctx *c) {
  int root = c->root_fd >= 0 ? c->root_fd : open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return -1;
  struct open_how how = {.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, root, "etc/passwd", &how, sizeof how);
  if (root != c->root_fd) close(root);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* Sets c->home_env to "HOME=<dir>": the first entry for uid, or "/" (no file, no entry), as runc. */
void do_lookup_home(struct child_ctx *c, long long uid) {
  static char buf[65536]; /* runc reads lines up to 64 KiB; static: only the pages read() fills cost memory */
  const char *home = "/";
  size_t home_len = 1;
  int fd = open_passwd(c);
  size_t have = 0;
  int skipping = 0, found = 0, eof = fd < 0;
  while (!found && !eof) {
    ssize_t r;
    do r = read(fd, buf + have, sizeof buf - have); while (r < 0 && errno == EINTR);
    if (r <= 0) eof = 1;
    else have += (size_t)r;
    size_t start = 0;
    for (;;) {
      char *nl = memchr(buf + start, '\n', have - start);
      if (!nl && !(eof && start < have)) break;
      size_t end = nl ? (size_t)(nl - buf) : have;
      if (!skipping && match_line(buf + start, end - start, uid, &home, &home_len)) {
        found = 1;
        break;
      }
      skipping = 0;
      start = nl ? end + 1 : have;
    }
    if (found) break;
    memmove(buf, buf + start, have - start);
    have -= start;
    if (have == sizeof buf) { /* a line longer than the buffer: drop it up to its newline */
      have = 0;
      skipping = 1;
    }
  }
  if (home_len > 4096) home = "/", home_len = 1; /* no PATH_MAX-sized home is a home */
  /* "HOME=<home>" built in place at the buffer's start (home may point into it): one page of memory. */
  memmove(buf + 5, home, home_len);
  memcpy(buf, "HOME=", 5);
  buf[5 + home_len] = 0;
  if (fd >= 0) close(fd);
  c->home_env = buf;
}
