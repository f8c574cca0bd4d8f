using System.Globalization;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>An agent killed without a chance to clean up leaves nothing attached, and the
/// next one starts from scratch and counts exactly.</summary>
[Trait("Category", "Agent")]
public sealed class LifecycleTests
{
    private const int SigKill = 9;

    [Fact]
    public void SigkillLeavesNoProgramAttachedAndARestartCountsExactly()
    {
        Requires.Bpf();
        int expected = KernelPipeline.PlanUnderTest().Sum(p => p.Programs.Count());
        HashSet<int> programs;
        using (var killed = AgentProcess.StartObserving())
        {
            programs = Bpftool.ProgramsOf(killed.Pid);
            Assert.Equal(expected, programs.Count);
            Assert.Subset(Bpftool.ProgramIds(), programs);

            killed.Signal(SigKill);

            // 128 + SIGKILL: the process had no chance to detach anything itself.
            Assert.Equal(137, killed.WaitForExit(TimeSpan.FromSeconds(30)));
            Assert.DoesNotContain("Detached all hooks", killed.Stdout);
        }
        // Links are owned by the process's fds, not pinned: closing them at exit detaches
        // and frees each program (the kernel releases them after an RCU grace period).
        Eventually.True(() => !Bpftool.ProgramIds().Overlaps(programs), "the killed agent's programs to be unloaded", TimeSpan.FromSeconds(10));

        const int n = 5;
        using var restarted = AgentProcess.StartObserving("--poll-interval-ms", "20");
        Assert.Equal(expected, Bpftool.ProgramsOf(restarted.Pid).Count);
        using var listener = Loopback.Listen();
        string port = listener.Port().ToString(CultureInfo.InvariantCulture);
        Loopback.ConnectAndAcceptAfter(listener, n, TimeSpan.Zero);
        Loopback.AcceptWouldBlock(listener, 3);

        Eventually.True(() => restarted.Scrape().Sum("socktrace_accepts_total", ("port", port)) >= n, "accepts on /metrics");
        Thread.Sleep(300);
        var samples = restarted.Scrape();
        Assert.Equal(n, samples.Sum("socktrace_accepts_total", ("port", port)));
        Assert.Equal(3, samples.Sum("socktrace_accept_errors_total", ("port", port), ("errno", "eagain")));
        Assert.Equal(1, samples.Sum("socktrace_probe_info", ("hook", "accept"), ("mode", KernelPipeline.ExpectedMode(Hooks.Accept))));
    }
}
