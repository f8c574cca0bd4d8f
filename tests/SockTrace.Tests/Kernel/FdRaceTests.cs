using System.Globalization;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>fd races from a real workload (Workloads/fdrace.c), counted exactly; and healthy
/// servers under load, which must count none.</summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed class FdRaceTests
{
    private const string Races = "socktrace_fd_races_total";

    private static string Text(int n) => n.ToString(CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("dup2-busy")]
    [InlineData("dup3-busy")]
    public void EveryDupOntoAReservedFdIsCounted(string mode)
    {
        const int rounds = 5;
        using var pipeline = new KernelPipeline();

        var run = FdRaceWorkload.Run(mode, Text(rounds));

        Assert.Equal(rounds, run.Count);
        var scrape = pipeline.Settle(Races, rounds, ("comm", run.Comm), ("kind", "dup2_busy"));
        Assert.Equal(rounds, scrape.Sum(Races, ("comm", run.Comm), ("kind", "dup2_busy")));
        var recent = pipeline.Races.Snapshot().Where(r => r.Pid == run.Pid).ToList();
        Assert.Equal(rounds, recent.Count);
        Assert.All(recent, r =>
        {
            Assert.Equal("dup2_busy", r.Kind);
            Assert.Equal((uint)run.Pid, r.Tid); // the main thread dups
        });
        Assert.Equal(run.Races.Select(r => r.Fd), recent.Select(r => r.Fd));
        // Each round's accepting thread gets the number the main thread closed the round
        // before: a reuse gap, never a race. Nothing was installed over a file either.
        Assert.Equal(rounds, scrape.Sum(Races, ("comm", run.Comm)));
    }

    [Fact]
    public void ACloseThatFailsRightAfterAnotherThreadClosedTheFdIsADoubleClose()
    {
        const int rounds = 5;
        using var pipeline = new KernelPipeline();

        // Also closes, as many times each, a number this thread itself closed and numbers
        // never opened: both fail with EBADF and neither is a double close.
        var run = FdRaceWorkload.Run("double-close", Text(rounds));

        Assert.Equal(rounds, run.Count);
        var scrape = pipeline.Settle(Races, rounds, ("comm", run.Comm), ("kind", "double_close"));
        Assert.Equal(rounds, scrape.Sum(Races, ("comm", run.Comm), ("kind", "double_close")));
        Assert.Equal(rounds, scrape.Sum(Races, ("comm", run.Comm)));
        var recent = pipeline.Races.Snapshot().Where(r => r.Pid == run.Pid).ToList();
        Assert.Equal(run.Races.Select(r => ((uint)r.Tid, r.Fd)), recent.Select(r => (r.Tid, r.Fd)));
        Assert.All(recent, r =>
        {
            Assert.Equal("double_close", r.Kind);
            Assert.NotNull(r.ClosedByTid);
            Assert.NotEqual(r.Tid, r.ClosedByTid);
            Assert.InRange(r.GapSeconds!.Value, 0, 1);
        });
    }

    [Fact]
    public void AnFdOneThreadClosedAndAnotherAcceptedIsAReuseGapAndNoRace()
    {
        const int cross = 6, same = 3;
        using var pipeline = new KernelPipeline();

        var run = FdRaceWorkload.Run("reuse", Text(cross), Text(same));

        Assert.Equal(cross, run.Count);
        var scrape = pipeline.Settle("socktrace_accepts_total", 2 * (cross + same), ("comm", run.Comm));
        Assert.Equal(2 * (cross + same), scrape.Sum("socktrace_accepts_total", ("comm", run.Comm)));
        // Only the accepts whose number another thread had closed carry a gap, each under 1 s
        // (all in the bucket at 1 s) and each after its close (a sum above zero).
        Assert.Equal(cross, scrape.Sum("socktrace_fd_reuse_gap_seconds_count", ("comm", run.Comm)));
        Assert.Equal(cross, scrape.Sum("socktrace_fd_reuse_gap_seconds_bucket", ("comm", run.Comm), ("le", "1")));
        Assert.InRange(scrape.Sum("socktrace_fd_reuse_gap_seconds_sum", ("comm", run.Comm)), cross * 1e-7, cross);
        Assert.Equal(0, scrape.Sum(Races, ("comm", run.Comm)));
        Assert.DoesNotContain(pipeline.Races.Snapshot(), r => r.Pid == run.Pid);
    }

    /// <summary>What a user sees first: ordinary servers under load. The kernel hands out the
    /// lowest free fd, so a thread pool's acceptor routinely gets the number a worker just
    /// closed, and a daemon closes every number after fork; none of it is a race.</summary>
    [Theory]
    [InlineData("threadpool", 1000)]
    [InlineData("epoll", 1000)]
    [InlineData("closeall", 200)]
    public void HealthyServersUnderLoadReportNoRace(string mode, int load)
    {
        using var pipeline = new KernelPipeline();

        var run = mode == "threadpool" ? FdRaceWorkload.Run(mode, Text(load), "4") : FdRaceWorkload.Run(mode, Text(load));

        Assert.Equal(load, run.Count);
        if (mode != "closeall")
        {
            var scrape = pipeline.Settle("socktrace_accepts_total", load, ("comm", run.Comm));
            Assert.Equal(load, scrape.Sum("socktrace_accepts_total", ("comm", run.Comm)));
            // The workers' closes were seen: the acceptor got numbers they had just closed.
            if (mode == "threadpool")
                Assert.True(scrape.Sum("socktrace_fd_reuse_gap_seconds_count", ("comm", run.Comm)) > 0, "no reuse gap: the close hook saw none of the workers' closes");
        }
        else
        {
            // A marker after the workload: once its race arrives, every record the children's
            // closes could have made has been read (one ring buffer, read in order).
            var marker = FdRaceWorkload.Run("double-close", "1");
            pipeline.Settle(Races, 1, ("comm", marker.Comm), ("kind", "double_close"));
        }
        Assert.Equal(0, pipeline.Scrape().Sum(Races, ("comm", run.Comm)));
        Assert.DoesNotContain(pipeline.Races.Snapshot(), r => r.Comm == run.Comm);
    }

    [Fact]
    public void FdInstallIsHookedExactlyWhereKprobesOrFentryExist()
    {
        var plan = KernelPipeline.PlanUnderTest().Single(p => p.Hook == Hooks.FdInstall);
        var kernel = KernelPipeline.KernelUnderTest;
        bool expected = kernel.Supports(Hooks.FdInstall, AttachMode.Fentry).Available || kernel.Supports(Hooks.FdInstall, AttachMode.Kprobe).Available;
        Assert.Equal(expected, plan.Mode is not null);
    }
}
