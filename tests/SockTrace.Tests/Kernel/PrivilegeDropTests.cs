using System.Diagnostics;
using System.Globalization;
using SockTrace.Agent.Hosting;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>The built agent gives up its capabilities once attached, in every thread, and
/// still counts exactly, maps read at scrape time included: the managed build and the native
/// one that ships.</summary>
[Trait("Category", "Agent")]
public sealed class PrivilegeDropTests
{
    [Theory]
    [InlineData(AgentBuild.Managed)]
    [InlineData(AgentBuild.Native)]
    public void EveryThreadHoldsNoCapabilityAndMetricsStayExact(AgentBuild build)
    {
        Requires.Bpf();
        using var agent = AgentProcess.StartObserving(build, "--poll-interval-ms", "20");
        Eventually.True(() => agent.Logged("Dropped every capability"), "the drop in the log");

        var process = CapabilityDrop.Read($"/proc/{agent.Pid}/status");
        foreach (string set in new[] { "CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd" })
            Assert.True(process[set] == 0, $"{set} of the agent is {process[set]:x16}");
        Assert.Contains(File.ReadLines($"/proc/{agent.Pid}/status"), l => l == "NoNewPrivs:\t1");
        // Credentials are per thread: every one of them, not only the one /proc/PID shows.
        var tasks = Directory.GetDirectories($"/proc/{agent.Pid}/task");
        Assert.True(tasks.Length > 5, $"{tasks.Length} threads");
        foreach (string task in tasks)
        {
            var sets = CapabilityDrop.Read(Path.Combine(task, "status"));
            Assert.True(sets["CapEff"] == 0 && sets["CapPrm"] == 0, $"thread {Path.GetFileName(task)}: CapEff {sets["CapEff"]:x16} CapPrm {sets["CapPrm"]:x16}");
        }

        // Real sockets after the drop: the ring buffer, and the maps the agent reads at scrape time.
        const int backlog = 7, n = 5, eagain = 3;
        double lo = agent.Scrape().Sum("socktrace_rx_packets_total", ("path", "loopback"), ("device", "lo"));
        using var listener = Loopback.Listen(backlog);
        string port = listener.Port().ToString(CultureInfo.InvariantCulture);
        Loopback.ConnectAndAcceptAfter(listener, n, TimeSpan.FromMilliseconds(5));
        Loopback.AcceptWouldBlock(listener, eagain);

        Eventually.True(() => agent.Scrape().Sum("socktrace_accepts_total", ("port", port)) >= n, "the accepts on /metrics");
        Thread.Sleep(200);
        var samples = agent.Scrape();
        Assert.Equal(n, samples.Sum("socktrace_accepts_total", ("port", port), ("peer", "loopback")));
        Assert.Equal(eagain, samples.Sum("socktrace_accept_errors_total", ("port", port), ("errno", "eagain")));
        Assert.Equal(n, samples.Sum("socktrace_accept_duration_seconds_count", ("port", port)));
        // The listener table (a hash map) read at scrape time: this listener's backlog.
        string netns = new FileInfo($"/proc/self/ns/net").LinkTarget!.Split('[', ']')[1];
        var limits = samples.Where(s => s.Name == "socktrace_listen_queue_limit" && s.Labels["port"] == port).ToList();
        Assert.True(backlog == limits.Where(s => s.Labels["netns"] == netns).Sum(s => s.Value),
            $"listen_queue_limit of port {port} in netns {netns}: [{string.Join("; ", limits.Select(s => string.Join(",", s.Labels.Select(l => $"{l.Key}={l.Value}")) + $" {s.Value}"))}] of {samples.Count(s => s.Name == "socktrace_listen_queue_limit")} listeners");
        // The per-CPU counters read at scrape time: every record the kernel produced arrived.
        Eventually.True(() =>
        {
            var s = agent.Scrape();
            return s.Sum("socktrace_records_produced_total") == s.Sum("socktrace_events_total") + s.Sum("socktrace_ringbuf_drops_total");
        }, "records produced = events + drops");
        Assert.True(samples.Sum("socktrace_records_produced_total") >= n);
        // The per-CPU rx map: n connections and their handshakes crossed lo.
        Assert.True(samples.Sum("socktrace_rx_packets_total", ("path", "loopback"), ("device", "lo")) >= lo + 3 * n);
    }

    [Fact]
    public void KeepCapabilitiesKeepsThem()
    {
        Requires.Bpf();
        using var agent = AgentProcess.StartObserving("--keep-capabilities");
        Eventually.True(() => agent.Logged("Keeping capabilities"), "the log line");
        ulong mine = CapabilityDrop.Read("/proc/self/status")["CapEff"];
        Assert.Equal(mine, CapabilityDrop.Read($"/proc/{agent.Pid}/status")["CapEff"]);
        Assert.NotEqual(0UL, mine);
    }

    /// <summary>A thread started by one that has already dropped inherits the dropped sets:
    /// the broadcast drops what is left and succeeds (it failed with EPERM on it once, when
    /// the runtime happened to start a thread from one that had already dropped).</summary>
    [Fact]
    public void ThreadStartedByADroppedThreadDoesNotFailTheDrop()
    {
        Requires.Root();
        var run = Process.Start(new ProcessStartInfo(FdRaceWorkload.Locate("capinherit")) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        Assert.True(run.WaitForExit(TimeSpan.FromSeconds(30)), "capinherit did not finish in 30 s");
        string[] lines = run.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(run.ExitCode == 0, $"capinherit exited {run.ExitCode}: {run.StandardError.ReadToEnd()}");
        Assert.Equal("result 0", lines[0]);
        var threads = lines.Skip(1).ToList();
        Assert.Equal(3, threads.Count);
        Assert.All(threads, t => Assert.EndsWith(" 0000000000000000 0000000000000000 0000000000000000", t, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("5.10.0-33-amd64", "2", 1UL << CapabilityDrop.CapBpf)]
    [InlineData("5.18.19", "1", 1UL << CapabilityDrop.CapBpf)]
    [InlineData("5.10.0-33-amd64", "0", 0UL)]
    [InlineData("5.19.0", "2", 0UL)]
    [InlineData("6.1.0-47-amd64", "2", 0UL)]
    [InlineData("6.18.0", "2", 0UL)]
    public void KeepsCapBpfOnlyWhereMapReadsNeedIt(string release, string disabled, ulong kept) =>
        Assert.Equal(kept, CapabilityDrop.KeptForMapReads(release, disabled));
}
