using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Metrics;

public sealed class AcceptMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly AcceptMetrics _metrics;
    private readonly MetricCollector<long> _accepts;
    private readonly MetricCollector<long> _errors;
    private readonly MetricCollector<double> _duration;
    private readonly MetricCollector<double> _queueWait;

    public AcceptMetricsTests()
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        _metrics = new AcceptMetrics(meters);
        _accepts = new(meters, SockTraceMeter.Name, "socktrace.accepts");
        _errors = new(meters, SockTraceMeter.Name, "socktrace.accept.errors");
        _duration = new(meters, SockTraceMeter.Name, "socktrace.accept.duration");
        _queueWait = new(meters, SockTraceMeter.Name, "socktrace.accept.queue_wait");
    }

    internal static AcceptRecord Record(int ret, ushort port = 8080, string comm = "nginx", ulong enter = 1_000, ulong exit = 251_000, ulong established = 0, byte firstOctet = 127)
    {
        var r = new AcceptRecord
        {
            Header = new RecordHeader { Type = RecordTypes.Accept, Size = (uint)Unsafe.SizeOf<AcceptRecord>() },
            Ret = ret,
            ListenPort = port,
            Family = 2,
            EnterNs = enter,
            ExitNs = exit,
            EstablishedNs = established,
        };
        r.PeerAddr[0] = firstOctet;
        System.Text.Encoding.UTF8.GetBytes(comm).CopyTo((Span<byte>)r.Comm);
        return r;
    }

    [Fact]
    public void ASuccessfulAcceptCountsWithPortCommAndPeer()
    {
        _metrics.OnAccept(Record(ret: 7, established: 1_000));
        _metrics.OnAccept(Record(ret: 8, firstOctet: 10));

        var accepts = _accepts.GetMeasurementSnapshot();
        Assert.Equal(2, accepts.Count);
        Assert.Equal(("8080", "nginx", "loopback"), ((string)accepts[0].Tags["port"]!, (string)accepts[0].Tags["comm"]!, (string)accepts[0].Tags["peer"]!));
        Assert.Equal("remote", accepts[1].Tags["peer"]);
        Assert.Empty(_errors.GetMeasurementSnapshot());
    }

    [Fact]
    public void APeerConnectingFromThisHostIsLocal()
    {
        var local = Record(ret: 7, firstOctet: 10);
        local.PeerLocal = 1;
        var loopback = Record(ret: 8);
        loopback.PeerLocal = 1;
        _metrics.OnAccept(local);
        _metrics.OnAccept(loopback);

        Assert.Equal(["local", "loopback"], _accepts.GetMeasurementSnapshot().Select(m => (string)m.Tags["peer"]!));
    }

    [Fact]
    public void DurationIsEntryToReturnAndQueueWaitIsEstablishedToReturn()
    {
        _metrics.OnAccept(Record(ret: 7, enter: 2_000_000, exit: 5_000_000, established: 1_000_000));

        Assert.Equal(0.003, Assert.Single(_duration.GetMeasurementSnapshot()).Value, 9);
        Assert.Equal(0.004, Assert.Single(_queueWait.GetMeasurementSnapshot()).Value, 9);
    }

    [Fact]
    public void NoQueueWaitWhenTheEstablishedMomentWasNotSeen()
    {
        _metrics.OnAccept(Record(ret: 7, established: 0));

        Assert.Empty(_queueWait.GetMeasurementSnapshot());
        Assert.Single(_duration.GetMeasurementSnapshot());
    }

    [Theory]
    [InlineData(-11, "eagain")]
    [InlineData(-24, "emfile")]
    [InlineData(-512, "erestartsys")]
    [InlineData(-300, "errno_300")]
    [InlineData(-4000, "errno_other")]
    public void AFailedAcceptCountsItsErrnoByName(int ret, string errno)
    {
        _metrics.OnAccept(Record(ret));

        var error = Assert.Single(_errors.GetMeasurementSnapshot());
        Assert.Equal(errno, error.Tags["errno"]);
        Assert.Equal("8080", error.Tags["port"]);
        Assert.Empty(_accepts.GetMeasurementSnapshot());
        Assert.Empty(_queueWait.GetMeasurementSnapshot());
    }

    [Fact]
    public void LabelSetsAreBuiltOncePerDistinctKey()
    {
        _metrics.OnAccept(Record(ret: 7));
        _metrics.OnAccept(Record(ret: 7));
        _metrics.OnAccept(Record(ret: 7, comm: "envoy"));

        var accepts = _accepts.GetMeasurementSnapshot();
        Assert.Same(accepts[0].Tags["comm"], accepts[1].Tags["comm"]);
        Assert.Equal("envoy", accepts[2].Tags["comm"]);
    }

    [Theory]
    [InlineData(new byte[] { 0x6e, 0x67, 0, 0x78 }, "ng")]
    [InlineData(new byte[] { 0xff, 0x41 }, "\uFFFDA")]
    public void CommStopsAtNulAndReplacesInvalidUtf8(byte[] raw, string expected)
    {
        var comm = new byte[16];
        raw.CopyTo(comm, 0);
        Assert.Equal(expected, CommLabel.Text(comm));
    }

    [Fact]
    public void RecordingAllocatesNothingOnceLabelsAreCached()
    {
        // The production pipeline: the SDK listening to the meter as the agent sets it up.
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new AcceptMetrics(services.GetRequiredService<IMeterFactory>(), idle: TimeSpan.FromMinutes(10));
        var exported = new List<Metric>();
        using var provider = Sdk.CreateMeterProviderBuilder().AddSockTraceMeter().AddInMemoryExporter(exported).Build();
        var accepted = Record(ret: 7, established: 1_000);
        var failed = Record(ret: -11);
        for (int i = 0; i < 100; i++)
        {
            metrics.OnAccept(accepted);
            metrics.OnAccept(failed);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            metrics.OnAccept(accepted);
            metrics.OnAccept(failed);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    public void Dispose()
    {
        _accepts.Dispose();
        _errors.Dispose();
        _duration.Dispose();
        _queueWait.Dispose();
        _services.Dispose();
    }
}
