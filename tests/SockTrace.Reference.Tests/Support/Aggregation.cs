using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Reference.Tests.Support;

/// <summary>
/// The agent's decoder and metrics, with their own meters, fed raw records: one for the
/// model's records and one for the kernel's, so the two can be compared series by series.
/// </summary>
internal sealed class Aggregation : IDisposable
{
    private static readonly string[] Counters = ["socktrace.accepts", "socktrace.accept.errors", "socktrace.fd_races"];
    private static readonly string[] Histograms = ["socktrace.accept.duration", "socktrace.accept.queue_wait", "socktrace.fd.reuse_gap"];
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly List<MetricCollector<long>> _counters = [];
    private readonly List<MetricCollector<double>> _histograms = [];
    private readonly IRecordSink _sink;

    /// <param name="wrap">Puts something between the records and the decoder (a broken double, in one test).</param>
    public Aggregation(Func<IRecordSink, IRecordSink>? wrap = null)
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        foreach (string name in Counters)
            _counters.Add(new MetricCollector<long>(meters, SockTraceMeter.Name, name));
        foreach (string name in Histograms)
            _histograms.Add(new MetricCollector<double>(meters, SockTraceMeter.Name, name));
        Decoder = new RecordDecoder(new AcceptMetrics(meters), new FdRaceMetrics(meters, new RecentRaces(), NullLogger<FdRaceMetrics>.Instance));
        _sink = wrap is null ? Decoder : wrap(Decoder);
    }

    public RecordDecoder Decoder { get; }

    public void Feed(IEnumerable<byte[]> records)
    {
        foreach (var r in records)
            _sink.OnRecord(r);
    }

    /// <summary>Every series, with each `port` label replaced by the listener's name (the
    /// kernel picks its own ports).</summary>
    public MetricSummary Summary(IReadOnlyDictionary<string, string> portNames)
    {
        var summary = new MetricSummary();
        foreach (var c in _counters)
            foreach (var m in c.GetMeasurementSnapshot())
                summary.Add(c.Instrument!.Name, m.Tags, portNames, m.Value, 0);
        foreach (var h in _histograms)
            foreach (var m in h.GetMeasurementSnapshot())
                summary.Add(h.Instrument!.Name, m.Tags, portNames, 1, m.Value);
        return summary;
    }

    public void Dispose()
    {
        foreach (var c in _counters)
            c.Dispose();
        foreach (var h in _histograms)
            h.Dispose();
        _services.Dispose();
    }
}

/// <summary>A test double for a broken aggregation: it loses every record of one type.</summary>
internal sealed class DroppingSink(IRecordSink inner, uint droppedType) : IRecordSink
{
    public void OnRecord(ReadOnlySpan<byte> record)
    {
        if (record.Length >= 4 && BitConverter.ToUInt32(record) == droppedType)
            return;
        inner.OnRecord(record);
    }
}
