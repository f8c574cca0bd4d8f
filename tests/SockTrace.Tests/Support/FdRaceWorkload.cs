using System.Diagnostics;

namespace SockTrace.Tests.Support;

/// <summary>What Workloads/fdrace.c reported doing: its process name, pid, and each race as (tid, fd).</summary>
internal sealed record FdRaceRun(string Comm, int Pid, int Count, IReadOnlyList<(int Tid, int Fd)> Races);

/// <summary>Builds Workloads/fdrace.c with the system C compiler and runs it.</summary>
internal static class FdRaceWorkload
{
    private static readonly Lazy<string> Binary = new(Build);

    private static int s_runs;

    /// <summary>`fdrace dup2-busy R` or `fdrace reuse K M W`; the count is busy or reuse.
    /// Each run has a process name (comm) of its own, so that tests running at the same
    /// time tell their races apart by the comm label: a dup2-busy run also closes fds that
    /// its accepting thread then gets back, a reuse_after_close of its own.</summary>
    public static FdRaceRun Run(params string[] args)
    {
        string comm = $"fdrace-{args[0].Split('-')[0]}{Interlocked.Increment(ref s_runs)}";
        string binary = Path.Combine(Path.GetDirectoryName(Binary.Value)!, comm);
        File.Copy(Binary.Value, binary, overwrite: true);
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"fdrace {string.Join(' ', args)} failed: {error}");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToList();
        int Value(string key) => int.Parse(lines.Single(l => l[0] == key)[1], System.Globalization.CultureInfo.InvariantCulture);
        var races = lines.Where(l => l[0] == "race").Select(l => (int.Parse(l[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(l[2], System.Globalization.CultureInfo.InvariantCulture))).ToList();
        return new FdRaceRun(comm, Value("pid"), Value(args[0] == "reuse" ? "reuse" : "busy"), races);
    }

    private static string Build()
    {
        string source = Path.Combine(Events.RecordLayoutTests.RepoRoot(), "tests", "SockTrace.Tests", "Workloads", "fdrace.c");
        string binary = Path.Combine(Directory.CreateTempSubdirectory("socktrace-fdrace").FullName, "fdrace");
        using var cc = Process.Start(new ProcessStartInfo("cc", $"-Wall -Werror -O2 -pthread -o {binary} {source}") { RedirectStandardError = true })!;
        string error = cc.StandardError.ReadToEnd();
        cc.WaitForExit();
        Assert.True(cc.ExitCode == 0, "building fdrace.c failed: " + error);
        return binary;
    }
}
