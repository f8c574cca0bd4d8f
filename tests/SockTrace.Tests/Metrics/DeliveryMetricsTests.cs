using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Metrics;

public sealed class DeliveryMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MetricCollector<long> _bytes;
    private readonly MetricCollector<long> _segments;
    private readonly MetricCollector<long> _pairs;
    private List<Delivery> _deliveries = [];
    private List<LocalPair> _localPairs = [];
    private List<DeliveryLatency> _latencies = [];
    private readonly DeliveryMetrics _metrics;

    public DeliveryMetricsTests()
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        var metrics = _metrics = new DeliveryMetrics(meters, maxPairSeries: 2);
        _bytes = new(meters, SockTraceMeter.Name, "socktrace.socket.rx.bytes");
        _segments = new(meters, SockTraceMeter.Name, "socktrace.socket.rx.segments");
        _pairs = new(meters, SockTraceMeter.Name, "socktrace.loopback.local_pair.bytes");
        metrics.Observe(() => _deliveries, () => _localPairs, () => _latencies);
    }

    private static Dictionary<string, long> ByPath(MetricCollector<long> collector)
    {
        collector.Clear();
        collector.RecordObservableInstruments();
        return collector.GetMeasurementSnapshot().ToDictionary(m => (string)m.Tags["path"]!, m => m.Value);
    }

    private Dictionary<(string, string), long> Pairs()
    {
        _pairs.Clear();
        _pairs.RecordObservableInstruments();
        return _pairs.GetMeasurementSnapshot().ToDictionary(m => ((string)m.Tags["port"]!, (string)m.Tags["comm"]!), m => m.Value);
    }

    [Fact]
    public void NamespacesAddUpByPathAndTotalsNeverGoBack()
    {
        _deliveries = [new(1, RxPaths.Loopback, 100, 2), new(2, RxPaths.Loopback, 50, 1), new(2, RxPaths.Virtual, 7000, 5)];
        Assert.Equal(new Dictionary<string, long> { ["loopback"] = 150, ["virtual"] = 7000 }, ByPath(_bytes));
        Assert.Equal(new Dictionary<string, long> { ["loopback"] = 3, ["virtual"] = 5 }, ByPath(_segments));

        // Namespace 2 is gone (its keys evicted), namespace 1 delivered more, a NIC appeared.
        _deliveries = [new(1, RxPaths.Loopback, 130, 3), new(3, RxPaths.Nic, 1448, 1)];
        Assert.Equal(new Dictionary<string, long> { ["loopback"] = 180, ["virtual"] = 7000, ["nic"] = 1448 }, ByPath(_bytes));

        // An evicted key that comes back starts from zero, and adds instead of going back.
        _deliveries = [new(1, RxPaths.Loopback, 10, 1), new(3, RxPaths.Nic, 1448, 1)];
        Assert.Equal(new Dictionary<string, long> { ["loopback"] = 190, ["virtual"] = 7000, ["nic"] = 1448 }, ByPath(_bytes));
    }

    [Fact]
    public void LocalPairsAreByListenerPortAndClientProcessAndFoldBeyondTheCap()
    {
        _localPairs = [new(1, 8080, "envoy", 500), new(2, 8080, "envoy", 300), new(1, 15001, "app", 40)];
        Assert.Equal(new Dictionary<(string, string), long> { [("8080", "envoy")] = 800, [("15001", "app")] = 40 }, Pairs());

        _localPairs = [new(1, 8080, "envoy", 600), new(2, 8080, "envoy", 300), new(1, 15001, "app", 40), new(1, 9000, "curl", 9)];
        Assert.Equal(new Dictionary<(string, string), long> { [("8080", "envoy")] = 900, [("15001", "app")] = 40, [("other", "other")] = 9 }, Pairs());
    }

    private static ulong[] Buckets(params (int Index, ulong Count)[] counts)
    {
        var buckets = new ulong[DeliveryLatencyValue.Bounds + 1];
        foreach (var (i, c) in counts)
            buckets[i] = c;
        return buckets;
    }

    private string Exposition()
    {
        var text = new System.Text.StringBuilder();
        _metrics.WriteTo(new ExpositionWriter(text, openMetrics: false));
        return text.ToString();
    }

    [Fact]
    public void LatencyIsAHistogramByPathOverTheAgentsBoundsSummedOverNamespaces()
    {
        // 2 samples at most 2.5 us and 1 at most 10 us in one namespace, 1 above 60 s in another.
        _latencies = [new(1, RxPaths.Loopback, Buckets((1, 2), (3, 1)), 12_000), new(2, RxPaths.Loopback, Buckets((24, 1)), 61_000_000_000)];
        string text = Exposition();
        Assert.Contains("# TYPE socktrace_rx_delivery_seconds histogram\n", text);
        Assert.Contains("socktrace_rx_delivery_seconds_bucket{otel_scope_name=\"SockTrace\",path=\"loopback\",le=\"1e-06\"} 0\n", text);
        Assert.Contains("socktrace_rx_delivery_seconds_bucket{otel_scope_name=\"SockTrace\",path=\"loopback\",le=\"2.5e-06\"} 2\n", text);
        Assert.Contains("socktrace_rx_delivery_seconds_bucket{otel_scope_name=\"SockTrace\",path=\"loopback\",le=\"1e-05\"} 3\n", text);
        Assert.Contains("socktrace_rx_delivery_seconds_bucket{otel_scope_name=\"SockTrace\",path=\"loopback\",le=\"60\"} 3\n", text);
        Assert.Contains("socktrace_rx_delivery_seconds_bucket{otel_scope_name=\"SockTrace\",path=\"loopback\",le=\"+Inf\"} 4\n", text);
        Assert.Contains("socktrace_rx_delivery_seconds_count{otel_scope_name=\"SockTrace\",path=\"loopback\"} 4\n", text);
        Assert.Contains("socktrace_rx_delivery_seconds_sum{otel_scope_name=\"SockTrace\",path=\"loopback\"} 61.000012\n", text);

        // Namespace 1 sampled once more; namespace 2's key was evicted: its samples stay counted.
        _latencies = [new(1, RxPaths.Loopback, Buckets((1, 3), (3, 1)), 14_000)];
        Assert.Contains("socktrace_rx_delivery_seconds_count{otel_scope_name=\"SockTrace\",path=\"loopback\"} 5\n", Exposition());
    }

    public void Dispose() => _services.Dispose();
}
