# Stage 2: PID 1 of the guest after switch_root, run by the initramfs' busybox sh.
# The root is the host's own tree (read-only 9p + tmpfs overlay), so the host's
# python3, site-packages and the project are all here at their host paths.
# Sets up a systemd-like pure cgroup v2 host, runs the test command in a leaf
# cgroup, reports its exit status, powers off. PID 1 must reap orphans: ash's
# `wait` uses waitpid(-1), so zombies reparented to us are collected meanwhile.
# No `set -e`: PID 1 exiting panics the guest; errors are reported instead.
BB=/run/ocirun-vm/busybox
VMDIR=/run/ocirun-vm
CG=/sys/fs/cgroup
CONTROLLERS="cpuset cpu io memory hugetlb pids rdma misc"

say() { echo "ocirun-vm: $*"; }

# systemd as PID 1 instead (run-cgroup2.sh --systemd): it mounts the API filesystems itself.
# shellcheck source=/dev/null # written by run-cgroup2.sh
. $VMDIR/vm.env
[ "$VM_INIT" != systemd ] || exec $BB sh $VMDIR/guest-systemd.sh

finish() {
	say "exit status $1"
	[ -d "$VMDIR/out" ] && echo "$1" >"$VMDIR/out/rc"
	echo "OCIRUN-VM-EXIT: $1"
	$BB sync
	$BB poweroff -f
	$BB sleep 10
}

mnt() { # mnt TYPE SRC DIR OPTS
	$BB mkdir -p "$3"
	$BB mount -t "$1" -o "$4" "$2" "$3" || { say "mount $1 on $3 failed"; finish 125; }
}

mnt proc proc /proc nosuid,nodev,noexec
mnt sysfs sysfs /sys nosuid,nodev,noexec
mnt devtmpfs devtmpfs /dev nosuid,mode=0755
exec </dev/null >/dev/console 2>&1
mnt devpts devpts /dev/pts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5
$BB ln -sf pts/ptmx /dev/ptmx
mnt tmpfs tmpfs /dev/shm nosuid,nodev,mode=1777
mnt mqueue mqueue /dev/mqueue nosuid,nodev,noexec
mnt hugetlbfs hugetlbfs /dev/hugepages nosuid,nodev
# A fresh /tmp, unless the project itself is under the host's /tmp (a CI clone):
# then /tmp stays the overlay's, writable all the same.
case "$VM_WORKDIR/" in
/tmp/*) say "the workdir is under /tmp: keeping the host's /tmp (writable, changes stay in the guest)" ;;
*) mnt tmpfs tmpfs /tmp nosuid,nodev,mode=1777 ;;
esac
# Same options systemd uses on production cgroup v2 hosts.
mnt cgroup2 cgroup2 $CG nosuid,nodev,noexec,nsdelegate,memory_recursiveprot
mnt 9p vmout $VMDIR/out trans=virtio,version=9p2000.L,msize=262144
# systemd makes / shared; container runtimes rely on that propagation.
$BB mount --make-rshared /
$BB hostname ocirun-vm
$BB ip link set lo up 2>/dev/null

# Kernel messages up to "crit" only on the console (e.g. no OOM-kill reports
# in the middle of test output); the whole dmesg goes back to the host.
$BB dmesg -n 3

# The modules of the guest kernel, for modprobe inside the guest, when they are
# not installed at the host's /lib/modules (kernel taken from a package cache).
if [ -n "$VM_MODULES" ] && [ ! -e "/lib/modules/$(uname -r)" ]; then
	$BB mkdir -p "/lib/modules/$(uname -r)"
	$BB mount --bind "$VM_MODULES" "/lib/modules/$(uname -r)"
fi

for c in $CONTROLLERS; do
	echo "+$c" >$CG/cgroup.subtree_control || say "cannot enable controller $c"
done
# Like systemd: nothing but kernel threads in the root; PID 1 in init.scope, the
# tests in a leaf of their own (a runtime usually runs from a service's leaf).
$BB mkdir -p $CG/init.scope $CG/ocirun-tests.scope
echo $$ >$CG/init.scope/cgroup.procs

# shellcheck disable=SC2016
say "kernel $($BB uname -r), $($BB nproc) cpus, $($BB free -m | $BB awk '/Mem:/{print $2}') MiB"
say "/sys/fs/cgroup statfs magic 0x$($BB stat -f -c %t $CG) (cgroup2 is 0x63677270)"
say "cgroup.controllers: $($BB cat $CG/cgroup.controllers)"
say "cgroup.subtree_control: $($BB cat $CG/cgroup.subtree_control)"
say "boot took $($BB cut -d' ' -f1 /proc/uptime) s; running in $VM_WORKDIR: $VM_CMDLINE"

# Output through a pipe, not the console tty: no \r progress lines or tty-only
# behaviour in the log (PY_COLORS from the host still gives colours on a terminal).
$BB mkfifo $VMDIR/output
$BB cat $VMDIR/output &
catpid=$!
$BB sh -c "echo \$\$ >$CG/ocirun-tests.scope/cgroup.procs && . $VMDIR/vm.env && cd \"\$VM_WORKDIR\" && vm_run" \
	>$VMDIR/output 2>&1 &
pid=$!
wait $pid
rc=$?
# A leftover background process may hold the pipe open: give cat 5 s to drain.
n=0
while $BB kill -0 $catpid 2>/dev/null && [ $n -lt 50 ]; do
	$BB sleep 0.1
	n=$((n + 1))
done
$BB kill $catpid 2>/dev/null
$BB dmesg -r >$VMDIR/out/dmesg.txt # raw: with <level> prefixes for the host to filter
say "tests took $($BB cut -d' ' -f1 /proc/uptime) s since boot"
finish $rc
