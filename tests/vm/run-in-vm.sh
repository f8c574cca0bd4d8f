#!/usr/bin/env bash
# Runs one command inside a Debian kernel (6.1, or 6.12 or 5.10 with SOCKTRACE_VM_KERNEL)
# under qemu, with this machine's
# root file system as the guest's (read-only, plus a throwaway tmpfs overlay),
# in the same working directory. Exits with the command's exit code.
# See README.md beside this file.
set -euo pipefail

usage='usage: run-in-vm.sh [--nic HOSTPORT:GUESTPORT]... [--out DIR]... [--mem SIZE] [--timeout SECONDS] -- COMMAND [ARG]...'
die() { echo "run-in-vm.sh: $*" >&2; exit 2; }
say() { echo "socktrace-vm: $*" >&2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${SOCKTRACE_VM_CACHE:-/var/cache/socktrace-vm}
mem=4G
timeout_s=1200
nics=()
outs=()

while [ $# -gt 0 ]; do
    case $1 in
        --nic)
            [[ ${2-} =~ ^[0-9]+:[0-9]+$ ]] || die "--nic needs HOSTPORT:GUESTPORT; $usage"
            nics+=("$2"); shift 2 ;;
        --out)
            [ -n "${2-}" ] || die "--out needs a directory; $usage"
            outs+=("$2"); shift 2 ;;
        --mem)
            [[ ${2-} =~ ^[0-9]+[MG]?$ ]] || die "--mem needs a size such as 4G; $usage"
            mem=$2; shift 2 ;;
        --timeout)
            [[ ${2-} =~ ^[0-9]+$ ]] || die "--timeout needs whole seconds; $usage"
            timeout_s=$2; shift 2 ;;
        --) shift; break ;;
        *) die "unexpected '$1'; $usage" ;;
    esac
done
[ $# -gt 0 ] || die "no command given; $usage"
# apt-get, the virtfs shares with security_model=none and the guest's root all
# need uid 0 on the host.
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, caches the kernel in $cache, shares / into the VM)"

ensure_packages() {
    local missing=() p
    for p in qemu-system-x86 busybox-static cpio; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null; } \
        || die "could not install ${missing[*]} with apt-get"
}

# Debian's package names per kernel series: bookworm's 6.1, the 6.12 that
# bookworm also ships (trixie's kernel), where close() reaches the fd table by another path,
# and bullseye's 5.10, the oldest kernel with BTF that Debian still serves.
# The plain -amd64 flavour: -rt and -cloud lack drivers or behave differently.
series=${SOCKTRACE_VM_KERNEL:-6.1}
suite=
case $series in
    6.1) pkg_regex='^linux-image-6\.1\.0-[0-9]+-amd64$'; pkg_glob='linux-image-6.1.0-*-amd64' ;;
    6.12) pkg_regex='^linux-image-6\.12\.[0-9]+\+deb12-amd64$'; pkg_glob='linux-image-6.12.*+deb12-amd64' ;;
    5.10) pkg_regex='^linux-image-5\.10\.0-[0-9]+-amd64$'; pkg_glob='linux-image-5.10.0-*-amd64'; suite=bullseye ;;
    *) die "SOCKTRACE_VM_KERNEL must be 6.1, 6.12 or 5.10, not '$series'" ;;
esac

# A kernel from another Debian release (bullseye's 5.10) comes through apt lists of its
# own, under $cache/apt-<suite>, so the system's sources and lists stay as they are.
apt_opts=()
if [ -n "$suite" ]; then
    apt_dir=$cache/apt-$suite
    apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
fi

# The suite's sources: the Debian archives this machine's apt uses for its own release
# (its main and security suites), with the other release's codename; deb.debian.org when
# none is found. Only the package lists: no translations or AppStream data.
suite_sources() {
    local codename site release key=/usr/share/keyrings/debian-archive-keyring.gpg opts='target=Packages' n=0
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME-}")
    [ -f "$key" ] && opts+=" signed-by=$key"
    while read -r site release; do
        case $release in
            "$codename") echo "deb [$opts] $site $suite main"; n=$((n + 1)) ;;
            "$codename-security") echo "deb [$opts] $site $suite-security main"; n=$((n + 1)) ;;
        esac
    done < <([ -n "$codename" ] && apt-get indextargets --format '$(SITE) $(RELEASE)' 'Identifier: Packages' 'Target-Of: deb' | sort -u)
    if [ "$n" = 0 ]; then
        echo "deb [$opts] http://deb.debian.org/debian $suite main"
        echo "deb [$opts] http://deb.debian.org/debian-security $suite-security main"
    fi
}

apt_update() {
    if [ -n "$suite" ]; then
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
        suite_sources >"$apt_dir/sources.list"
        apt-get "${apt_opts[@]}" update -qq >&2 && touch "$apt_dir/updated"
    else
        apt-get update -qq >&2
    fi
}

newest_kernel_pkg() {
    # The suite's own lists follow the system's: read again after each apt-get update
    # of the system's (so a newer 5.10 arrives when a newer 6.1 would), or when missing.
    if [ -n "$suite" ] && { [ ! -f "$apt_dir/updated" ] || [ /var/lib/apt/lists -nt "$apt_dir/updated" ]; }; then
        apt_update || true
    fi
    apt-cache "${apt_opts[@]}" search --names-only "$pkg_regex" | awk '{print $1}' | sort -V | tail -n 1
}

# Prints the directory holding the unpacked kernel package.
kernel_dir() {
    local pkg=${SOCKTRACE_VM_KERNEL_PKG:-}
    if [ -z "$pkg" ]; then
        pkg=$(newest_kernel_pkg)
        [ -n "$pkg" ] || { apt_update && pkg=$(newest_kernel_pkg); } || true
        # Offline with stale package lists: use the newest kernel already cached.
        [ -n "$pkg" ] || pkg=$(find "$cache" -mindepth 1 -maxdepth 1 -name "$pkg_glob" -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
        [ -n "$pkg" ] || die "no $pkg_glob package known to apt and none cached in $cache"
    fi
    if [ ! -d "$cache/$pkg" ]; then
        say "downloading $pkg into $cache"
        local dl
        dl=$(mktemp -d "$cache/.download.XXXXXX")
        # Root's apt sandbox user cannot write a mktemp directory; downloading
        # as root is what apt would fall back to anyway, minus the warning.
        (cd "$dl" && apt-get "${apt_opts[@]}" download -qq -o APT::Sandbox::User=root "$pkg" >&2) \
            || { apt_update && (cd "$dl" && apt-get "${apt_opts[@]}" download -qq -o APT::Sandbox::User=root "$pkg" >&2); } \
            || { rm -rf "$dl"; die "could not download $pkg"; }
        dpkg-deb -x "$dl"/*.deb "$dl/root"
        mv "$dl/root" "$cache/$pkg"
        rm -rf "$dl"
    fi
    [ -f "$cache/$pkg/vmlinux" ] || unpack_vmlinux "$cache/$pkg"
    echo "$cache/$pkg"
}

# Decompressing the xz bzImage takes about 4 s under software emulation, on
# every boot. Done once here, qemu boots the ELF through its PVH entry point
# instead. Without xz, or for another compression, the bzImage boots as is.
unpack_vmlinux() {
    local z off
    z=$(ls "$1"/boot/vmlinuz-*)
    command -v xz >/dev/null || return 0
    off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$z" | head -n 1 | cut -d: -f1 || true)
    [ -n "$off" ] || return 0
    # xz stops at the data appended after the stream, hence "|| true".
    tail -c +$((off + 1)) "$z" | xz -dc >"$1/vmlinux.tmp" 2>/dev/null || true
    if [ "$(head -c 4 "$1/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        mv "$1/vmlinux.tmp" "$1/vmlinux"
    else
        rm -f "$1/vmlinux.tmp"
    fi
}

# Single-quotes a word for /bin/sh, whatever it contains.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

mkdir -p "$cache"
# One install and one download at a time when several runs start together.
exec 9>"$cache/.lock"
flock 9
ensure_packages
kdir=$(kernel_dir)
flock -u 9

kver=$(basename "$(ls -d "$kdir"/lib/modules/*)")
kmods=$kdir/lib/modules/$kver
kernel=$kdir/vmlinux
[ -f "$kernel" ] || kernel=$kdir/boot/vmlinuz-$kver
[ -f "$kernel" ] || die "no vmlinuz in $kdir (delete that directory to download it again)"

work=$(mktemp -d /tmp/socktrace-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
run_id=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

# The initramfs: static busybox, the modules that the Debian kernel builds as
# modules but the guest needs before it can see the host root, and the init.
init=$work/initramfs
mkdir -p "$init/bin" "$init/dev" "$init/socktrace-vm"
cp /bin/busybox "$init/bin/busybox"
cp "$here/guest-init.sh" "$init/init"
chmod 755 "$init/init"
# The kernel opens /dev/console for init before anything can mount devtmpfs.
mknod -m 600 "$init/dev/console" c 5 1

# Loads deps first, read from each module's own .modinfo so that no kmod
# tools and no modules.dep (Debian generates it at install time) are needed.
loaded=" "
add_module() {
    local m=$1 f ko dep
    [[ $loaded == *" $m "* ]] && return
    loaded+="$m "
    f=$(find "$kmods/kernel" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) -print -quit)
    if [ -z "$f" ]; then
        grep -qE "/($m|${m//_/-})\.ko$" "$kmods/modules.builtin" || say "module $m is neither built in nor shipped; skipping it"
        return
    fi
    ko=$init/socktrace-vm/$m.ko
    # busybox insmod cannot read compressed modules.
    case $f in
        *.xz) xz -dc "$f" >"$ko" ;;
        *.zst) zstd -qdc "$f" >"$ko" ;;
        *) cp "$f" "$ko" ;;
    esac
    for dep in $(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '); do
        add_module "$dep"
    done
    echo "$m" >>"$init/socktrace-vm/modules"
}
touch "$init/socktrace-vm/modules"
# veth: the kernel tests join two network namespaces with a veth pair; bridge: and
# namespaces through a bridge (with its dependencies, stp and llc).
for m in virtio_pci 9pnet_virtio 9p overlay veth bridge; do add_module "$m"; done
if [ ${#nics[@]} -gt 0 ]; then add_module e1000; fi

{
    echo "RUN_ID=$run_id"
    echo "NIC=$([ ${#nics[@]} -gt 0 ] && echo 1 || echo 0)"
    echo "OUT_COUNT=${#outs[@]}"
} >"$init/socktrace-vm/config"

# -smap: under TCG, the iretq with which the .NET runtime resumes a redirected thread
# (RtlRestoreContext) faults in the guest as a supervisor access to the user stack when
# SMAP is on; the guest oopses and the test process dies.
# One CPU by default (SOCKTRACE_VM_CPUS): the kernel tests take as long on one emulated
# CPU as on two (two vCPU threads only compete for the host's two cores), and a single CPU
# leaves no cross-CPU interrupt for the emulator to lose. The one guest hang seen, both
# vCPUs stuck in kernel mode for good under .NET runtime threads, was of that shape.
qemu_args=(-nodefaults -no-user-config -accel tcg -cpu max,-smap -smp "${SOCKTRACE_VM_CPUS:-1}" -m "$mem"
           -display none -no-reboot)
# Commas are qemu's option separator; doubling one escapes it.
qemu_args+=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
for i in "${!outs[@]}"; do
    mkdir -p "${outs[$i]}"
    dir=$(cd "${outs[$i]}" && pwd -P)
    qemu_args+=(-virtfs "local,path=${dir//,/,,},mount_tag=out$i,security_model=none,multidevs=remap")
    echo "OUT_$i=$(shq "$dir")" >>"$init/socktrace-vm/config"
done
if [ ${#nics[@]} -gt 0 ]; then
    # restrict=on: the guest can reach nothing outside; only the host's
    # loopback forwards come in.
    fwd=
    for n in "${nics[@]}"; do fwd+=",hostfwd=tcp:127.0.0.1:${n%%:*}-:${n##*:}"; done
    qemu_args+=(-nic "user,restrict=on,model=e1000$fwd")
else
    qemu_args+=(-nic none)
fi

# The command, its directory and the environment it may see, quoted so that
# any argument reaches the guest unchanged.
{
    while IFS= read -r -d '' kv; do
        name=${kv%%=*}
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        case $name in
            SOCKTRACE_* | CI | DOTNET_* | NUGET_PACKAGES | PATH) echo "export $(shq "$kv")" ;;
        esac
    done < <(env -0)
    [ -n "${PATH-}" ] || echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    echo "export HOME=/root DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 TERM=dumb"
    cwd=$(pwd -P)
    echo "cd $(shq "$cwd") || { echo 'socktrace-vm: cannot enter the working directory' >&2; exit 125; }"
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(shq "$a")"; done
    echo
} >"$init/socktrace-vm/cmd.sh"

(cd "$init" && find . | cpio -o -H newc --quiet) | gzip -1 >"$work/initramfs.gz"

log=$work/console.log
# The console goes to stdout as it comes and into a log, where the exit
# marker is looked up afterwards.
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" \
    -kernel "$kernel" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1" \
    -chardev "stdio,id=console,logfile=$log" -serial chardev:console \
    </dev/null &
qemu_pid=$!
trap 'kill "$qemu_pid" 2>/dev/null; exit 130' INT TERM
status=0
wait "$qemu_pid" || status=$?
trap - INT TERM

if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "run-in-vm.sh: timed out after ${timeout_s}s; qemu was killed" >&2
    exit 124
fi
marker=$(grep -aoE "SOCKTRACE_VM_EXIT=[0-9]+ id=$run_id" "$log" | tail -n 1 || true)
if [ -z "$marker" ]; then
    echo "run-in-vm.sh: the guest never reported an exit code (boot failure or kernel panic; qemu exit $status, console output above)" >&2
    exit 125
fi
rc=${marker#SOCKTRACE_VM_EXIT=}
exit "${rc%% *}"
