using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;
using static SockTrace.Tests.Metrics.AcceptMetricsTests;

namespace SockTrace.Tests.Metrics;

/// <summary>The accept families as the agent writes them into /metrics: their exact text, and
/// series of listeners that went quiet leaving after the idle time.</summary>
public sealed class AcceptExpositionTests : IDisposable
{
    private const ulong Second = 1_000_000_000;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private ulong _now;

    public void Dispose() => _services.Dispose();

    private AcceptMetrics Metrics(TimeSpan idle, int maxSeries = SeriesLimit.DefaultMaxPerMetric)
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        return new AcceptMetrics(meters, new SeriesLimit(meters, maxSeries), idle: idle, nowNs: () => _now);
    }

    [Fact]
    public void TextFormatIsExactWithCumulativeBucketsAndEscapedLabels()
    {
        var metrics = Metrics(TimeSpan.Zero);
        // 3 us and 40 us durations; a 20 us queue wait; one EAGAIN, counted but not timed. The
        // comm needs escaping.
        metrics.OnAccept(Record(ret: 7, comm: "we\"b\\1", enter: 1_000_000, exit: 1_003_000, established: 983_000));
        metrics.OnAccept(Record(ret: 8, comm: "we\"b\\1", enter: 10_000, exit: 50_000));
        metrics.OnAccept(Record(ret: -11, comm: "we\"b\\1", enter: 60_000, exit: 61_000));

        string[] lines = Exposition.Text(metrics, openMetrics: false).Split('\n');

        Assert.Equal("# TYPE socktrace_accepts_total counter", lines[0]);
        Assert.Equal("socktrace_accepts_total{otel_scope_name=\"SockTrace\",comm=\"we\\\"b\\\\1\",peer=\"loopback\",port=\"8080\"} 2", lines[2]);
        Assert.Equal("socktrace_accept_errors_total{otel_scope_name=\"SockTrace\",comm=\"we\\\"b\\\\1\",errno=\"eagain\",port=\"8080\"} 1", lines[5]);
        var samples = PrometheusText.Parse(string.Join('\n', lines));
        double Bucket(string name, string le) => samples.Sum(name + "_bucket", ("le", le));
        Assert.Equal([0, 0, 1, 1, 1, 2, 2], new[] { "1e-06", "2.5e-06", "5e-06", "1e-05", "2.5e-05", "5e-05", "+Inf" }.Select(le => Bucket("socktrace_accept_duration_seconds", le)));
        Assert.Equal(2, samples.Sum("socktrace_accept_duration_seconds_count"));
        Assert.Equal(43e-6, samples.Sum("socktrace_accept_duration_seconds_sum"), 12);
        Assert.Equal([0, 1, 1], new[] { "1e-05", "2.5e-05", "+Inf" }.Select(le => Bucket("socktrace_accept_queue_wait_seconds", le)));
        Assert.Equal(1, samples.Sum("socktrace_accept_queue_wait_seconds_count"));
        Assert.Equal(SockTraceMeter.LatencyBuckets.Count + 3, samples.Count(s => s.Name.StartsWith("socktrace_accept_duration_seconds", StringComparison.Ordinal)));
    }

    /// <summary>The kernel's own counts of failed calls (st_accept_errors), added at each scrape
    /// as their rise; a key unchanged for a minute is deleted in the kernel and, should it come
    /// back, counts on from the series' total.</summary>
    [Fact]
    public void KernelErrorCountsAddTheirRiseAndIdleKeysAreDeleted()
    {
        var metrics = Metrics(TimeSpan.Zero);
        var key = new SockTrace.Agent.Events.AcceptErrorKey { ListenPort = 9090, Errno = 11 };
        "poller"u8.CopyTo(key.Comm);
        var kernel = new List<(SockTrace.Agent.Events.AcceptErrorKey, ulong)> { (key, 3) };
        var forgotten = new List<ushort>();
        metrics.ObserveKernelErrors(() => kernel, k => { forgotten.Add(k.ListenPort); return true; });
        double Errors() => PrometheusText.Parse(Exposition.Text(metrics)).Sum("socktrace_accept_errors_total", ("port", "9090"), ("errno", "eagain"), ("comm", "poller"));

        _now = 1 * Second;
        Assert.Equal(3, Errors());
        kernel[0] = (key, 5);
        _now = 2 * Second;
        Assert.Equal(5, Errors());
        _now = 2 * Second + (ulong)AcceptMetrics.KernelKeyIdle.Ticks * 100 + 1;
        Assert.Equal(5, Errors());
        Assert.Equal([(ushort)9090], forgotten);
        // Deleted in the kernel: it counts again from zero there.
        kernel.Clear();
        Assert.Equal(5, Errors());
        kernel.Add((key, 2));
        Assert.Equal(7, Errors());
        Assert.Equal(0, PrometheusText.Parse(Exposition.Text(metrics)).Sum("socktrace_accept_duration_seconds_count"));
    }

    [Fact]
    public void OpenMetricsNamesCounterFamiliesWithoutTotalAndGivesHistogramsAUnit()
    {
        var metrics = Metrics(TimeSpan.Zero);
        metrics.OnAccept(Record(ret: 7, established: 1_000));

        string text = Exposition.Text(metrics, openMetrics: true);

        Assert.StartsWith("# TYPE socktrace_accepts counter\n# HELP socktrace_accepts Successful", text);
        Assert.Contains("\nsocktrace_accepts_total{otel_scope_name=\"SockTrace\",comm=\"nginx\",peer=\"loopback\",port=\"8080\"} 1\n", text);
        Assert.Contains("\n# TYPE socktrace_accept_duration_seconds histogram\n# UNIT socktrace_accept_duration_seconds seconds\n", text);
        Assert.DoesNotContain("socktrace_accept_errors", text);
    }

    [Fact]
    public void ASeriesWithNoRecordForTheIdleTimeLeavesAndComesBackFromZero()
    {
        var metrics = Metrics(TimeSpan.FromSeconds(60));
        metrics.OnAccept(Record(ret: 7, port: 1001, enter: 9 * Second, exit: 10 * Second, established: 9 * Second));
        metrics.OnAccept(Record(ret: 7, port: 1001, enter: 9 * Second, exit: 10 * Second));
        metrics.OnAccept(Record(ret: -11, port: 1001, enter: 9 * Second, exit: 10 * Second));
        metrics.OnAccept(Record(ret: 7, port: 2002, enter: 49 * Second, exit: 50 * Second));

        _now = 69 * Second; // 1001 idle 59 s: stays
        var samples = Exposition.Of(metrics);
        Assert.Equal(2, samples.Sum("socktrace_accepts_total", ("port", "1001")));
        Assert.Equal(1, samples.Sum("socktrace_accept_errors_total", ("port", "1001")));

        _now = 71 * Second; // 1001 idle 61 s: every family's series leaves; 2002 idle 21 s
        samples = Exposition.Of(metrics);
        Assert.DoesNotContain(samples, s => s.Labels.GetValueOrDefault("port") == "1001");
        Assert.Equal(1, samples.Sum("socktrace_accepts_total", ("port", "2002")));
        Assert.Equal(1, samples.Sum("socktrace_accept_duration_seconds_count", ("port", "2002")));

        metrics.OnAccept(Record(ret: 7, port: 1001, enter: 70 * Second, exit: 71 * Second));
        samples = Exposition.Of(metrics);
        Assert.Equal(1, samples.Sum("socktrace_accepts_total", ("port", "1001")));
        Assert.Equal(1, samples.Sum("socktrace_accept_duration_seconds_count", ("port", "1001")));
        Assert.Equal(0, samples.Sum("socktrace_accept_queue_wait_seconds_count", ("port", "1001")));
    }

    [Fact]
    public void AnIdleSeriesFreesItsPlaceUnderTheCap()
    {
        var metrics = Metrics(TimeSpan.FromSeconds(60), maxSeries: 1);
        metrics.OnAccept(Record(ret: 7, port: 1001, exit: 10 * Second));
        metrics.OnAccept(Record(ret: 7, port: 2002, exit: 20 * Second)); // at the cap: folded
        _now = 20 * Second;
        Assert.Equal(1, Exposition.Of(metrics).Sum("socktrace_accepts_total", ("port", "other")));

        // 1001 idle for 61 s when 3003 arrives: swept at the cap, so 3003 gets its own series.
        _now = 71 * Second;
        metrics.OnAccept(Record(ret: 7, port: 3003, exit: 71 * Second));
        var samples = Exposition.Of(metrics);
        Assert.Equal(1, samples.Sum("socktrace_accepts_total", ("port", "3003")));
        Assert.Equal(0, samples.Sum("socktrace_accepts_total", ("port", "1001")));
        Assert.Equal(1, samples.Sum("socktrace_accepts_total", ("port", "other")));
    }

    [Fact]
    public void IdlenessIsJudgedByTheAgentsClockNotByARecordsTimestamp()
    {
        var metrics = Metrics(TimeSpan.FromSeconds(60), maxSeries: 1);
        metrics.OnAccept(Record(ret: 7, port: 1001, exit: 10 * Second));
        _now = 20 * Second;
        // A record stamped far in the future reaches the cap: nothing is 60 s idle by the clock.
        metrics.OnAccept(Record(ret: 7, port: 2002, exit: ulong.MaxValue / 2));

        var samples = Exposition.Of(metrics);
        Assert.Equal(1, samples.Sum("socktrace_accepts_total", ("port", "1001")));
        Assert.Equal(1, samples.Sum("socktrace_accepts_total", ("port", "other")));
    }

    [Fact]
    public void ZeroIdleTimeKeepsSeriesForGood()
    {
        var metrics = Metrics(TimeSpan.Zero);
        metrics.OnAccept(Record(ret: 7, port: 1001, exit: 10 * Second));
        _now = 1_000_000 * Second;
        Assert.Equal(1, Exposition.Of(metrics).Sum("socktrace_accepts_total", ("port", "1001")));
    }
}
