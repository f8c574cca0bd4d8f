using System.Diagnostics;

namespace SockTrace.Tests.Support;

/// <summary>What Workloads/fdrace.c reported doing: its process name, pid, and each race as (tid, fd).</summary>
internal sealed record FdRaceRun(string Comm, int Pid, int Count, IReadOnlyList<(int Tid, int Fd)> Races);

/// <summary>A process whose threads sleep in accept4(), until it is killed.</summary>
internal sealed class BlockedAccepts(Process process, int pid, IReadOnlyList<int> tids) : IDisposable
{
    public int Pid { get; } = pid;
    public IReadOnlyList<int> Tids { get; } = tids;

    /// <summary>SIGKILL, and return once the process is reaped: all its threads have left
    /// the kernel by then.</summary>
    public void Kill()
    {
        process.Kill();
        process.WaitForExit();
    }

    public void Dispose()
    {
        if (!process.HasExited)
            Kill();
        process.Dispose();
    }
}

/// <summary>Runs Workloads/fdrace.c, built with the tests (SockTrace.Tests.csproj, target BuildWorkloads).</summary>
internal static class FdRaceWorkload
{
    private static readonly Lazy<string> Binary = new(() => Locate("fdrace"));

    private static int s_runs;

    /// <summary>Runs one mode of Workloads/fdrace.c (its header lists them); the count is
    /// the one the mode prints (busy, reuse, doubles, accepted, forked). Each run has a
    /// process name (comm) of its own, at most 15 bytes as the kernel keeps it, so that tests
    /// running at the same time tell their series apart by the comm label.</summary>
    public static FdRaceRun Run(params string[] args)
    {
        string mode = args[0].Split('-')[0];
        string comm = $"fdrace-{mode[..Math.Min(5, mode.Length)]}{Interlocked.Increment(ref s_runs)}";
        string binary = Path.Combine(Path.GetDirectoryName(Binary.Value)!, comm);
        File.Copy(Binary.Value, binary, overwrite: true);
        string output = Command.Output(binary, args);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToList();
        int Value(string key) => int.Parse(lines.Single(l => l[0] == key)[1], System.Globalization.CultureInfo.InvariantCulture);
        var races = lines.Where(l => l[0] == "race").Select(l => (int.Parse(l[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(l[2], System.Globalization.CultureInfo.InvariantCulture))).ToList();
        string countKey = args[0] switch
        {
            "reuse" => "reuse",
            "double-close" => "doubles",
            "threadpool" or "epoll" => "accepted",
            "closeall" => "forked",
            _ => "busy",
        };
        return new FdRaceRun(comm, Value("pid"), Value(countKey), races);
    }

    /// <summary>`fdrace block T`: returns once its T threads sleep in accept4(); disposing kills it.</summary>
    public static BlockedAccepts StartBlocked(int threads)
    {
        string comm = $"fdrace-block{Interlocked.Increment(ref s_runs)}";
        string binary = Path.Combine(Path.GetDirectoryName(Binary.Value)!, comm);
        File.Copy(Binary.Value, binary, overwrite: true);
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("block");
        psi.ArgumentList.Add(threads.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var p = Process.Start(psi)!;
        var tids = new List<int>();
        int pid = 0;
        while (p.StandardOutput.ReadLine() is { } line && line != "ready")
        {
            string[] f = line.Split(' ');
            if (f[0] == "pid")
                pid = int.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture);
            else if (f[0] == "blocked")
                tids.Add(int.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture));
        }
        if (tids.Count != threads)
            Assert.Fail($"fdrace block {threads} stopped early: {p.StandardError.ReadToEnd()}");
        return new BlockedAccepts(p, pid, tids);
    }

    /// <summary>A workload binary the build put beside the test assembly (Workloads/NAME.c).</summary>
    internal static string Locate(string name)
    {
        string binary = Path.Combine(AppContext.BaseDirectory, "workloads", name);
        Assert.True(File.Exists(binary), $"{binary} is missing: build the tests (scripts/build.sh)");
        return binary;
    }
}
