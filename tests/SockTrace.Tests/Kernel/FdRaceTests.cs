using System.Globalization;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>fd races from a real workload (Workloads/fdrace.c), counted exactly; and healthy
/// servers under load, which must count none.</summary>
[Trait("Category", "Kernel")]
public sealed class FdRaceTests
{
    private static Func<CollectedMeasurement<T>, bool> Of<T>(FdRaceRun run) where T : struct =>
        m => (string?)m.Tags["comm"] == run.Comm;

    private static Func<CollectedMeasurement<long>, bool> Race(string kind, FdRaceRun run) =>
        m => (string?)m.Tags["kind"] == kind && (string?)m.Tags["comm"] == run.Comm;

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
        var counted = pipeline.Settle(pipeline.FdRaces, Race("dup2_busy", run), rounds);
        Assert.Equal(rounds, counted.Sum(m => m.Value));
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
        Assert.DoesNotContain(pipeline.FdRaces.GetMeasurementSnapshot(), m => Of<long>(run)(m) && (string?)m.Tags["kind"] != "dup2_busy");
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
        var counted = pipeline.Settle(pipeline.FdRaces, Race("double_close", run), rounds);
        Assert.Equal(rounds, counted.Sum(m => m.Value));
        Assert.Equal(rounds, pipeline.FdRaces.GetMeasurementSnapshot().Where(Of<long>(run)).Sum(m => m.Value));
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
        pipeline.Settle(pipeline.Accepts, Of<long>(run), 2 * (cross + same));
        Assert.Equal(2 * (cross + same), pipeline.Accepts.GetMeasurementSnapshot().Where(Of<long>(run)).Sum(m => m.Value));
        // Only the accepts whose number another thread had closed carry a gap.
        var gaps = pipeline.ReuseGaps.GetMeasurementSnapshot().Where(Of<double>(run)).ToList();
        Assert.Equal(cross, gaps.Count);
        Assert.All(gaps, g => Assert.InRange(g.Value, 1e-7, 1));
        Assert.DoesNotContain(pipeline.FdRaces.GetMeasurementSnapshot(), m => Of<long>(run)(m));
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
            pipeline.Settle(pipeline.Accepts, Of<long>(run), load);
            Assert.Equal(load, pipeline.Accepts.GetMeasurementSnapshot().Where(Of<long>(run)).Sum(m => m.Value));
        }
        else
        {
            // A marker after the workload: once its race arrives, every record the children's
            // closes could have made has been read (one ring buffer, read in order).
            var marker = FdRaceWorkload.Run("double-close", "1");
            pipeline.Settle(pipeline.FdRaces, Race("double_close", marker), 1);
        }
        Assert.DoesNotContain(pipeline.FdRaces.GetMeasurementSnapshot(), m => Of<long>(run)(m));
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
