using System.Globalization;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>The built agent as a process: real kernel, real sockets from this (another)
/// process, real /metrics, real signals. Category Agent: run on the host's kernel; the
/// in-process Kernel tests are the ones repeated in every attach mode under qemu.</summary>
[Trait("Category", "Agent")]
public sealed class AgentProcessTests
{
    [Fact]
    public void ServesExactAcceptCountsAndQueueWaitsOnMetrics()
    {
        Requires.Bpf();
        const int n = 6;
        var wait = TimeSpan.FromMilliseconds(25);
        using var agent = AgentProcess.StartObserving("--poll-interval-ms", "20");
        using var listener = Loopback.Listen();
        string port = listener.Port().ToString(CultureInfo.InvariantCulture);

        var waited = Loopback.ConnectAndAcceptAfter(listener, n, wait);
        Loopback.AcceptWouldBlock(listener, 2);

        Eventually.True(() => agent.Scrape().Sum("socktrace_accepts_total", ("port", port)) >= n, "accepts on /metrics");
        Thread.Sleep(300);
        var samples = agent.Scrape();
        Assert.Equal(n, samples.Sum("socktrace_accepts_total", ("port", port), ("peer", "loopback")));
        Assert.Equal(2, samples.Sum("socktrace_accept_errors_total", ("port", port), ("errno", "eagain")));
        Assert.Equal(n, samples.Sum("socktrace_accept_queue_wait_seconds_count", ("port", port)));
        double expected = waited.Sum(w => w.TotalSeconds);
        // At least W each; at most the span from before connect() to after accept() each.
        Assert.InRange(samples.Sum("socktrace_accept_queue_wait_seconds_sum", ("port", port)), n * wait.TotalSeconds * 0.9, expected * 1.1);
        // Failed calls are counted, not timed.
        Assert.Equal(n, samples.Sum("socktrace_accept_duration_seconds_count", ("port", port)));
        // Every record the kernel produced reached the agent.
        Assert.Equal(0, samples.Sum("socktrace_ringbuf_drops_total"));
        // One series per reason. no_entry is not asserted: another process's accept that was
        // in flight when the agent attached counts there, as it should.
        Assert.Equal(["errors_lost", "io_uring_fixed_file", "map_full", "no_entry", "return_missed"],
            samples.Where(s => s.Name == "socktrace_untracked_calls_total").Select(s => s.Labels["reason"]).Order());
        Assert.Equal(0, samples.Sum("socktrace_untracked_calls_total", ("reason", "map_full")));
        Assert.Equal(0, samples.Sum("socktrace_untracked_calls_total", ("reason", "return_missed")));
        Assert.Equal(0, samples.Sum("socktrace_events_total", ("type", "invalid")));
        Assert.Equal(["errno", "exit_before_entry", "family", "short", "size", "type"],
            samples.Where(s => s.Name == "socktrace_records_rejected_total").Select(s => s.Labels["reason"]).Order());
        Assert.Equal(0, samples.Sum("socktrace_records_rejected_total"));
        Assert.Equal(1, samples.Sum("socktrace_probe_info", ("hook", "accept"), ("mode", KernelPipeline.ExpectedMode(Hooks.Accept))));
        Assert.Equal(1, samples.Sum("socktrace_probe_info", ("hook", "sock_established"), ("mode", KernelPipeline.ExpectedMode(Hooks.SockEstablished))));
        Assert.Equal(1, samples.Sum("socktrace_build_info"));
        // One recursion-miss series per attached program, named as the plan names them.
        Assert.Equal(KernelPipeline.PlanUnderTest().SelectMany(p => p.Programs).Select(p => p.Name).Order(),
            samples.Where(s => s.Name == "socktrace_program_misses_total").Select(s => s.Labels["program"]).Order());
    }

    [Fact]
    public void AQuietListenersSeriesLeaveAfterTheIdleTimeAndReturnFromZero()
    {
        Requires.Bpf();
        using var agent = AgentProcess.StartObserving("--poll-interval-ms", "20", "--series-idle-seconds", "3");
        using var listener = Loopback.Listen();
        string port = listener.Port().ToString(CultureInfo.InvariantCulture);
        // The accept families; the listen queue's series stay while the listener is open.
        bool Listed(IEnumerable<Sample> samples) => samples.Any(s => s.Name.StartsWith("socktrace_accept", StringComparison.Ordinal) && s.Labels.GetValueOrDefault("port") == port);

        Loopback.ConnectAndAcceptAfter(listener, 4, TimeSpan.Zero);
        Eventually.True(() => agent.Scrape().Sum("socktrace_accepts_total", ("port", port)) >= 4, "accepts on /metrics");
        var quiet = System.Diagnostics.Stopwatch.StartNew();
        var samples = agent.Scrape();
        Assert.Equal(4, samples.Sum("socktrace_accepts_total", ("port", port)));
        Assert.Equal(4, samples.Sum("socktrace_accept_duration_seconds_count", ("port", port)));

        Eventually.True(() => !Listed(agent.Scrape()), "the quiet listener's series to leave /metrics", TimeSpan.FromSeconds(30));
        // Gone no earlier than the idle time allows: the last accept was before the clock started.
        Assert.True(quiet.Elapsed > TimeSpan.FromSeconds(2), $"gone after {quiet.Elapsed.TotalSeconds:0.0} s of quiet, with --series-idle-seconds 3");

        Loopback.ConnectAndAcceptAfter(listener, 1, TimeSpan.Zero);
        Eventually.True(() => Listed(agent.Scrape()), "the listener's series to return");
        samples = agent.Scrape();
        Assert.Equal(1, samples.Sum("socktrace_accepts_total", ("port", port)));
        Assert.Equal(1, samples.Sum("socktrace_accept_duration_seconds_count", ("port", port)));
    }

    [Fact]
    public void ServesRacesWithTheCulpritsPidAndFd()
    {
        Requires.Bpf();
        using var agent = AgentProcess.StartObserving("--poll-interval-ms", "20");

        var run = FdRaceWorkload.Run("dup2-busy", "3");

        string comm = run.Comm;
        Eventually.True(() => agent.Scrape().Sum("socktrace_fd_races_total", ("kind", "dup2_busy"), ("comm", comm)) >= 3, "races on /metrics");
        Thread.Sleep(300);
        Assert.Equal(3, agent.Scrape().Sum("socktrace_fd_races_total", ("kind", "dup2_busy"), ("comm", comm)));
        using var races = System.Text.Json.JsonDocument.Parse(agent.Get("/races"));
        var mine = races.RootElement.EnumerateArray()
            .Where(r => r.GetProperty("pid").GetInt32() == run.Pid && r.GetProperty("kind").GetString() == "dup2_busy").ToList();
        Assert.Equal(run.Races.Select(r => r.Fd), mine.Select(r => r.GetProperty("fd").GetInt32()));
        Assert.All(mine, r => Assert.Equal(comm, r.GetProperty("comm").GetString()));
        Assert.Contains($"fd race dup2_busy: process {comm} pid {run.Pid}", agent.Stdout);
    }

    [Fact]
    public void SigtermDetachesEveryProgram()
    {
        Requires.Bpf();
        using var agent = AgentProcess.StartObserving();
        var programs = Bpftool.ProgramsOf(agent.Pid);
        int expected = KernelPipeline.PlanUnderTest().Sum(p => p.Programs.Count());
        Assert.Equal(expected, programs.Count);
        Assert.Subset(Bpftool.ProgramIds(), programs);

        agent.Signal(15);

        Assert.Equal(0, agent.WaitForExit(TimeSpan.FromMinutes(5)));
        Assert.Contains("Detached all hooks", agent.Stdout);
        // A detached link puts its program only after an RCU grace period (kernel/bpf/syscall.c,
        // bpf_link_free: call_rcu(&link->rcu, bpf_link_defer_dealloc_rcu_gp) on 6.10 and later), so the
        // program ids leave shortly after the agent has exited, not at its exit.
        Eventually.True(() => !Bpftool.ProgramIds().Overlaps(programs), "the stopped agent's programs to be unloaded", TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(new[] { "--bogus", "1" }, 2, "socktrace: unknown argument '--bogus' (see socktrace --help)")]
    [InlineData(new[] { "--ring-buffer-bytes", "1000" }, 2, "socktrace: invalid --ring-buffer-bytes (SOCKTRACE_RING_BUFFER_BYTES, SockTrace:RingBufferBytes) value '1000': must be a power of two from 4096 to 1073741824")]
    [InlineData(new[] { "--config", "/nonexistent/socktrace.json" }, 3, "socktrace: cannot read config file /nonexistent/socktrace.json: Could not find a part of the path '/nonexistent/socktrace.json'.")]
    public void BadInputExitsWithOneLine(string[] args, int exitCode, string line)
    {
        using var agent = AgentProcess.Start(args);
        Assert.Equal(exitCode, agent.WaitForExit(TimeSpan.FromMinutes(5)));
        Assert.Equal(line, agent.Stderr.Trim());
    }

    [Fact]
    public void APortInUseExitsWithOneLine()
    {
        Requires.Bpf();
        using var taken = Loopback.Listen();
        using var agent = AgentProcess.Start(["--urls", $"http://127.0.0.1:{taken.Port()}"]);
        Assert.Equal(11, agent.WaitForExit(TimeSpan.FromMinutes(5)));
        Assert.Equal($"socktrace: cannot serve metrics: Failed to bind to address http://127.0.0.1:{taken.Port()}: address already in use.", agent.Stderr.Trim());
    }
}
