# Stage 2, systemd mode (run-cgroup2.sh --systemd): still PID 1, run by the initramfs' busybox sh
# on the overlay root. Prepares a minimal systemd boot on the host's tree (the changes stay in the
# guest's tmpfs overlay), then execs /lib/systemd/systemd, which mounts /proc, /sys, /dev and the
# cgroup hierarchy itself (pure v2, or its hybrid layout with --hybrid) and boots ocirun-vm.target:
# journald, dbus, logind and ocirun-vm-tests.service (guest-systemd-run.sh), which runs the test
# command, reports its status like stage 2 and powers off. Nothing of the host's own unit set starts:
# the default target is ours, and what would fail or only cost time in a VM is masked.
# No `set -e`: PID 1 must never exit (errors are reported to the host as status 125).
BB=/run/ocirun-vm/busybox
VMDIR=/run/ocirun-vm
ETC=/etc/systemd/system

say() { echo "ocirun-vm: $*"; }
fail() {
	say "systemd stage: $*"
	echo "OCIRUN-VM-EXIT: 125"
	$BB poweroff -f
	$BB sleep 10
}

# shellcheck source=/dev/null # written by run-cgroup2.sh
. $VMDIR/vm.env
$BB mkdir -p /proc && $BB mount -t proc proc /proc || fail "mount /proc"
$BB mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmout $VMDIR/out || fail "mount the results share"
case "$VM_WORKDIR/" in
/tmp/*) ;;
*) $BB mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp || fail "tmpfs on /tmp" ;;
esac
if [ -n "$VM_MODULES" ] && [ ! -e "/lib/modules/$($BB uname -r)" ]; then
	$BB mkdir -p "/lib/modules/$($BB uname -r)"
	$BB mount --bind "$VM_MODULES" "/lib/modules/$($BB uname -r)"
fi

# The host's fstab names its own disks: local-fs.target would wait for them.
: >/etc/fstab
# A host that is itself a container marks its root (/.dockerenv): systemd would think it runs in one
# (no kernel command line, no hybrid layout, container defaults). This guest is a VM.
$BB rm -f /.dockerenv /run/.containerenv
$BB mkdir -p $ETC
for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
	systemd-udev-trigger.service systemd-udev-settle.service systemd-timesyncd.service \
	systemd-networkd.service systemd-networkd.socket systemd-resolved.service systemd-pstore.service \
	systemd-firstboot.service systemd-machine-id-commit.service systemd-binfmt.service \
	systemd-hwdb-update.service systemd-journal-catalog-update.service systemd-update-done.service \
	systemd-random-seed.service systemd-boot-system-token.service systemd-fsck-root.service \
	systemd-remount-fs.service systemd-journal-flush.service sys-kernel-debug.mount \
	sys-kernel-tracing.mount sys-fs-fuse-connections.mount sys-kernel-config.mount \
	apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer e2scrub_reap.service \
	fstrim.timer dpkg-db-backup.timer logrotate.timer podman-auto-update.timer podman-auto-update.service \
	podman-restart.service \
	systemd-tmpfiles-clean.timer getty.target serial-getty@ttyS0.service \
	console-getty.service containerd.service podman.service podman.socket postgresql.service \
	ssh.service cron.service rsyslog.service; do
	$BB ln -sf /dev/null "$ETC/$u"
done

$BB cat >$ETC/ocirun-vm.target <<'EOF'
[Unit]
Description=ocirun test VM
Requires=basic.target ocirun-vm-tests.service
After=basic.target
AllowIsolate=yes
EOF
# Delegate=yes: the tests may make cgroups below their own (the cgroupfs driver) while systemd
# manages the rest of the tree (the systemd driver's scopes).
$BB cat >$ETC/ocirun-vm-tests.service <<'EOF'
[Unit]
Description=ocirun tests
Wants=dbus.socket systemd-logind.service
After=basic.target dbus.socket systemd-logind.service systemd-user-sessions.service
[Service]
Type=simple
ExecStart=/run/ocirun-vm/busybox sh /run/ocirun-vm/guest-systemd-run.sh
StandardInput=null
StandardOutput=journal+console
StandardError=inherit
Delegate=yes
TimeoutStartSec=infinity
KillMode=process
EOF
$BB ln -sf ocirun-vm.target $ETC/default.target

# The host's interpreter may live under /root (pyenv): the rootless tests run it as a test user.
$BB chmod 755 /root

say "handing over to systemd ($VM_LAYOUT cgroups) after $($BB cut -d' ' -f1 /proc/uptime) s"
$BB umount /proc
exec /lib/systemd/systemd
fail "exec /lib/systemd/systemd failed"
