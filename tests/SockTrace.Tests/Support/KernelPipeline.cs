using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Support;

/// <summary>
/// The agent's record path, in process, on the real kernel: BPF programs loaded and
/// attached, their ring buffer decoded into the real metrics, which collectors observe.
/// Everything on the host is traced, so assertions filter on the test's own port.
/// </summary>
internal sealed class KernelPipeline : IDisposable
{
    private readonly ServiceProvider _services;
    private readonly List<IDisposable> _collectors = [];

    /// <param name="doubleCloseWindow">The double_close window (the agent's default is 1 s).</param>
    public KernelPipeline(TimeSpan? doubleCloseWindow = null)
    {
        Requires.Bpf();
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = _services.GetRequiredService<IMeterFactory>();
        Accepts = Collect<long>(meters, "socktrace.accepts");
        Errors = Collect<long>(meters, "socktrace.accept.errors");
        Duration = Collect<double>(meters, "socktrace.accept.duration");
        QueueWait = Collect<double>(meters, "socktrace.accept.queue_wait");
        FdRaces = Collect<long>(meters, "socktrace.fd_races");
        ReuseGaps = Collect<double>(meters, "socktrace.fd.reuse_gap");
        Races = new RecentRaces();
        AcceptMetrics = new AcceptMetrics(meters);
        Decoder = new RecordDecoder(AcceptMetrics, new FdRaceMetrics(meters, Races, NullLogger<FdRaceMetrics>.Instance));
        Plan = PlanUnderTest();
        Source = new KernelEventSource(Decoder, Plan, Kernel.Value, new KernelSourceOptions(1 << 22, TimeSpan.FromMilliseconds(20), doubleCloseWindow ?? TimeSpan.FromSeconds(1)), NullLogger.Instance);
        Rx = new RxMetrics(meters);
        Rx.Observe(Source.RxDevices.Read);
        RxBytes = Collect<long>(meters, "socktrace.rx.bytes");
        Listen = new ListenMetrics(meters);
        Listen.Observe(Source.ListenQueues.Read, Source.Probes.Any(p => p.Hook == Hooks.ListenOverflow.Name), Source.ListenQueues.ReadWorkers);
        ListenOverflows = Collect<long>(meters, "socktrace.listen.overflows");
        ListenSynDrops = Collect<long>(meters, "socktrace.syn_queue.drops");
        ListenCookies = Collect<long>(meters, "socktrace.syncookies.sent");
        ListenAccepts = Collect<long>(meters, "socktrace.listen.accepts");
        ListenDepth = Collect<long>(meters, "socktrace.listen.queue.depth");
        ListenLimit = Collect<long>(meters, "socktrace.listen.queue.limit");
        ListenSynQueue = Collect<long>(meters, "socktrace.listen.syn_queue.depth");
        ListenWorkerAccepts = Collect<long>(meters, "socktrace.listen.worker.accepts");
        Source.Start();
    }

    /// <summary>The mode the kernel tests run in: SOCKTRACE_ATTACH_MODE, as the agent reads it
    /// (the kernel matrix runs them with kprobe and fentry under qemu), else auto.</summary>
    public static string AttachModeUnderTest => Environment.GetEnvironmentVariable("SOCKTRACE_ATTACH_MODE") ?? "auto";

    /// <summary>The mode auto or the forced mode resolves to for every hook on this kernel.</summary>
    public static string ExpectedMode(Hook hook) => PlanUnderTest().Single(p => p.Hook == hook).Mode?.Name() ?? "-";

    public static IReadOnlyList<HookPlan> PlanUnderTest() => AttachPlan.For(Kernel.Value, AttachModeUnderTest);

    /// <summary>Probed once per test run: probing loads programs, slow under emulation.</summary>
    public static KernelFeatures KernelUnderTest => Kernel.Value;

    private static readonly Lazy<KernelFeatures> Kernel = new(() =>
    {
        Requires.Bpf();
        return KernelFeatures.Probe();
    });

    public IReadOnlyList<HookPlan> Plan { get; }
    public AcceptMetrics AcceptMetrics { get; }

    /// <summary>The accept families as a scrape of /metrics reads them: the agent's own
    /// exposition writer, the one that serves them (README, "Metrics").</summary>
    public List<Sample> ScrapeAccepts() => Exposition.Of(AcceptMetrics);

    /// <summary>Waits until the scrape shows at least <paramref name="count"/> of
    /// <paramref name="name"/> on <paramref name="port"/>, then a little longer so that any
    /// surplus arrives too; returns that later scrape.</summary>
    public List<Sample> SettleScrape(string name, int port, double count)
    {
        string p = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Eventually.True(() => ScrapeAccepts().Sum(name, ("port", p)) >= count, $"{count} of {name} on port {p} in the exposition");
        Thread.Sleep(200);
        return ScrapeAccepts();
    }
    public KernelEventSource Source { get; }
    public RecordDecoder Decoder { get; }
    public MetricCollector<long> Accepts { get; }
    public MetricCollector<long> Errors { get; }
    public MetricCollector<double> Duration { get; }
    public MetricCollector<double> QueueWait { get; }
    public MetricCollector<long> FdRaces { get; }
    public MetricCollector<double> ReuseGaps { get; }
    public RecentRaces Races { get; }
    public RxMetrics Rx { get; }
    public MetricCollector<long> RxBytes { get; }

    /// <summary>socktrace.rx.bytes as a scrape reads it now, by (path, device).</summary>
    public Dictionary<(string Path, string Device), long> ScrapeRxBytes()
    {
        RxBytes.Clear();
        RxBytes.RecordObservableInstruments();
        return RxBytes.GetMeasurementSnapshot().ToDictionary(m => ((string)m.Tags["path"]!, (string)m.Tags["device"]!), m => m.Value);
    }

    public ListenMetrics Listen { get; }
    public MetricCollector<long> ListenOverflows { get; }
    public MetricCollector<long> ListenSynDrops { get; }
    public MetricCollector<long> ListenCookies { get; }
    public MetricCollector<long> ListenAccepts { get; }
    public MetricCollector<long> ListenDepth { get; }
    public MetricCollector<long> ListenLimit { get; }
    public MetricCollector<long> ListenSynQueue { get; }
    public MetricCollector<long> ListenWorkerAccepts { get; }

    /// <summary>socktrace.listen.worker.accepts of the listeners on (netns, port) as a scrape
    /// reads it now, by (listener, worker).</summary>
    public Dictionary<(string Listener, string Worker), long> ScrapeWorkers(string netns, int port)
    {
        string portText = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ListenWorkerAccepts.Clear();
        ListenWorkerAccepts.RecordObservableInstruments();
        return ListenWorkerAccepts.GetMeasurementSnapshot()
            .Where(m => (string?)m.Tags["netns"] == netns && (string?)m.Tags["port"] == portText)
            .ToDictionary(m => ((string)m.Tags["listener"]!, (string)m.Tags["worker"]!), m => m.Value);
    }

    /// <summary>The listen metrics of the one listener on (netns, port) as a scrape reads them
    /// now: null where it has no series.</summary>
    public (long? Overflows, long? Depth, long? Limit) ScrapeListen(string netns, int port)
    {
        var listeners = ScrapeListeners(netns, port);
        if (listeners.Count == 0)
            return (null, null, null);
        var one = Assert.Single(listeners).Value;
        return (one.Overflows, one.Depth, one.Limit);
    }

    /// <summary>Every listener on (netns, port) as a scrape reads it now, by its listener label;
    /// a metric without a series for it reads null.</summary>
    public Dictionary<string, ListenerSeries> ScrapeListeners(string netns, int port)
    {
        string portText = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Dictionary<string, long> Read(MetricCollector<long> collector)
        {
            collector.Clear();
            collector.RecordObservableInstruments();
            return collector.GetMeasurementSnapshot()
                .Where(m => (string?)m.Tags["netns"] == netns && (string?)m.Tags["port"] == portText)
                .ToDictionary(m => (string)m.Tags["listener"]!, m => m.Value);
        }
        var overflows = Read(ListenOverflows);
        var synDrops = Read(ListenSynDrops);
        var cookies = Read(ListenCookies);
        var accepts = Read(ListenAccepts);
        var depth = Read(ListenDepth);
        var limit = Read(ListenLimit);
        var synQueue = Read(ListenSynQueue);
        long? Of(Dictionary<string, long> values, string listener) => values.TryGetValue(listener, out long v) ? v : null;
        return depth.Keys.Union(accepts.Keys).ToDictionary(l => l, l => new ListenerSeries(
            Of(overflows, l), Of(synDrops, l), Of(cookies, l), Of(accepts, l), Of(depth, l), Of(limit, l), Of(synQueue, l)));
    }

    private MetricCollector<T> Collect<T>(IMeterFactory meters, string instrument) where T : struct
    {
        var collector = new MetricCollector<T>(meters, SockTraceMeter.Name, instrument);
        _collectors.Add(collector);
        return collector;
    }

    /// <summary>Waits until at least <paramref name="count"/> measurements match, then a little
    /// longer so that any surplus arrives too and an exact assertion can catch it.</summary>
    public IReadOnlyList<CollectedMeasurement<T>> Settle<T>(MetricCollector<T> collector, Func<CollectedMeasurement<T>, bool> match, int count) where T : struct
    {
        Eventually.True(() => collector.GetMeasurementSnapshot().Count(match) >= count, $"{count} measurements of {collector.Instrument?.Name}");
        Thread.Sleep(200);
        return collector.GetMeasurementSnapshot().Where(match).ToList();
    }

    public static Func<CollectedMeasurement<T>, bool> OnPort<T>(int port) where T : struct =>
        m => m.Tags.TryGetValue("port", out var p) && (string?)p == port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        Source.Dispose();
        foreach (var c in _collectors)
            c.Dispose();
        _services.Dispose();
    }
}

/// <summary>One listener's listen series as a scrape reads them.</summary>
internal readonly record struct ListenerSeries(long? Overflows, long? SynDrops, long? Cookies, long? Accepts, long? Depth, long? Limit, long? SynQueue);
