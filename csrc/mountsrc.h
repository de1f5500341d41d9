/* Bind-mount sources the runtime makes for the child (see mountsrc.c); all return -errno on failure. */
#ifndef OCIRUN_MOUNTSRC_H
#define OCIRUN_MOUNTSRC_H

/* A detached copy of the mount at `path` (with its submounts when recursive): a close-on-exec fd. */
int ocirun_open_tree(const char *path, int recursive);

/* Id-map a detached tree through the user namespace `userns_fd` (recursive: its submounts too). */
int ocirun_idmap_mount(int tree_fd, int userns_fd, int recursive);

/* An fd of a new user namespace with these uid_map/gid_map contents ("inside outside count\n" lines). */
int ocirun_userns_fd(const char *uid_map, const char *gid_map);
/* O_PATH fd of `path` resolved with root_fd as its root (a child's /proc/PID/root: its mount namespace). */
int ocirun_open_in_root(int root_fd, const char *path);
#endif
