using System.Globalization;
using System.Runtime.InteropServices;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// Gives up the capabilities that loading and attaching needed, in every thread, once the
/// programs are attached and the maps and ring buffers are open: what the agent does after
/// that (read its own map and ring fds, read cgroupfs and /proc/self, serve HTTP, call the
/// API server) needs none. Credentials are per thread, so the drop is broadcast by
/// Native/capdrop.c and then checked thread by thread in /proc/self/task.
/// </summary>
internal static partial class CapabilityDrop
{
    private const string Library = "libsocktrace_caps";
    private const int CapSetpcap = 8;
    public const int CapBpf = 39;

    /// <summary>What was dropped, for the log.</summary>
    public sealed record Result(int Threads, ulong Kept, bool BoundingDropped);

    /// <summary>Drops every capability but <paramref name="keep"/> from the effective, permitted,
    /// inheritable and ambient sets of every thread, and from the bounding set when CAP_SETPCAP
    /// allows it; sets no_new_privs, so no execve() can regain them.</summary>
    public static Result Run(ulong keep)
    {
        int lastCap = int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), CultureInfo.InvariantCulture);
        bool bounding = (KernelPreflight.EffectiveCapabilities() & (1UL << CapSetpcap)) != 0;
        // SIGRTMIN is the runtime's own (activation injection for GC suspension); the top of
        // the range is unused by .NET and glibc.
        int signo = __libc_current_sigrtmax() - 2;
        int error;
        try
        {
            error = socktrace_drop_capabilities(keep, lastCap, bounding ? 1 : 0, signo);
        }
        catch (DllNotFoundException ex)
        {
            throw new StartupException(ExitCodes.Capabilities, $"cannot drop capabilities: {ex.Message}");
        }
        if (error != 0)
            throw new StartupException(ExitCodes.Capabilities,
                $"cannot drop capabilities: {ErrnoNames.Describe(error)} (--keep-capabilities runs without dropping them)");
        int threads = Verify(keep, bounding);
        return new Result(threads, keep, bounding);
    }

    /// <summary>Every thread's sets as /proc says, so a thread the broadcast missed is an error, not a hole.</summary>
    private static int Verify(ulong keep, bool bounding)
    {
        int threads = 0;
        foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            Dictionary<string, ulong> sets;
            try
            {
                sets = Read(Path.Combine(task, "status"));
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException)
            {
                continue; // the thread exited
            }
            threads++;
            foreach (var (name, expected) in new[] { ("CapEff", keep), ("CapPrm", keep), ("CapInh", 0UL), ("CapAmb", 0UL) })
            {
                if (sets.GetValueOrDefault(name, ulong.MaxValue) != expected)
                    throw new StartupException(ExitCodes.Capabilities,
                        $"cannot drop capabilities: thread {Path.GetFileName(task)} still has {name} {sets.GetValueOrDefault(name):x16}");
            }
            if (bounding && sets.GetValueOrDefault("CapBnd", ulong.MaxValue) != keep)
                throw new StartupException(ExitCodes.Capabilities,
                    $"cannot drop capabilities: thread {Path.GetFileName(task)} still has CapBnd {sets.GetValueOrDefault("CapBnd"):x16}");
        }
        return threads;
    }

    /// <summary>The Cap* lines of a /proc/PID/status or /proc/PID/task/TID/status.</summary>
    internal static Dictionary<string, ulong> Read(string statusFile)
    {
        var sets = new Dictionary<string, ulong>();
        foreach (string line in File.ReadLines(statusFile))
        {
            if (!line.StartsWith("Cap", StringComparison.Ordinal))
                continue;
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            sets[line[..colon]] = ulong.Parse(line.AsSpan(colon + 1).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        return sets;
    }

    /// <summary>
    /// Before 5.19 a kernel with kernel.unprivileged_bpf_disabled set refuses every bpf()
    /// command, map lookups on fds the agent already holds included, to a caller without
    /// CAP_BPF (__sys_bpf(), kernel/bpf/syscall.c); 5.19 narrowed that check to the commands
    /// that create programs and maps (tools/testing/selftests/bpf/prog_tests/unpriv_bpf_disabled.c).
    /// There the agent keeps CAP_BPF alone, or it could not read its per-CPU maps at scrape time.
    /// </summary>
    public static ulong KeptForMapReads(string kernelRelease, string unprivilegedBpfDisabled)
    {
        var parts = kernelRelease.Split('.', '-');
        bool old = parts.Length >= 2 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out int major)
            && int.TryParse(parts[1], CultureInfo.InvariantCulture, out int minor) && (major < 5 || (major == 5 && minor < 19));
        return old && unprivilegedBpfDisabled.Trim() != "0" ? 1UL << CapBpf : 0;
    }

    [LibraryImport(Library)]
    private static partial int socktrace_drop_capabilities(ulong keep, int lastCap, int dropBounding, int signo);

    [LibraryImport("libc")]
    private static partial int __libc_current_sigrtmax();
}
