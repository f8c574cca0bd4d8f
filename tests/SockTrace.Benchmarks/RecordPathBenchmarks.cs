using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Benchmarks;

/// <summary>
/// The managed cost of one ring buffer record: RecordDecoder validating the raw bytes and
/// AcceptMetrics aggregating them, with the OpenTelemetry SDK set up on the meter as in the
/// agent. Each operation decodes a batch of raw records laid out as the
/// ring buffer hands them over (spans over one buffer), so the result is per record.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ShortConfig))]
public class RecordPathBenchmarks
{
    /// <summary>Records per operation: one ring buffer drain's worth.</summary>
    public const int Batch = 1024;

    private sealed class ShortConfig : ManualConfig
    {
        // In process: no second build of the agent while the script runs.
        public ShortConfig() => AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(10)
            .WithToolchain(InProcessEmitToolchain.Instance).WithId("short"));
    }

    private ServiceProvider _services = null!;
    private MeterProvider _provider = null!;
    private RecordDecoder _decoder = null!;
    private RecordDecoder _decodeOnly = null!;
    private Meter _floorMeter = null!;
    private Counter<long> _floorCounter = null!;
    private Histogram<double> _floorHistogram = null!;
    private KeyValuePair<string, object?>[] _floorTags = null!;
    private byte[] _accepted = null!;
    private byte[] _failed = null!;
    private byte[] _mixed = null!;
    private static readonly int Size = Unsafe.SizeOf<AcceptRecord>();

    [GlobalSetup]
    public void Setup()
    {
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = _services.GetRequiredService<IMeterFactory>();
        _floorMeter = new Meter("SockTrace.Benchmarks.Floor");
        _floorCounter = _floorMeter.CreateCounter<long>("floor.counter");
        _floorHistogram = _floorMeter.CreateHistogram("floor.histogram", "s", "floor", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SockTraceMeter.LatencyBuckets });
        _floorTags = [new("port", "8080"), new("comm", "nginx"), new("peer", "loopback")];
        _provider = Sdk.CreateMeterProviderBuilder()
            .AddSockTraceMeter()
            .AddMeter(_floorMeter.Name)
            .AddInMemoryExporter(new List<Metric>())
            .Build();
        var accepts = new AcceptMetrics(meters, idle: TimeSpan.FromSeconds(Agent.Hosting.AgentOptions.DefaultSeriesIdleSeconds));
        _decoder = new RecordDecoder(accepts, new FdRaceMetrics(meters, new RecentRaces(), NullLogger<FdRaceMetrics>.Instance));
        _decodeOnly = new RecordDecoder(new Discard(), new Discard());
        _accepted = Records(i => Record(ret: 7, port: 8080, comm: "nginx", established: 500));
        _failed = Records(i => Record(ret: -11, port: 8080, comm: "nginx", established: 0));
        // Eight label sets (4 ports x accepted/EAGAIN), as a node with a few servers sees.
        _mixed = Records(i => Record(ret: i % 2 == 0 ? 7 : -11, port: (ushort)(8080 + i / 2 % 4), comm: "nginx", established: i % 2 == 0 ? 500UL : 0));
        // Labels are resolved once per distinct set; warm them outside the measurement.
        Drain(_mixed);
        Drain(_accepted);
        Drain(_failed);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _provider.Dispose();
        _floorMeter.Dispose();
        _services.Dispose();
    }

    /// <summary>Validation and the typed view alone: what the metrics add is the rest.</summary>
    [Benchmark(OperationsPerInvoke = Batch, Description = "decode only, no metrics")]
    public void DecodeOnly()
    {
        var span = _accepted.AsSpan();
        for (int offset = 0; offset < span.Length; offset += Size)
            _decodeOnly.OnRecord(span.Slice(offset, Size));
    }

    [Benchmark(OperationsPerInvoke = Batch, Description = "accepted (ret >= 0, queue wait)")]
    public void Accepted() => Drain(_accepted);

    [Benchmark(OperationsPerInvoke = Batch, Description = "failed (EAGAIN)")]
    public void Failed() => Drain(_failed);

    [Benchmark(OperationsPerInvoke = Batch, Description = "mixed, 8 label sets")]
    public void Mixed() => Drain(_mixed);

    /// <summary>The SDK's own floor: one counter increment with a cached 3-tag array.</summary>
    [Benchmark(OperationsPerInvoke = Batch, Description = "OpenTelemetry floor: Counter.Add, 3 cached tags")]
    public void FloorCounter()
    {
        for (int i = 0; i < Batch; i++)
            _floorCounter.Add(1, _floorTags);
    }

    /// <summary>The SDK's own floor: one histogram value with a cached 2-tag array.</summary>
    [Benchmark(OperationsPerInvoke = Batch, Description = "OpenTelemetry floor: Histogram.Record, 2 cached tags")]
    public void FloorHistogram()
    {
        var tags = _floorTags.AsSpan(0, 2);
        for (int i = 0; i < Batch; i++)
            _floorHistogram.Record(0.00025, tags);
    }

    private void Drain(byte[] buffer)
    {
        var span = buffer.AsSpan();
        for (int offset = 0; offset < span.Length; offset += Size)
            _decoder.OnRecord(span.Slice(offset, Size));
    }

    private sealed class Discard : IAcceptHandler, IFdRaceHandler
    {
        public long Sum;

        public void OnAccept(in AcceptRecord record) => Sum += record.Ret;

        public void OnFdRace(in FdRaceRecord record) => Sum += record.Fd;
    }

    private static byte[] Records(Func<int, AcceptRecord> make)
    {
        var buffer = new byte[Batch * Size];
        for (int i = 0; i < Batch; i++)
        {
            var r = make(i);
            MemoryMarshal.Write(buffer.AsSpan(i * Size, Size), in r);
        }
        return buffer;
    }

    private static AcceptRecord Record(int ret, ushort port, string comm, ulong established)
    {
        var r = new AcceptRecord
        {
            Header = new RecordHeader { Type = RecordTypes.Accept, Size = (uint)Size },
            Pid = 4242,
            Tid = 4243,
            Ret = ret,
            ListenPort = port,
            Family = ret >= 0 ? (ushort)2 : (ushort)0,
            EnterNs = 1_000,
            ExitNs = 251_000,
            EstablishedNs = established,
        };
        if (ret >= 0)
        {
            r.PeerAddr[0] = 127;
            r.PeerAddr[3] = 1;
        }
        System.Text.Encoding.ASCII.GetBytes(comm).CopyTo((Span<byte>)r.Comm);
        return r;
    }
}
