#!/bin/busybox sh
# Stage 1: PID 1 inside the generated initramfs. Loads the 9p/overlay modules,
# mounts the host's root (read-only 9p) under a tmpfs-backed overlay so the guest
# can write anywhere without touching host files, then switch_roots into it and
# hands over to stage 2 (guest-stage2.sh) which runs the tests.
# No `set -e`: PID 1 must never exit by accident (that panics the guest); failures
# go through die(), which powers off so the host sees "no exit status".
/bin/busybox --install -s /bin
export PATH=/bin

die() {
	echo "ocirun-vm: stage 1: $*" >/dev/console
	echo "OCIRUN-VM-EXIT: 125" >/dev/console
	poweroff -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# modules.list is in dependency order (written by the host script).
while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/modules/$mod" || die "insmod $mod failed"
done </modules.list

mkdir -p /lower /rw /newroot
# virtio-pci probes asynchronously: retry until the 9p channel shows up.
n=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -lt 50 ] || die "cannot mount the host root over 9p"
	sleep 0.1
done
mount -t tmpfs -o mode=0755 tmpfs /rw || die "tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	die "overlay root"

# /run is a tmpfs in the guest anyway; use it to carry stage 2 across switch_root.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run || die "tmpfs on /run"
mkdir -p /newroot/run/ocirun-vm/out
cp /bin/busybox /stage2.sh /guest-systemd.sh /guest-systemd-run.sh /vm.env /newroot/run/ocirun-vm/ ||
	die "copy stage 2"

umount /proc /sys /dev
# shellcheck disable=SC2093 # die only runs if the exec itself fails
exec switch_root /newroot /run/ocirun-vm/busybox sh /run/ocirun-vm/stage2.sh
die "switch_root failed"
