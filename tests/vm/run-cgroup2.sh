#!/usr/bin/env bash
# Run tests inside a pure cgroup v2 guest: boots Debian's kernel (linux-image-amd64)
# under qemu with the host's root filesystem shared read-only over virtio-9p (made
# writable in the guest by a tmpfs overlay), so the host's python, site-packages and
# this project are used as they are. Prints the guest's console, exits with the
# guest command's exit status (125: the guest broke, 124: timeout).
#
# usage: tests/vm/run-cgroup2.sh [--systemd [--hybrid]] [pytest args...]
#        (default: -m cgroup2 tests; with --systemd: -m systemd tests)
#        --systemd   boot systemd as PID 1 (guest-systemd.sh): dbus, logind, a test user with subuids;
#                    the tests run in ocirun-vm-tests.service
#        --hybrid    with --systemd: systemd's hybrid layout (v1 controllers + cgroup2 at .../unified)
# env:   CGROUP2_WORKDIR  project dir, cwd of the tests in the guest (default: repo root)
#        CGROUP2_TIMEOUT  hard limit for the whole VM run in seconds (default 1200)
#        CGROUP2_CMD      run this shell command instead of pytest (debugging)
#        CGROUP2_MEM, CGROUP2_CPUS   guest size (default 2048 MiB, 2 vCPUs)
#        CGROUP2_ACCEL    kvm or tcg (default: kvm when /dev/kvm is usable)
#        CGROUP2_KERNEL_CACHE  where to unpack the kernel if none is in /boot
#                         (default /var/cache/ocirun-cgroup2-vm)
#        CGROUP2_APPEND   extra guest kernel command line
#        CGROUP2_TCG_CPU  qemu -cpu model under TCG (default max)
#        PYTHON           interpreter (default: the python3 on PATH, resolved)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workdir=$(cd "${CGROUP2_WORKDIR:-$here/../..}" && pwd)
timeout_s=${CGROUP2_TIMEOUT:-1200}
mem=${CGROUP2_MEM:-2048}
cpus=${CGROUP2_CPUS:-2}
kcache=${CGROUP2_KERNEL_CACHE:-/var/cache/ocirun-cgroup2-vm}
init=busybox
layout=v2
while [ $# -gt 0 ]; do
	case $1 in
	--systemd) init=systemd ;;
	--hybrid) layout=hybrid ;;
	*) break ;;
	esac
	shift
done
[ "$layout" = v2 ] || [ "$init" = systemd ] || { echo "run-cgroup2: --hybrid needs --systemd" >&2; exit 125; }
if [ $# -eq 0 ]; then
	if [ "$init" = systemd ]; then set -- -m systemd tests; else set -- -m cgroup2 tests; fi
fi

log() { echo "run-cgroup2: $*" >&2; }
die() { log "error: $*"; exit 125; }

# --- host packages (only what is missing; apt may be busy with another job) ---
apt_install() {
	[ "$(id -u)" = 0 ] || die "missing $*; install them (needs root)"
	log "installing $*"
	local apt=(apt-get -q -y -o DPkg::Lock::Timeout=600 --no-install-recommends)
	# An empty or stale package list knows no candidate: update it once.
	if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >/dev/null; then
		apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >/dev/null
	fi
}
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# The initramfs needs a static busybox (it also provides cpio for building it).
if ! { [ -x /bin/busybox ] && ! LC_ALL=C ldd /bin/busybox >/dev/null 2>&1; }; then
	need+=(busybox-static)
fi
# systemd mode: PID 1, the buses, user sessions, and the clients the guest runs (it has no network:
# what it needs must be on the host's root).
if [ "$init" = systemd ]; then
	for p in systemd dbus dbus-user-session libpam-systemd uidmap podman conmon containerd runc; do
		dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
	done
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# --- guest kernel: a Debian kernel in /boot + its modules, else unpack the package ---
# Unpacking (instead of `apt-get install linux-image-amd64`) leaves the host's /boot
# and package set alone: the package would pull initramfs-tools, udev and systemd.
find_kernel() { # find_kernel ROOT: prints the newest "vmlinuz moddir" pair under ROOT
	local v best=
	for v in "$1"/boot/vmlinuz-*-amd64; do
		[ -r "$v" ] || continue
		v=${v##*/vmlinuz-}
		[ -e "$1/lib/modules/$v/modules.dep" ] || continue
		best=$(printf '%s\n%s\n' "$best" "$v" | sed '/^$/d' | sort -V | tail -n1)
	done
	[ -n "$best" ] && echo "$1/boot/vmlinuz-$best $1/lib/modules/$best"
}
unpack_kernel() {
	[ "$(id -u)" = 0 ] || die "no Debian kernel in /boot; install linux-image-amd64 (needs root)"
	local pkg dl
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
	if [ -z "$pkg" ]; then
		apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null
		pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
	fi
	[ -n "$pkg" ] || die "cannot resolve linux-image-amd64"
	log "unpacking $pkg into $kcache"
	dl=$(mktemp -d)
	(cd "$dl" && apt-get -q download "$pkg" >/dev/null 2>&1) || { rm -rf "$dl"; die "apt-get download $pkg"; }
	rm -rf "$kcache.new"
	mkdir -p "$kcache.new"
	dpkg-deb -x "$dl"/*.deb "$kcache.new"
	rm -rf "$dl"
	local v
	for v in "$kcache.new"/lib/modules/*; do
		# busybox's depmod writes the modules.dep that busybox insmod/modprobe read.
		/bin/busybox depmod -b "$kcache.new" "${v##*/}"
	done
	rm -rf "$kcache"
	mv "$kcache.new" "$kcache"
}
if [ -n "${CGROUP2_FORCE_UNPACK:-}" ]; then
	kern=$(find_kernel "$kcache") || { unpack_kernel; kern=$(find_kernel "$kcache"); }
else
	kern=$(find_kernel "") || kern=$(find_kernel "$kcache") || { unpack_kernel; kern=$(find_kernel "$kcache"); }
fi
[ -n "$kern" ] || die "no usable guest kernel"
vmlinuz=${kern% *}
moddir=${kern#* }
kver=${moddir##*/}

# --- the guest command, in the host's own interpreter ---
python=${PYTHON:-python3}
# Past shims (pyenv's execs the real binary), the path is the same in the guest. No
# realpath: a venv's python is a symlink whose own path selects the venv.
python=$("$python" -c 'import sys; print(sys.executable)')

q() { # shell-quote for busybox sh
	printf "'%s'" "$(printf %s "$1" | sed "s/'/'\\\\''/g")"
}

tmp=$(mktemp -d /tmp/ocirun-cgroup2-vm.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# --- initramfs ---
ird=$tmp/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,modules}
cp /bin/busybox "$ird/bin/busybox"
# The kernel opens it for /init's stdio (its built-in initramfs has one too, hence ok as non-root).
mknod "$ird/dev/console" c 5 1 2>/dev/null || true
install -m 0755 "$here/guest-init.sh" "$ird/init"
cp "$here/guest-stage2.sh" "$ird/stage2.sh"
cp "$here/guest-systemd.sh" "$here/guest-systemd-run.sh" "$ird/"

# The modules to mount a 9p root under an overlay, with their dependencies in load order.
declare -A seen=()
add_mod() { # add_mod PATH-RELATIVE-TO-MODDIR
	local rel=$1 dep deps
	[ -z "${seen[$rel]:-}" ] || return 0
	seen[$rel]=1
	deps=$(awk -v m="$rel:" '$1 == m { $1 = ""; print; exit }' "$moddir/modules.dep")
	for dep in $deps; do add_mod "$dep"; done
	local base=${rel##*/}
	case $base in
	*.ko.xz) xz -dc "$moddir/$rel" >"$ird/modules/${base%.xz}"; base=${base%.xz} ;;
	*.ko.zst) zstd -qdc "$moddir/$rel" >"$ird/modules/${base%.zst}"; base=${base%.zst} ;;
	*) cp "$moddir/$rel" "$ird/modules/$base" ;;
	esac
	echo "$base" >>"$ird/modules.list"
}
: >"$ird/modules.list"
for m in virtio_pci 9pnet_virtio 9p overlay; do
	rel=$(awk -F: -v m="$m" '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n) }
		n == m { print $1; exit }' "$moddir/modules.dep")
	if [ -n "$rel" ]; then
		add_mod "$rel"
	elif ! grep -qE "/$m\.ko" "$moddir/modules.builtin" 2>/dev/null; then
		die "module $m not found for kernel $kver"
	fi
done

# The guest's configuration and command, sourced by stage 2.
# The interpreter's own bin first: `python3`, `pytest` and console scripts then skip
# shims such as pyenv's (a bash script forking ~40 processes: seconds under TCG).
envargs=("PATH=${python%/*}:$PATH" "HOME=${HOME:-/root}" "LANG=C.UTF-8" "PYTHONUNBUFFERED=1" "OCIRUN_VM=1")
if [ -t 1 ]; then
	envargs+=("TERM=${TERM:-xterm}" "COLUMNS=$(tput cols 2>/dev/null || echo 120)" "PY_COLORS=1")
else
	envargs+=("TERM=dumb" "COLUMNS=120")
fi
for v in CI PYTHONPATH VIRTUAL_ENV PYTEST_ADDOPTS; do
	[ -z "${!v:-}" ] || envargs+=("$v=${!v}")
done
if [ -n "${CGROUP2_CMD:-}" ]; then
	cmd=(/bin/sh -c "$CGROUP2_CMD")
else
	cmd=("$python" -m pytest "$@")
fi
{
	echo "VM_WORKDIR=$(q "$workdir")"
	echo "VM_INIT=$init"
	echo "VM_LAYOUT=$layout"
	echo "VM_CMDLINE=$(q "${cmd[*]}")"
	# Modules for modprobe in the guest when the kernel is not the one installed in /lib/modules.
	[ "$moddir" = "/lib/modules/$kver" ] || echo "VM_MODULES=$(q "$moddir")"
	printf 'vm_run() { exec /run/ocirun-vm/busybox env -i'
	for a in "${envargs[@]}" "${cmd[@]}"; do printf ' %s' "$(q "$a")"; done
	printf '; }\n'
} >"$ird/vm.env"

(cd "$ird" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) >"$tmp/initramfs.cpio"

# --- boot ---
# -arch-capabilities: nested KVM (e.g. under Firecracker) rejects that MSR and qemu aborts.
# shellcheck disable=SC2054 # commas belong to qemu's option syntax
kvmargs=(-accel kvm -cpu host,-arch-capabilities)
kvm_works() { # create the VM and quit before it runs: ~0.1 s
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	# KVM-PVM (nested virtualization without VMX/SVM, as on these Firecracker VMs)
	# only runs PVM-enabled guest kernels: a stock kernel spins in its decompressor.
	[ ! -d /sys/module/kvm_pvm ] || return 1
	echo quit | timeout 20 qemu-system-x86_64 -nodefaults -display none -serial none -S \
		-monitor stdio "${kvmargs[@]}" >/dev/null 2>&1
}
accel=${CGROUP2_ACCEL:-}
if [ -z "$accel" ]; then
	if kvm_works; then accel=kvm; else accel=tcg; fi
fi
# shellcheck disable=SC2054
case $accel in
kvm) accelargs=("${kvmargs[@]}") ;;
tcg) accelargs=(-accel tcg,thread=multi -cpu "${CGROUP2_TCG_CPU:-max}") ;;
*) die "CGROUP2_ACCEL must be kvm or tcg" ;;
esac
mkdir -p "$tmp/out"
# Pure v2 unless systemd is asked for its hybrid layout (which needs the v1 controllers).
if [ "$layout" = hybrid ]; then
	cgargs="systemd.unified_cgroup_hierarchy=0"
else
	cgargs="cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"
fi
[ "$init" = busybox ] || cgargs="$cgargs systemd.show_status=0 systemd.log_level=notice"
log "kernel $kver ($accel, $cpus vCPUs, $mem MiB, init $init, cgroups $layout), workdir $workdir, timeout ${timeout_s}s"
log "guest runs: ${cmd[*]}"

start=$(date +%s.%N)
set +e
# stdin from /dev/null: qemu must not take over a terminal; signal=on lets ^C stop it.
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
	-nodefaults -no-user-config -display none -no-reboot \
	"${accelargs[@]}" -smp "$cpus" -m "$mem" \
	-kernel "$vmlinuz" -initrd "$tmp/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 quiet $cgargs mitigations=off ${CGROUP2_APPEND:-}" \
	-chardev stdio,id=con,signal=on -serial chardev:con \
	-fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
	-fsdev local,id=vmout,path="$tmp/out",security_model=none,multidevs=remap \
	-device virtio-9p-pci,fsdev=vmout,mount_tag=vmout \
	</dev/null 2>&1 | tr -d '\r' | tee "$tmp/console.log"
qrc=${PIPESTATUS[0]}
set -e
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	log "timeout: the VM ran longer than ${timeout_s}s, killed"
	exit 124
fi
# The exit status comes from the results share; the console's sentinel line is
# the fallback (and what a human reads).
if [ -s "$tmp/out/rc" ]; then
	rc=$(cat "$tmp/out/rc")
else
	rc=$(sed -n 's/^OCIRUN-VM-EXIT: \([0-9]*\)$/\1/p' "$tmp/console.log" | tail -n1)
fi
if [ -z "$rc" ]; then
	log "the guest ended without reporting an exit status (qemu exit $qrc, ${elapsed}s)"
	exit 125
fi
# On failure, the guest kernel's warnings and worse (not on the console: dmesg -n 3).
if [ "$rc" != 0 ] && [ -s "$tmp/out/dmesg.txt" ]; then
	# Only what came after boot: the boot's own warnings are always the same.
	awk '/Run \/init as init process/ { go = 1; next } go && sub(/^<[0-4]>/, "")' \
		"$tmp/out/dmesg.txt" | tail -n 40 >"$tmp/warnings"
	if [ -s "$tmp/warnings" ]; then
		log "guest kernel warnings (last 40):"
		cat "$tmp/warnings" >&2
	fi
fi
log "guest exit status $rc after ${elapsed}s (whole VM run)"
exit "$rc"
