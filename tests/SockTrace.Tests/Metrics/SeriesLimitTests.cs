using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Events;
using SockTrace.Agent.Hosting;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Metrics;

public sealed class SeriesLimitTests : IDisposable
{
    private const int Cap = 3;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly IMeterFactory _meters;
    private readonly SeriesLimit _limit;
    private readonly MetricCollector<long> _accepts;
    private readonly MetricCollector<long> _errors;
    private readonly MetricCollector<double> _duration;
    private readonly MetricCollector<long> _overflow;

    public SeriesLimitTests()
    {
        _meters = _services.GetRequiredService<IMeterFactory>();
        _limit = new SeriesLimit(_meters, Cap);
        _accepts = new(_meters, SockTraceMeter.Name, "socktrace.accepts");
        _errors = new(_meters, SockTraceMeter.Name, "socktrace.accept.errors");
        _duration = new(_meters, SockTraceMeter.Name, "socktrace.accept.duration");
        _overflow = new(_meters, SockTraceMeter.Name, "socktrace.series.overflow");
    }

    private static AcceptRecord Accept(ushort port, int ret = 7, string comm = "server")
    {
        var r = new AcceptRecord
        {
            Header = new RecordHeader { Type = RecordTypes.Accept, Size = (uint)Unsafe.SizeOf<AcceptRecord>() },
            Ret = ret,
            ListenPort = port,
            Family = 2,
            EnterNs = 1_000,
            ExitNs = 2_000,
        };
        r.PeerAddr[0] = 127;
        System.Text.Encoding.UTF8.GetBytes(comm).CopyTo((Span<byte>)r.Comm);
        return r;
    }

    /// <summary>Each series of a collector as "label=value,..." and its total.</summary>
    private static Dictionary<string, long> Series<T>(MetricCollector<T> collector, Func<T, long> value) where T : struct =>
        collector.GetMeasurementSnapshot()
            .GroupBy(m => string.Join(",", m.Tags.OrderBy(t => t.Key).Select(t => $"{t.Key}={t.Value}")))
            .ToDictionary(g => g.Key, g => g.Sum(m => value(m.Value)));

    private long Overflowed(string metric) =>
        _overflow.GetMeasurementSnapshot().Where(m => (string?)m.Tags["metric"] == metric).Sum(m => m.Value);

    [Fact]
    public void LabelSetsPastTheCapFoldIntoOtherAndAreCounted()
    {
        var metrics = new AcceptMetrics(_meters, _limit);

        // Ports 1..5 accept once each, then port 1 (known) and port 5 (folded) once more.
        foreach (ushort port in new ushort[] { 1, 2, 3, 4, 5, 1, 5 })
            metrics.OnAccept(Accept(port));

        Assert.Equal(new Dictionary<string, long>
        {
            ["comm=server,peer=loopback,port=1"] = 2,
            ["comm=server,peer=loopback,port=2"] = 1,
            ["comm=server,peer=loopback,port=3"] = 1,
            ["comm=other,peer=loopback,port=other"] = 3,
        }, Series(_accepts, v => v));
        Assert.Equal(3, Overflowed("socktrace_accepts_total"));
        Assert.Equal(Cap + 1, Series(_duration, _ => 1L).Count);
        Assert.Equal(3, Overflowed("socktrace_accept_duration_seconds"));
    }

    [Fact]
    public void EachMetricHasItsOwnCapAndTheHistogramsShareOne()
    {
        var metrics = new AcceptMetrics(_meters, _limit);
        foreach (ushort port in new ushort[] { 1, 2, 3 })
            metrics.OnAccept(Accept(port));

        // The errors counter has room for port 4, but the histograms' three (port, comm)
        // sets are taken by the accepts: the error counts under its port (and is not timed);
        // an accept on port 5 counts under its port too, its duration under "other".
        metrics.OnAccept(Accept(4, ret: -11));
        metrics.OnAccept(Accept(5));

        Assert.Equal(new Dictionary<string, long> { ["comm=server,errno=eagain,port=4"] = 1 }, Series(_errors, v => v));
        Assert.Equal(0, Overflowed("socktrace_accept_errors_total"));
        Assert.Equal(1, Series(_duration, _ => 1L)["comm=other,port=other"]);
        Assert.Equal(1, Overflowed("socktrace_accept_duration_seconds"));
    }

    [Fact]
    public void PastTheCapErrnosStayApartAndErrnosOutsideTheKernelsRangeShareOneSet()
    {
        var limit = new SeriesLimit(_meters, 1);
        var metrics = new AcceptMetrics(_meters, limit);
        metrics.OnAccept(Accept(1, ret: -11));
        metrics.OnAccept(Accept(2, ret: -11));
        metrics.OnAccept(Accept(3, ret: -24));
        metrics.OnAccept(Accept(4, ret: -100_000));
        metrics.OnAccept(Accept(5, ret: -200_000));

        Assert.Equal(new Dictionary<string, long>
        {
            ["comm=server,errno=eagain,port=1"] = 1,
            ["comm=other,errno=eagain,port=other"] = 1,
            ["comm=other,errno=emfile,port=other"] = 1,
            ["comm=other,errno=errno_other,port=other"] = 2,
        }, Series(_errors, v => v));
        Assert.Equal(4, Overflowed("socktrace_accept_errors_total"));
    }

    [Fact]
    public void FdRacesFoldTheProcessButKeepTheKindAndRacesStillNameIt()
    {
        var recent = new RecentRaces();
        var metrics = new FdRaceMetrics(_meters, recent, NullLogger<FdRaceMetrics>.Instance, new SeriesLimit(_meters, 2));
        foreach (var (kind, comm) in new[] { (RaceKinds.Dup2Busy, "a"), (RaceKinds.Dup2Busy, "b"), (RaceKinds.Dup2Busy, "c"), (RaceKinds.DoubleClose, "d"), (RaceKinds.Dup2Busy, "a") })
        {
            var r = new FdRaceRecord { Kind = kind, Fd = 9 };
            System.Text.Encoding.UTF8.GetBytes(comm).CopyTo((Span<byte>)r.Comm);
            metrics.OnFdRace(r);
        }

        Assert.Equal(new Dictionary<string, long>
        {
            ["comm=a,kind=dup2_busy"] = 2,
            ["comm=b,kind=dup2_busy"] = 1,
            ["comm=other,kind=dup2_busy"] = 1,
            ["comm=other,kind=double_close"] = 1,
        }, Exposition.Of(metrics).Where(s => s.Name == "socktrace_fd_races_total").ToDictionary(
            s => string.Join(",", s.Labels.Where(l => l.Key != "otel_scope_name").OrderBy(l => l.Key).Select(l => $"{l.Key}={l.Value}")), s => (long)s.Value));
        Assert.Equal(2, Overflowed("socktrace_fd_races_total"));
        Assert.Equal(["a", "b", "c", "d", "a"], recent.Snapshot().Select(r => r.Comm));
    }

    [Fact]
    public void ManyListenersStayWithinTheCap()
    {
        var metrics = new AcceptMetrics(_meters, new SeriesLimit(_meters, 100));
        for (int i = 0; i < 50_000; i++)
            metrics.OnAccept(Accept((ushort)(1 + i % 20_000), comm: "c" + (i % 7)));

        Assert.Equal(101, Series(_accepts, v => v).Count);
        Assert.Equal(50_000, Series(_accepts, v => v).Values.Sum());
        Assert.Equal(101, Series(_duration, _ => 1L).Count);
        // Only the first 100 calls' (port, comm) pairs ever come back: 20,000 % 7 is 1, so
        // a port seen again has another comm.
        Assert.Equal(49_900, Overflowed("socktrace_accepts_total"));
    }

    private static AgentOptions Options(params (string Key, string Value)[] settings) =>
        AgentOptions.From(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build());

    [Fact]
    public void TheCapIsASettingWithASaneDefault()
    {
        Assert.Equal(2000, Options().MaxSeriesPerMetric);
        Assert.Equal(50, Options(("SockTrace:MaxSeriesPerMetric", "50")).MaxSeriesPerMetric);
        Assert.Equal("SockTrace:MaxSeriesPerMetric", AgentCommandLine.Parse(["--max-series-per-metric", "7"]).Settings.Single().Key);
    }

    [Theory]
    [InlineData("0", "must be from 1 to 1000000")]
    [InlineData("1000001", "must be from 1 to 1000000")]
    [InlineData("lots", "must be a whole number")]
    public void ABadCapNamesTheSetting(string value, string rule)
    {
        var ex = Assert.Throws<StartupException>(() => Options(("SockTrace:MaxSeriesPerMetric", value)));
        Assert.Equal(ExitCodes.Usage, ex.ExitCode);
        Assert.Equal($"invalid --max-series-per-metric (SOCKTRACE_MAX_SERIES_PER_METRIC, SockTrace:MaxSeriesPerMetric) value '{value}': {rule}", ex.Message);
    }

    public void Dispose()
    {
        foreach (var c in new IDisposable[] { _accepts, _errors, _duration, _overflow })
            c.Dispose();
        _services.Dispose();
    }
}
