using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;

namespace SockTrace.Reference.Tests.Support;

/// <summary>
/// The agent's decoder and metrics, with their own meters, fed raw records: one for the
/// model's records and one for the kernel's, so the two can be compared series by series,
/// each read as /metrics writes it (the accept families, the fd reuse gaps and the fd races
/// are written by the agent itself, <see cref="Hosting.MetricsEndpoint"/>).
/// </summary>
internal sealed class Aggregation : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly AcceptMetrics _accepts;
    private readonly FdRaceMetrics _races;
    private readonly IRecordSink _sink;

    /// <param name="wrap">Puts something between the records and the decoder (a broken double, in one test).</param>
    public Aggregation(Func<IRecordSink, IRecordSink>? wrap = null)
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        _accepts = new AcceptMetrics(meters);
        _races = new FdRaceMetrics(meters, new RecentRaces(), NullLogger<FdRaceMetrics>.Instance);
        Decoder = new RecordPipeline(_accepts, _races).Decoder;
        _sink = wrap is null ? Decoder : wrap(Decoder);
    }

    /// <summary>Failed accepts the kernel counted itself (st_accept_errors), which come in no record.</summary>
    public void KernelErrors(IReadOnlyList<(AcceptErrorKey Key, ulong Count)> counts) =>
        _accepts.ObserveKernelErrors(() => counts, _ => true);

    public RecordDecoder Decoder { get; }

    public void Feed(IEnumerable<byte[]> records)
    {
        foreach (var r in records)
            _sink.OnRecord(r);
    }

    /// <summary>Every series, with each `port` label replaced by the listener's name (the
    /// kernel picks its own ports): a counter's value, a histogram's count and sum.</summary>
    public MetricSummary Summary(IReadOnlyDictionary<string, string> portNames)
    {
        var text = new StringBuilder();
        var writer = new ExpositionWriter(text, openMetrics: false);
        _accepts.WriteTo(writer);
        _races.WriteTo(writer);
        var samples = PrometheusText.Parse(text.ToString());
        var summary = new MetricSummary();
        foreach (var s in samples)
        {
            var labels = s.Labels.Where(l => l.Key is not ("otel_scope_name" or "le")).ToDictionary(l => l.Key, l => (object?)l.Value);
            if (s.Name.EndsWith("_total", StringComparison.Ordinal))
                summary.Add(s.Name, labels, portNames, (long)s.Value, 0);
            else if (s.Name.EndsWith("_count", StringComparison.Ordinal))
                summary.Add(s.Name[..^"_count".Length], labels, portNames, (long)s.Value, 0);
            else if (s.Name.EndsWith("_sum", StringComparison.Ordinal))
                summary.Add(s.Name[..^"_sum".Length], labels, portNames, 0, s.Value);
        }
        return summary;
    }

    public void Dispose() => _services.Dispose();
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
