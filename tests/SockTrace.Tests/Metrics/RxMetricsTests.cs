using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Metrics;

public sealed class RxMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly RxMetrics _metrics;
    private readonly MetricCollector<long> _packets;
    private readonly MetricCollector<long> _bytes;
    private List<RxDevice> _devices = [];

    public RxMetricsTests()
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        _metrics = new RxMetrics(meters);
        _packets = new(meters, SockTraceMeter.Name, "socktrace.rx.packets");
        _bytes = new(meters, SockTraceMeter.Name, "socktrace.rx.bytes");
        _metrics.Observe(() => _devices);
    }

    private static RxDevice Device(uint netns, uint ifindex, uint path, string name, ulong packets, ulong bytes) =>
        new(new RxKey { Netns = netns, Ifindex = ifindex }, path, name, packets, bytes);

    /// <summary>The latest value of each (path, device) series.</summary>
    private Dictionary<(string, string), long> Scrape(MetricCollector<long> collector)
    {
        collector.Clear();
        collector.RecordObservableInstruments();
        return collector.GetMeasurementSnapshot().ToDictionary(m => ((string)m.Tags["path"]!, (string)m.Tags["device"]!), m => m.Value);
    }

    [Fact]
    public void NothingIsReportedBeforeAMapIsObserved()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        _ = new RxMetrics(meters);
        using var packets = new MetricCollector<long>(meters, SockTraceMeter.Name, "socktrace.rx.packets");
        packets.RecordObservableInstruments();
        Assert.Empty(packets.GetMeasurementSnapshot());
    }

    [Fact]
    public void EachDeviceIsASeriesByPathAndName()
    {
        _devices = [Device(1, 1, RxPaths.Loopback, "lo", 10, 1000), Device(1, 2, RxPaths.Nic, "eth0", 3, 4500), Device(1, 7, RxPaths.Virtual, "veth1", 2, 120)];

        Assert.Equal(new Dictionary<(string, string), long> { [("loopback", "lo")] = 10, [("nic", "eth0")] = 3, [("virtual", "veth1")] = 2 }, Scrape(_packets));
        Assert.Equal(new Dictionary<(string, string), long> { [("loopback", "lo")] = 1000, [("nic", "eth0")] = 4500, [("virtual", "veth1")] = 120 }, Scrape(_bytes));
    }

    [Fact]
    public void SameNameInTwoNetworkNamespacesIsOneSeriesThatNeverGoesBack()
    {
        _devices = [Device(1, 2, RxPaths.Virtual, "eth0", 5, 500), Device(2, 2, RxPaths.Virtual, "eth0", 7, 700)];
        Assert.Equal(1200, Scrape(_bytes)[("virtual", "eth0")]);

        // The first pod is gone and its entry evicted; the second keeps counting.
        _devices = [Device(2, 2, RxPaths.Virtual, "eth0", 9, 900)];
        Assert.Equal(1400, Scrape(_bytes)[("virtual", "eth0")]);

        // A new pod's eth0 reuses the evicted key: it counts from zero, on top.
        _devices = [Device(2, 2, RxPaths.Virtual, "eth0", 9, 900), Device(1, 2, RxPaths.Virtual, "eth0", 1, 60)];
        Assert.Equal(1460, Scrape(_bytes)[("virtual", "eth0")]);
    }

    [Fact]
    public void ADeviceNameNoLongerPresentIsDropped()
    {
        _devices = [Device(1, 1, RxPaths.Loopback, "lo", 1, 100), Device(1, 9, RxPaths.Virtual, "veth9", 1, 100)];
        Assert.Equal(2, Scrape(_packets).Count);

        _devices = [Device(1, 1, RxPaths.Loopback, "lo", 2, 200)];
        Assert.Equal([("loopback", "lo")], Scrape(_packets).Keys);
    }

    [Theory]
    [InlineData(RxPaths.Loopback, "loopback")]
    [InlineData(RxPaths.Nic, "nic")]
    [InlineData(RxPaths.Virtual, "virtual")]
    public void PathLabels(uint path, string label) => Assert.Equal(label, RxPaths.Label(path));

    public void Dispose()
    {
        _packets.Dispose();
        _bytes.Dispose();
        _services.Dispose();
    }
}
