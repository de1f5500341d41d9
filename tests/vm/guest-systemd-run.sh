# ExecStart of ocirun-vm-tests.service (guest-systemd.sh): runs the guest command under systemd as
# PID 1, reports its exit status to the host (results share + console sentinel, as stage 2 does)
# and powers off at once (the overlay is thrown away: nothing to sync but the results share).
BB=/run/ocirun-vm/busybox
VMDIR=/run/ocirun-vm

say() { echo "ocirun-vm: $*" >/dev/console; }

# shellcheck source=/dev/null # written by run-cgroup2.sh
. $VMDIR/vm.env
say "kernel $($BB uname -r), $($BB nproc) cpus, systemd $(systemctl --version | $BB awk 'NR==1{print $2}'), state $(systemctl is-system-running)"
say "cgroup: $($BB cat /proc/self/cgroup | $BB tr '\n' ' ')"
say "boot took $($BB cut -d' ' -f1 /proc/uptime) s; running in $VM_WORKDIR: $VM_CMDLINE"

# Output through a pipe, not the console tty (no \r progress lines), as stage 2 does.
$BB mkfifo $VMDIR/output
$BB cat $VMDIR/output >/dev/console &
catpid=$!
$BB sh -c ". $VMDIR/vm.env && cd \"\$VM_WORKDIR\" && vm_run" >$VMDIR/output 2>&1
rc=$?
n=0
while $BB kill -0 $catpid 2>/dev/null && [ $n -lt 50 ]; do
	$BB sleep 0.1
	n=$((n + 1))
done
$BB kill $catpid 2>/dev/null
if [ "$rc" != 0 ]; then
	systemctl --failed --no-pager --no-legend >/dev/console 2>&1
fi
$BB dmesg -r >$VMDIR/out/dmesg.txt
journalctl -b --no-pager -q -p warning >$VMDIR/out/journal.txt 2>/dev/null
say "tests took $($BB cut -d' ' -f1 /proc/uptime) s since boot"
say "exit status $rc"
echo "$rc" >$VMDIR/out/rc
echo "OCIRUN-VM-EXIT: $rc" >/dev/console
$BB sync
$BB poweroff -f
