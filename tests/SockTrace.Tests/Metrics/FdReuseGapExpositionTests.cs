using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;
using static SockTrace.Tests.Metrics.AcceptMetricsTests;

namespace SockTrace.Tests.Metrics;

/// <summary>socktrace_fd_reuse_gap_seconds as /metrics carries it: one observation per accept
/// that returned a number another thread had closed, by process, none otherwise.</summary>
public sealed class FdReuseGapExpositionTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private ulong _now = 10_000_000_000;

    public void Dispose() => _services.Dispose();

    private AcceptMetrics Metrics(TimeSpan idle, int maxSeries = SeriesLimit.DefaultMaxPerMetric)
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        return new AcceptMetrics(meters, new SeriesLimit(meters, maxSeries), idle: idle, nowNs: () => _now);
    }

    private static Agent.Events.AcceptRecord Reused(string comm, ulong exit, ulong closed, int ret = 7)
    {
        var r = Record(ret: ret, comm: comm, enter: exit - 1_000, exit: exit);
        r.FdClosedNs = closed;
        return r;
    }

    [Fact]
    public void EachReuseIsOneObservationOfItsGapAndAcceptsWithoutOneAddNothing()
    {
        var metrics = Metrics(TimeSpan.Zero);
        metrics.OnAccept(Reused("pool", exit: 2_000_000, closed: 1_997_000));    // 3 us
        metrics.OnAccept(Reused("pool", exit: 5_000_000, closed: 4_960_000));    // 40 us
        metrics.OnAccept(Record(ret: 8, comm: "pool"));                          // no close by another thread
        metrics.OnAccept(Reused("pool", exit: 6_000_000, closed: 5_000_000, ret: -11)); // a failed accept returns no fd
        metrics.OnAccept(Reused("pool", exit: 6_000_000, closed: 7_000_000));    // a close after the return: not trusted

        var samples = PrometheusText.Parse(Exposition.Text(metrics, openMetrics: false));

        Assert.Equal(2, samples.Sum("socktrace_fd_reuse_gap_seconds_count", ("comm", "pool")));
        Assert.Equal(43e-6, samples.Sum("socktrace_fd_reuse_gap_seconds_sum", ("comm", "pool")), 12);
        Assert.Equal(1, samples.Sum("socktrace_fd_reuse_gap_seconds_bucket", ("comm", "pool"), ("le", "5e-06")));
        Assert.Equal(2, samples.Sum("socktrace_fd_reuse_gap_seconds_bucket", ("comm", "pool"), ("le", "5e-05")));
        Assert.Equal(4, samples.Sum("socktrace_accepts_total", ("comm", "pool")));
    }

    [Fact]
    public void NoReuseNoFamilyAndTheHelpSaysItIsNoRace()
    {
        var metrics = Metrics(TimeSpan.Zero);
        metrics.OnAccept(Record(ret: 7));
        Assert.DoesNotContain("socktrace_fd_reuse_gap_seconds", Exposition.Text(metrics, openMetrics: false));

        metrics.OnAccept(Reused("nginx", exit: 2_000_000, closed: 1_000_000));
        string text = Exposition.Text(metrics, openMetrics: true);
        Assert.Contains("# TYPE socktrace_fd_reuse_gap_seconds histogram\n", text);
        Assert.Contains("# UNIT socktrace_fd_reuse_gap_seconds seconds\n", text);
        Assert.Contains("Not a race", text);
    }

    [Fact]
    public void ProcessesPastTheCapFoldIntoOtherAndQuietOnesLeave()
    {
        var metrics = Metrics(TimeSpan.FromSeconds(60), maxSeries: 2);
        _now = 100_000_000_000;
        metrics.OnAccept(Reused("a", exit: _now, closed: _now - 1_000));
        metrics.OnAccept(Reused("b", exit: _now, closed: _now - 1_000));
        metrics.OnAccept(Reused("c", exit: _now, closed: _now - 1_000));
        metrics.OnAccept(Reused("d", exit: _now, closed: _now - 1_000));

        var samples = PrometheusText.Parse(Exposition.Text(metrics, openMetrics: false));
        Assert.Equal(2, samples.Sum("socktrace_fd_reuse_gap_seconds_count", ("comm", "other")));
        Assert.Equal(1, samples.Sum("socktrace_fd_reuse_gap_seconds_count", ("comm", "a")));

        _now += 61_000_000_000;
        Assert.DoesNotContain("socktrace_fd_reuse_gap_seconds", Exposition.Text(metrics, openMetrics: false));
    }
}
