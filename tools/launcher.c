/* The `ocirun` launcher: run the start code in an interpreter linked in (OCIRUN_EMBED) or exec `python
 * -ISXfrozen_modules=on -c <start code>`, after starting, for create, run and exec, the RCU grace period
 * that the container's first cgroup attach would otherwise wait for.
 *
 * Why in C, before Python: moving a task between cgroups takes cgroup_threadgroup_rwsem for writing, and
 * after an idle spell that down_write waits out an RCU grace period (15-20 ms on the dev VM; every runtime
 * pays it). A child forked here writes "0" (itself) to the cgroup.procs of the cgroup it already is in:
 * the lock is taken, nothing moves, and the wait overlaps the interpreter's ~9 ms start-up instead of
 * following it. The child closes every inherited fd first (a caller waiting for EOF on our stdout, or a
 * console/pidfd socket, never sees it), writes only where /proc/self/mountinfo proves the mount is the
 * hierarchy's root (else "our" path could name another cgroup, and the write would move us), keeps the lock
 * warm until the runtime is about to clone, then is killed and reaped by it (`main(<pid>)`,
 * ocirun.cgroups.prewarm_wait); it dies with its parent. Pure cgroup v2 hosts need none of this
 * (clone3 CLONE_INTO_CGROUP). Built by tools/install_launcher.py with the paths in launcher_config.h.
 */
#ifdef OCIRUN_EMBED
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first, as Python.h asks */
#include "launcher_frozen.h" /* frozen_modules[]: written by install_launcher.py */
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "launcher_config.h" /* OCIRUN_PYTHON, OCIRUN_CODE (ends in "main("), written by install_launcher.py */

/* runc's v1 controllers (ocirun.cgroups.paths.V1_CONTROLLERS): a bit each, to keep "first mount wins". */
static const char *const V1[] = {"cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
                                 "net_cls", "net_prio", "perf_event", "freezer", "rdma", "name=systemd", "misc"};
#define NV1 (sizeof(V1) / sizeof(V1[0]))
#define WARM_EVERY_NS 5000000 /* well under a grace period (10-25 ms on the dev VM, a few ticks anywhere) */
#define WARM_WRITES 30

static ssize_t slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    ssize_t r;
    while (n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    return n < size - 1 ? (ssize_t)n : -1; /* truncated: give up rather than guess */
}

/* mountinfo escapes " \t\n\\" as \ooo */
static void unescape(char *s) {
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
            s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
}

/* Our path in the hierarchy named `ctrl` ("" for cgroup v2) from /proc/self/cgroup, or NULL. */
static const char *own_path(char *cg, const char *ctrl, char *out, size_t size) {
    for (char *line = cg; line && *line;) {
        char *next = strchr(line, '\n');
        size_t len = next ? (size_t)(next - line) : strlen(line);
        char *c1 = memchr(line, ':', len);
        char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            size_t clen = (size_t)(c2 - c1 - 1), plen = len - (size_t)(c2 + 1 - line);
            int match = 0;
            if (!*ctrl) {
                match = clen == 0 && c1 - line == 1 && line[0] == '0';
            } else {
                for (char *p = c1 + 1; p < c2;) { /* comma-separated controller list */
                    char *e = memchr(p, ',', (size_t)(c2 - p));
                    size_t l = e ? (size_t)(e - p) : (size_t)(c2 - p);
                    if (l == strlen(ctrl) && !memcmp(p, ctrl, l))
                        match = 1;
                    p += l + 1;
                }
            }
            if (match && plen < size) {
                memcpy(out, c2 + 1, plen);
                out[plen] = 0;
                return out;
            }
        }
        line = next ? next + 1 : NULL;
    }
    return NULL;
}

/* The child: find our own cgroup on a hierarchy mounted at its root and write "0" to its cgroup.procs. */
static void warm(pid_t parent) {
    static char mi[1 << 16], cg[8192], target[4096], own[4096];
    if (syscall(SYS_close_range, 0U, ~0U, 0U) < 0) { /* before Linux 5.9 */
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
                close(atoi(e->d_name));
        if (d)
            closedir(d);
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        return;
    if (access("/sys/fs/cgroup/cgroup.procs", F_OK) == 0) /* pure v2: clone3 joins the cgroup directly */
        return;
    if (slurp("/proc/self/mountinfo", mi, sizeof(mi)) < 0 || slurp("/proc/self/cgroup", cg, sizeof(cg)) < 0)
        return;
    static char v1target[4096];
    unsigned seen = 0;
    int v2seen = 0;
    target[0] = v1target[0] = 0;
    for (char *line = mi, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        *sep = 0;
        char *f[6] = {0}, *r[3] = {0}, *save = NULL;
        int nf = 0, nr = 0;
        for (char *t = strtok_r(line, " ", &save); t && nf < 6; t = strtok_r(NULL, " ", &save))
            f[nf++] = t;
        for (char *t = strtok_r(sep + 3, " ", &save); t && nr < 3; t = strtok_r(NULL, " ", &save))
            r[nr++] = t;
        if (nf < 5 || nr < 3)
            continue;
        unescape(f[3]);
        unescape(f[4]);
        if (!strcmp(r[0], "cgroup2")) { /* the first cgroup2 mount decides, as in ocirun.cgroups.paths */
            if (!v2seen && !strcmp(f[3], "/") && own_path(cg, "", own, sizeof(own)))
                snprintf(target, sizeof(target), "%s%s", f[4], own);
            v2seen = 1;
            continue;
        }
        if (strcmp(r[0], "cgroup"))
            continue;
        for (char *o = strtok_r(r[2], ",", &save); o; o = strtok_r(NULL, ",", &save)) {
            for (unsigned i = 0; i < NV1; i++) {
                if (strcmp(o, V1[i]) || (seen & (1U << i)))
                    continue;
                seen |= 1U << i; /* the first mount of each controller wins */
                if (!v1target[0] && !strcmp(f[3], "/") && own_path(cg, V1[i], own, sizeof(own)))
                    snprintf(v1target, sizeof(v1target), "%s%s", f[4], own);
            }
        }
    }
    if (!target[0])
        memcpy(target, v1target, sizeof(target));
    if (!target[0])
        return;
    size_t n = strlen(target);
    while (n > 0 && target[n - 1] == '/')
        target[--n] = 0;
    if (n + sizeof("/cgroup.procs") > sizeof(target))
        return;
    strcpy(target + n, "/cgroup.procs");
    int fd = open(target, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* The lock stays warm for one to two grace periods after its last writer. When the first write finds it
     * warm already (a container was attached moments ago) it returns at once, and the warmth would be gone by
     * our own attach ~25 ms later: so write again every WARM_EVERY_NS until the runtime, about to clone,
     * kills us (cgroups.prewarm_wait), our parent dies, or WARM_WRITES are done (~150 ms, then we exit). */
    struct timespec every = {0, WARM_EVERY_NS};
    for (int i = 0; i < WARM_WRITES && getppid() == parent; i++) {
        if (write(fd, "0", 1) < 0)
            break;
        nanosleep(&every, NULL);
    }
    close(fd);
}

/* The command word: the first argument that is not a global flag or a global flag's value (cli.GLOBAL). */
static const char *command(int argc, char **argv) {
    static const char *const valued[] = {"root", "log", "log-format", "rootless", "cgroup-manager", "criu"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1])
            return a;
        if (!strcmp(a, "--"))
            return i + 1 < argc ? argv[i + 1] : "";
        while (*a == '-')
            a++;
        if (strchr(a, '='))
            continue;
        for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
            if (!strcmp(a, valued[k])) {
                i++;
                break;
            }
    }
    return "";
}

#ifdef OCIRUN_EMBED
/* The interpreter linked in from libpython's static library, configured as `python -I -S -X
 * frozen_modules=on` would be, with the `encodings` package the interpreter imports while it starts frozen
 * in as well (found without listing /usr/lib/python3.11 and encodings/, unmarshalled from memory). With
 * one execve less than exec'ing python, that is 1-2.5 ms less per command on the dev VM. No
 * setlocale (configure_locale = 0: no locale archive mapped) and UTF-8 mode (PEP 540), as the interpreter
 * itself picks in the C locale; libc's error strings stay the English ones runc prints. sys.argv is our own
 * argv: the CLI reads sys.argv[1:] either way. */
static int run_python(int argc, char **argv, const char *code) {
    PyImport_FrozenModules = frozen_modules;
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    pre.isolated = 1;
    pre.use_environment = 0;
    pre.configure_locale = 0;
    pre.utf8_mode = 1;
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st))
        Py_ExitStatusException(st);
    PyConfig c;
    PyConfig_InitPythonConfig(&c);
    c.isolated = 1;
    c.use_environment = 0;
    c.user_site_directory = 0;
    c.safe_path = 1;
    c.site_import = 0;
    c.use_frozen_modules = 1;
    c.parse_argv = 0;
    st = PyConfig_SetBytesString(&c, &c.program_name, OCIRUN_PYTHON); /* where the standard library is */
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesArgv(&c, argc, argv);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st))
        Py_ExitStatusException(st);
    return PyRun_SimpleString(code) ? 1 : 0; /* the code ends in posix._exit: only a failure returns */
}
#else
/* exec `python -ISXfrozen_modules=on -c <code> args...` (no static libpython to link). */
static int run_python(int argc, char **argv, const char *code) {
    char **args = calloc((size_t)argc + 4, sizeof(char *));
    if (!args)
        return 127;
    args[0] = (char *)OCIRUN_PYTHON;
    args[1] = (char *)"-ISXfrozen_modules=on";
    args[2] = (char *)"-c";
    args[3] = (char *)code;
    for (int i = 1; i < argc; i++)
        args[i + 3] = argv[i];
    /* The C locale: the interpreter then maps no locale archive (128 KiB of RSS and a few syscalls) and, by
     * PEP 540, still speaks UTF-8; libc's error strings are the English ones runc prints. The container gets
     * its environment from config.json, but hooks without `env` get the caller's: _OCIRUN_LC_ALL keeps what
     * LC_ALL was ("=value", or "" when unset) for ocirun.hooks.runtime_env to put back. */
    const char *lc = getenv("LC_ALL");
    char *saved = malloc(lc ? strlen(lc) + 2 : 1);
    if (saved) {
        saved[0] = 0;
        if (lc)
            sprintf(saved, "=%s", lc);
        setenv("_OCIRUN_LC_ALL", saved, 1);
    }
    setenv("LC_ALL", "C", 1);
    execv(OCIRUN_PYTHON, args);
    fprintf(stderr, "ocirun: exec %s: %m\n", OCIRUN_PYTHON);
    return 127;
}
#endif

int main(int argc, char **argv) {
    const char *cmd = command(argc, argv);
    pid_t warm_pid = 0;
    if (!strcmp(cmd, "create") || !strcmp(cmd, "run") || !strcmp(cmd, "exec")) {
        pid_t self = getpid();
        warm_pid = fork();
        if (warm_pid == 0) {
            warm(self);
            _exit(0);
        }
        if (warm_pid < 0)
            warm_pid = 0;
    }
    static char code[sizeof(OCIRUN_CODE) + 32];
    snprintf(code, sizeof(code), "%s%d)\n", OCIRUN_CODE, (int)warm_pid);
    return run_python(argc, argv, code);
}
