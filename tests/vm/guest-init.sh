#!/bin/busybox sh
# PID 1 of the test VM. It turns the host's root file system (shared read-only
# over 9p) into a writable root with a tmpfs overlay, runs the one command
# run-in-vm.sh wrote into /socktrace-vm/cmd.sh, reports its exit code on the
# console and powers off. run-in-vm.sh also writes /socktrace-vm/config
# (NIC, OUT_COUNT, OUT_<i>, RUN_ID) and /socktrace-vm/modules (load order).

/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The command's output is streamed to the caller byte for byte; without this
# the serial line would turn every \n into \r\n.
stty -F /dev/console -onlcr 2>/dev/null

. /socktrace-vm/config

# A boot that cannot finish must still end the VM quickly: without the exit
# marker the host reports the failure instead of waiting for its timeout.
fail() {
    echo "socktrace-vm: guest setup failed: $*"
    poweroff -f
}

for m in $(cat /socktrace-vm/modules); do
    insmod "/socktrace-vm/$m.ko" || fail "insmod $m"
done

mkdir -p /lower /rw /newroot
# msize well above the 8 KiB default: dotnet reads many large assemblies.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /lower \
    || fail "mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || fail "mount the overlay root"

mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
# The host's /run describes the host's services, not this guest's.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
# What a systemd host would have mounted; the agent mounts tracefs itself.
mount -t bpf bpf /newroot/sys/fs/bpf 2>/dev/null
mount -t debugfs debugfs /newroot/sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null

i=0
while [ "$i" -lt "$OUT_COUNT" ]; do
    eval "dir=\$OUT_$i"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 "out$i" "/newroot$dir" \
        || fail "mount the --out directory $dir"
    i=$((i + 1))
done

hostname socktrace-vm
ip link set lo up
if [ "$NIC" = 1 ]; then
    # Only the host's forwarded ports reach the guest (qemu restrict=on);
    # the forwarded connections come from 10.0.2.2, inside this /24, so no
    # default route is needed.
    ip link set eth0 up || fail "no eth0"
    ip addr add 10.0.2.15/24 dev eth0
fi

# Quiet while booting, but a lockup or oops from here on prints its whole stack, and a
# soft lockup panics the guest: qemu then exits at once (-no-reboot) and the host
# reports the failure instead of waiting for its timeout. A CPU counts as locked up
# after 60 s (twice watchdog_thresh) rather than 20: an emulated CPU starved by a busy
# host for a while is not a hang.
echo 5 >/newroot/proc/sys/kernel/printk
echo 30 >/newroot/proc/sys/kernel/watchdog_thresh
echo 1 >/newroot/proc/sys/kernel/softlockup_panic
echo 1 >/newroot/proc/sys/kernel/softlockup_all_cpu_backtrace

up=$(cut -d' ' -f1 /newroot/proc/uptime)
echo "socktrace-vm: kernel $(uname -r) up after ${up}s"

mkdir -p /newroot/run/socktrace-vm
cp /socktrace-vm/cmd.sh /newroot/run/socktrace-vm/cmd.sh
rc=0
env -i /bin/busybox chroot /newroot /bin/sh /run/socktrace-vm/cmd.sh </newroot/dev/null || rc=$?

sync
i=0
while [ "$i" -lt "$OUT_COUNT" ]; do
    eval "dir=\$OUT_$i"
    umount "/newroot$dir" 2>/dev/null
    i=$((i + 1))
done
# Leading newline: the command's last line may lack one, and the host looks
# for the marker on a line of its own.
printf '\nSOCKTRACE_VM_EXIT=%s id=%s\n' "$rc" "$RUN_ID"
poweroff -f
