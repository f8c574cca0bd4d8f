using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Support;

/// <summary>
/// The agent's record path, in process, on the real kernel: BPF programs loaded and
/// attached, their ring buffer decoded into the real metrics, read as a scrape of /metrics
/// reads them (<see cref="MetricsHost"/>). Everything on the host is traced, so assertions
/// filter on the test's own port or process name.
/// </summary>
internal sealed class KernelPipeline : IDisposable
{
    private readonly MetricsHost _metrics;

    /// <param name="doubleCloseWindow">The double_close window (the agent's default is 1 s).</param>
    /// <param name="olderKernelPaths">The programs take the paths of kernels before 5.11 (no task
    /// storage, no bpf_rdonly_cast): in-flight state in LRU hash maps, reads by bpf_probe_read_kernel.</param>
    public KernelPipeline(TimeSpan? doubleCloseWindow = null, bool olderKernelPaths = false)
    {
        Requires.Bpf();
        _metrics = new MetricsHost();
        var meters = _metrics.Meters;
        Races = _metrics.Races.Recent;
        var pipeline = new RecordPipeline(_metrics.Accepts, _metrics.Races);
        Plan = PlanUnderTest();
        Source = new KernelEventSource(pipeline.Decoder, Plan, Kernel.Value, new KernelSourceOptions(1 << 22, TimeSpan.FromMilliseconds(20), doubleCloseWindow ?? TimeSpan.FromSeconds(1),
            olderKernelPaths ? BpfConfigFlags.None : KernelFeatures.KernelFlags), NullLogger.Instance);
        pipeline.Observe(Source, new AgentMetrics(meters), new ListenMetrics(meters), new RxMetrics(meters));
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
    public KernelEventSource Source { get; }

    /// <summary>The races /races would list.</summary>
    public RecentRaces Races { get; }

    /// <summary>GET /metrics now.</summary>
    public List<Sample> Scrape() => _metrics.Scrape();

    /// <summary>Waits until the scrape sums at least <paramref name="count"/> of
    /// <paramref name="name"/> over the samples with the labels <paramref name="match"/>, then a
    /// little longer so that any surplus arrives too; returns that later scrape.</summary>
    public List<Sample> Settle(string name, double count, params (string Key, string Value)[] match)
    {
        Eventually.True(() => Scrape().Sum(name, match) >= count,
            $"{count} of {name}{{{string.Join(",", match.Select(m => $"{m.Key}={m.Value}"))}}} in /metrics");
        Thread.Sleep(200);
        return Scrape();
    }

    /// <summary><see cref="Settle"/> on the test's own port.</summary>
    public List<Sample> SettleScrape(string name, int port, double count) => Settle(name, count, ("port", Text(port)));

    /// <summary>Waits for an accept on <paramref name="port"/>, then asserts it was the only one
    /// and its peer is of class <paramref name="peer"/>.</summary>
    public void AssertOneAccept(int port, string peer)
    {
        var scrape = SettleScrape("socktrace_accepts_total", port, 1);
        Assert.Equal(1, scrape.Sum("socktrace_accepts_total", ("port", Text(port))));
        Assert.Equal(1, scrape.Sum("socktrace_accepts_total", ("port", Text(port)), ("peer", peer)));
    }

    /// <summary>socktrace_rx_bytes_total as a scrape reads it now, by (path, device).</summary>
    public Dictionary<(string Path, string Device), long> ScrapeRxBytes() =>
        Scrape().Where(s => s.Name == "socktrace_rx_bytes_total")
            .ToDictionary(s => (s.Labels["path"], s.Labels["device"]), s => (long)s.Value);

    /// <summary>socktrace_listen_worker_accepts_total of the listeners on (netns, port) as a
    /// scrape reads it now, by (listener, worker).</summary>
    public Dictionary<(string Listener, string Worker), long> ScrapeWorkers(string netns, int port) =>
        Of(Scrape(), "socktrace_listen_worker_accepts_total", netns, port)
            .ToDictionary(s => (s.Labels["listener"], s.Labels["worker"]), s => (long)s.Value);

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

    /// <summary><see cref="ScrapeListeners"/> once the listeners' accepts, counted from the
    /// accept records, add up to <paramref name="accepts"/>.</summary>
    public Dictionary<string, ListenerSeries> SettleListeners(string netns, int port, long accepts)
    {
        Eventually.True(() => ScrapeListeners(netns, port).Values.Sum(l => l.Accepts ?? 0) >= accepts, $"{accepts} accepts of the listeners on port {port}");
        return ScrapeListeners(netns, port);
    }

    /// <summary>Every listener on (netns, port) as a scrape reads it now, by its listener label;
    /// a metric without a series for it reads null.</summary>
    public Dictionary<string, ListenerSeries> ScrapeListeners(string netns, int port)
    {
        var scrape = Scrape();
        Dictionary<string, long> Read(string name) =>
            Of(scrape, name, netns, port).ToDictionary(s => s.Labels["listener"], s => (long)s.Value);
        var overflows = Read("socktrace_listen_overflows_total");
        var synDrops = Read("socktrace_syn_queue_drops_total");
        var cookies = Read("socktrace_syncookies_sent_total");
        var accepts = Read("socktrace_listen_accepts_total");
        var depth = Read("socktrace_listen_queue_depth");
        var limit = Read("socktrace_listen_queue_limit");
        var synQueue = Read("socktrace_listen_syn_queue_depth");
        long? Value(Dictionary<string, long> values, string listener) => values.TryGetValue(listener, out long v) ? v : null;
        return depth.Keys.Union(accepts.Keys).ToDictionary(l => l, l => new ListenerSeries(
            Value(overflows, l), Value(synDrops, l), Value(cookies, l), Value(accepts, l), Value(depth, l), Value(limit, l), Value(synQueue, l)));
    }

    private static IEnumerable<Sample> Of(List<Sample> scrape, string name, string netns, int port) =>
        scrape.Where(s => s.Name == name && s.Labels.GetValueOrDefault("netns") == netns && s.Labels.GetValueOrDefault("port") == Text(port));

    private static string Text(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        Source.Dispose();
        _metrics.Dispose();
    }
}

/// <summary>One listener's listen series as a scrape reads them.</summary>
internal readonly record struct ListenerSeries(long? Overflows, long? SynDrops, long? Cookies, long? Accepts, long? Depth, long? Limit, long? SynQueue);
