using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// Before 5.11 the kernel charges BPF maps and programs to RLIMIT_MEMLOCK, counted per user
/// across all of its processes (bpf_charge_memlock(), kernel/bpf/syscall.c); from 5.11 to the
/// memory cgroup instead. Where it is charged, the limit is raised to unlimited before
/// anything is loaded, and a limit that cannot be raised stops the agent with its own exit code:
/// otherwise the first map fails with EPERM, which reads like missing privileges or lockdown.
/// The limit is left alone where it is unlimited already or the kernel does not charge it.
/// </summary>
internal static unsafe partial class MemlockLimit
{
    private const int RlimitMemlock = 8;
    private const ulong Infinity = ulong.MaxValue;
    private const int Eperm = 1;

    private static readonly Lazy<string> Checked = new(Raise);

    /// <summary>Once per process: the probe lowers the limit for a moment, which no other
    /// thread of a running agent or test run should see twice.</summary>
    public static string Ensure() => Checked.Value;

    private static string Raise()
    {
        RLimit limit;
        if (getrlimit(RlimitMemlock, &limit) != 0)
            return "RLIMIT_MEMLOCK unreadable; left as it is";
        if (limit.Current == Infinity)
            return "RLIMIT_MEMLOCK unlimited";
        if (Charged(limit) is not true)
            return $"not needed: BPF memory is charged to the memory cgroup (RLIMIT_MEMLOCK {Describe(limit.Current)} left as it is)";
        var unlimited = new RLimit { Current = Infinity, Maximum = Infinity };
        if (setrlimit(RlimitMemlock, &unlimited) == 0)
            return $"raised from {Describe(limit.Current)} to unlimited: this kernel charges BPF memory to RLIMIT_MEMLOCK";
        // Only a hard limit below unlimited refuses this, and raising it needs CAP_SYS_RESOURCE.
        int errno = Marshal.GetLastPInvokeError();
        throw new StartupException(ExitCodes.Memlock,
            $"this kernel charges BPF memory to RLIMIT_MEMLOCK (kernels before 5.11), which is {Describe(limit.Current)} " +
            $"(hard limit {Describe(limit.Maximum)}) and cannot be raised to unlimited: {ErrnoNames.Describe(errno)}; " +
            "start the agent with it unlimited (ulimit -l unlimited, systemd LimitMEMLOCK=infinity, the container runtime's memlock ulimit) or grant CAP_SYS_RESOURCE");
    }

    /// <summary>Whether map creation is charged to RLIMIT_MEMLOCK, measured as cilium/ebpf's
    /// rlimit package does: a one-entry array map with the limit at 0 fails with EPERM only
    /// where it is. Null when the map cannot be made even at the previous limit (the load that
    /// follows reports why).</summary>
    private static bool? Charged(RLimit previous)
    {
        var zero = new RLimit { Current = 0, Maximum = previous.Maximum };
        if (setrlimit(RlimitMemlock, &zero) != 0)
            return null;
        int errno;
        try
        {
            errno = CreateArrayMap();
        }
        finally
        {
            setrlimit(RlimitMemlock, &previous);
        }
        if (errno != Eperm)
            return errno == 0 ? false : null;
        return CreateArrayMap() == 0 ? true : null;
    }

    /// <summary>bpf(BPF_MAP_CREATE) of a BPF_MAP_TYPE_ARRAY with one 4-byte entry; 0 or the errno.</summary>
    private static int CreateArrayMap()
    {
        // union bpf_attr's map_type, key_size, value_size, max_entries, map_flags.
        uint* attr = stackalloc uint[5] { 2, 4, 4, 1, 0 };
        int fd = bpf(BpfSyscallNumber, 0, attr, 5 * sizeof(uint));
        if (fd < 0)
            return Marshal.GetLastPInvokeError();
        close(fd);
        return 0;
    }

    private static nint BpfSyscallNumber => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 321,
        Architecture.Arm64 => 280,
        var other => throw new PlatformNotSupportedException($"bpf syscall number for {other}"),
    };

    private static string Describe(ulong bytes) => bytes == Infinity ? "unlimited" : $"{bytes / 1024} KiB";

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, RLimit* limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, RLimit* limit);

    /// <summary>bpf(2) has no libc wrapper; syscall(2) with integer arguments only.</summary>
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial int bpf(nint number, nint command, void* attr, nint size);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
