using System.Globalization;
using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// Accepts made through io_uring (IORING_OP_ACCEPT, Workloads/uring.c with liburing), which
/// never call accept4(): counted exactly, single-shot and multishot, with their queue waits,
/// by the accept_io_uring hook, or where io_uring accepts through __sys_accept4_file()
/// (before 5.15) by the accept hook itself.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed class IoUringAcceptTests(ITestOutputHelper output)
{
    private static int s_runs;

    [Fact]
    public void SingleShotAcceptsAreCountedWithTheirQueueWaits()
    {
        const int n = 6;
        var wait = TimeSpan.FromMilliseconds(30);
        using var pipeline = new KernelPipeline();
        AssertCovered(pipeline);

        var run = Run("single", n, (int)wait.TotalMilliseconds);

        Assert.Equal(n, run.Count("accepted"));
        var scrape = pipeline.Settle("socktrace_accepts_total", n, ("comm", run.Comm));
        output.WriteLine(string.Join("\n", scrape.Where(s => s.Labels.GetValueOrDefault("comm") == run.Comm)));
        Assert.Equal(n, scrape.Sum("socktrace_accepts_total", ("comm", run.Comm), ("port", run.Port), ("peer", "loopback")));
        Assert.Equal(0, scrape.Sum("socktrace_accept_errors_total", ("comm", run.Comm)));
        Assert.Equal(n, scrape.Sum("socktrace_accept_duration_seconds_count", ("comm", run.Comm)));
        // Every connection's wait in the queue: the odd ones waited W there, the even ones none.
        Assert.Equal(n, scrape.Sum("socktrace_accept_queue_wait_seconds_count", ("comm", run.Comm)));
        Assert.InRange(scrape.Sum("socktrace_accept_queue_wait_seconds_sum", ("comm", run.Comm)), n / 2 * wait.TotalSeconds * 0.9, n / 2 * wait.TotalSeconds + 2);
    }

    /// <summary>One multishot request takes every connection, and its cancellation is what
    /// the application saw last: one ECANCELED. Before 5.19 (Debian's 5.10 has 5.15's
    /// io_uring) the kernel refuses the request before it is submitted: no accept at all.</summary>
    [Fact]
    public void MultishotAcceptsAreCountedAndItsCancellationIsOneError()
    {
        const int n = 8;
        using var pipeline = new KernelPipeline();
        AssertCovered(pipeline);

        var run = Run("multi", n);

        if (run.Values.ContainsKey("multishot"))
        {
            Thread.Sleep(500);
            var refused = pipeline.Scrape();
            Assert.Equal(0, refused.Sum("socktrace_accept_errors_total", ("comm", run.Comm)));
            Assert.Equal(0, refused.Sum("socktrace_accepts_total", ("comm", run.Comm)));
            return;
        }
        Assert.Equal((n, 1), (run.Count("accepted"), run.Count("cancelled")));
        var scrape = pipeline.Settle("socktrace_accept_errors_total", 1, ("comm", run.Comm));
        scrape = pipeline.Settle("socktrace_accepts_total", n, ("comm", run.Comm));
        Assert.Equal(n, scrape.Sum("socktrace_accepts_total", ("comm", run.Comm), ("port", run.Port)));
        Assert.Equal(1, scrape.Sum("socktrace_accept_errors_total", ("comm", run.Comm), ("port", run.Port), ("errno", "ecanceled")));
        Assert.Equal(1, scrape.Sum("socktrace_accept_errors_total", ("comm", run.Comm)));
        Assert.Equal(n, scrape.Sum("socktrace_accept_queue_wait_seconds_count", ("comm", run.Comm)));
    }

    /// <summary>io_uring accepts are seen by one hook or the other on every kernel: the
    /// accept_io_uring hook, or __sys_accept4_file() under the accept hook.</summary>
    private static void AssertCovered(KernelPipeline pipeline)
    {
        var uring = pipeline.Plan.Single(p => p.Hook == Hooks.AcceptIoUring);
        var accept = pipeline.Plan.Single(p => p.Hook == Hooks.Accept);
        Assert.True(uring.Mode is not null || accept.Programs.Any(p => p.KernelFunction == "__sys_accept4_file"),
            $"neither accept_io_uring ({uring.Why}) nor the accept hook's programs ({string.Join(", ", accept.Programs.Select(p => p.Name))}) see io_uring accepts");
    }

    private sealed record UringRun(string Comm, string Port, Dictionary<string, int> Values)
    {
        public int Count(string key) => Values.GetValueOrDefault(key);
    }

    private static UringRun Run(string mode, int n, int waitMs = 0)
    {
        string comm = $"uring-{mode}{Interlocked.Increment(ref s_runs)}";
        string binary = Path.Combine(Path.GetDirectoryName(FdRaceWorkload.Locate("uring"))!, comm);
        File.Copy(FdRaceWorkload.Locate("uring"), binary, overwrite: true);
        string text = Command.Output(binary, mode, n.ToString(CultureInfo.InvariantCulture), waitMs.ToString(CultureInfo.InvariantCulture));
        var values = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToDictionary(f => f[0], f => int.Parse(f[1], CultureInfo.InvariantCulture));
        return new UringRun(comm, values["port"].ToString(CultureInfo.InvariantCulture), values);
    }
}
