using System.Globalization;
using System.Runtime.InteropServices;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// Checks, before anything is loaded, what the agent needs from the kernel and its own
/// privileges, so a missing piece is named in one line instead of surfacing as an errno
/// from deep inside libbpf.
/// </summary>
public static class KernelPreflight
{
    public const string BtfPath = "/sys/kernel/btf/vmlinux";
    public const string TracefsPath = "/sys/kernel/tracing";
    private const string DebugfsTracingPath = "/sys/kernel/debug/tracing";

    private const int CapSysAdmin = 21;
    private const int CapPerfmon = 38;
    private const int CapBpf = 39;

    public static void Run()
    {
        CheckCapabilities(EffectiveCapabilities());
        if (!File.Exists(BtfPath))
            throw new StartupException(ExitCodes.NoBtf,
                $"this kernel has no BTF ({BtfPath} is missing): SockTrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y");
        EnsureTracefs();
        MemlockLimit.Ensure();
    }

    /// <summary>CAP_BPF loads programs and creates maps; CAP_PERFMON attaches tracing programs
    /// and reads kernel memory (capabilities(7)). CAP_SYS_ADMIN implies both.</summary>
    internal static void CheckCapabilities(ulong effective)
    {
        bool Has(int cap) => (effective & (1UL << cap)) != 0;
        if (Has(CapSysAdmin))
            return;
        var missing = new List<string>();
        if (!Has(CapBpf))
            missing.Add("CAP_BPF");
        if (!Has(CapPerfmon))
            missing.Add("CAP_PERFMON");
        if (missing.Count == 0)
            return;
        string who = Interop.Libc.geteuid() == 0 ? "running as root but" : "not running as root and";
        int exitCode = missing.Count > 1 ? ExitCodes.NoPrivilege : Has(CapBpf) ? ExitCodes.MissingCapPerfmon : ExitCodes.MissingCapBpf;
        throw new StartupException(exitCode,
            $"{who} missing capabilit{(missing.Count > 1 ? "ies" : "y")} {string.Join(", ", missing)}: run as root or grant {string.Join(" and ", missing)}");
    }

    internal static ulong EffectiveCapabilities()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                return ulong.Parse(line.AsSpan(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        throw new StartupException(ExitCodes.Failure, "/proc/self/status has no CapEff line");
    }

    /// <summary>Where tracefs is: libbpf 1.1 prefers the debugfs path when it exists
    /// (libbpf.c tracefs_path()), so the agent looks there in the same order.</summary>
    public static string TracefsRoot() =>
        Directory.Exists(Path.Combine(DebugfsTracingPath, "events")) ? DebugfsTracingPath : TracefsPath;

    /// <summary>
    /// libbpf resolves tracepoint ids through tracefs (libbpf.c determine_tracepoint_id()),
    /// which a fresh node may not have mounted: mount it rather than fail.
    /// </summary>
    private static void EnsureTracefs()
    {
        if (Directory.Exists(Path.Combine(TracefsPath, "events")) || Directory.Exists(Path.Combine(DebugfsTracingPath, "events")))
            return;
        if (!Directory.Exists(TracefsPath))
            throw new StartupException(ExitCodes.NoTracefs,
                $"tracefs is not available: {TracefsPath} does not exist (kernel without CONFIG_TRACING, or /sys not mounted from the host)");
        if (Interop.Libc.mount("nodev", TracefsPath, "tracefs", 0, 0) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new StartupException(ExitCodes.NoTracefs,
                $"tracefs is not mounted at {TracefsPath} and mounting it failed: {ErrnoNames.Describe(errno)}; mount it (mount -t tracefs nodev {TracefsPath}) or grant CAP_SYS_ADMIN");
        }
    }
}
