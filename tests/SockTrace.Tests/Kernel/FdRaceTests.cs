using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>fd races from a real workload (Workloads/fdrace.c), counted exactly.</summary>
[Trait("Category", "Kernel")]
public sealed class FdRaceTests
{
    private static Func<CollectedMeasurement<long>, bool> Race(string kind, FdRaceRun run) =>
        m => (string?)m.Tags["kind"] == kind && (string?)m.Tags["comm"] == run.Comm;

    [Fact]
    public void EveryDup2OntoAReservedFdIsCounted()
    {
        const int rounds = 5;
        using var pipeline = new KernelPipeline();

        var run = FdRaceWorkload.Run("dup2-busy", rounds.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(rounds, run.Count);
        var counted = pipeline.Settle(pipeline.FdRaces, Race("dup2_busy", run), rounds);
        Assert.Equal(rounds, counted.Sum(m => m.Value));
        var recent = pipeline.Races.Snapshot().Where(r => r.Pid == run.Pid && r.Kind == "dup2_busy").ToList();
        Assert.Equal(rounds, recent.Count);
        Assert.All(recent, r =>
        {
            Assert.Equal("dup2_busy", r.Kind);
            Assert.Equal((uint)run.Pid, r.Tid); // the main thread dup2()s
        });
        Assert.Equal(run.Races.Select(r => r.Fd), recent.Select(r => r.Fd));
        // A reserved slot is empty until fd_install(): nothing was installed over a file.
        Assert.DoesNotContain(pipeline.FdRaces.GetMeasurementSnapshot(), m => Race("install_overwrite", run)(m));
    }

    [Fact]
    public void AnFdClosedByOneThreadAndAcceptedByAnotherIsCountedAsTheWorkloadSawIt()
    {
        // A window wide enough that scheduling noise (software emulation included) cannot
        // push a fast reuse past it, with slow reuses four windows later: no boundary cases.
        var window = TimeSpan.FromMilliseconds(250);
        using var pipeline = new KernelPipeline(window);

        var run = FdRaceWorkload.Run("reuse", "6", "3", "250000");

        Assert.Equal(6, run.Count);
        var counted = pipeline.Settle(pipeline.FdRaces, Race("reuse_after_close", run), run.Count);
        Assert.Equal(run.Count, counted.Sum(m => m.Value));
        var recent = pipeline.Races.Snapshot().Where(r => r.Pid == run.Pid).ToList();
        Assert.Equal(run.Races.Select(r => (r.Tid, r.Fd)), recent.Select(r => ((int)r.Tid, r.Fd)));
        Assert.All(recent, r =>
        {
            Assert.Equal("reuse_after_close", r.Kind);
            Assert.NotEqual(r.Tid, r.ClosedByTid);
            Assert.InRange(r.GapSeconds!.Value, 0, window.TotalSeconds);
        });
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
