using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Hosting;

namespace SockTrace.Reference.Tests.Support;

/// <summary>
/// The agent's BPF programs, loaded and attached once for all differential tests, their
/// ring buffer drained into a <see cref="RecordCapture"/>. Without root it records why,
/// and every test that needs it fails with that reason.
/// </summary>
public sealed class KernelObserver : IDisposable
{
    /// <summary>Both the model and the kernel judge double_close against this window: wide
    /// enough that the scenario runner's own hand-offs fit inside it even on a loaded host,
    /// and narrower than the 300 ms of double-close-outside-window.json.</summary>
    public static readonly TimeSpan DoubleCloseWindow = TimeSpan.FromMilliseconds(100);

    private readonly KernelEventSource? _source;
    private readonly string? _unavailable;

    public KernelObserver()
    {
        if (!IsRoot())
        {
            _unavailable = "the differential tests load BPF programs and run scenarios on the kernel: they need root (run the test command with sudo)";
            return;
        }
        try
        {
            KernelPreflight.Run();
            var kernel = KernelFeatures.Probe();
            var plan = AttachPlan.For(kernel, Environment.GetEnvironmentVariable("SOCKTRACE_ATTACH_MODE") ?? "auto");
            _source = new KernelEventSource(Capture, plan, kernel, new KernelSourceOptions(1 << 22, TimeSpan.FromMilliseconds(20), DoubleCloseWindow), NullLogger.Instance);
            _source.Start();
        }
        catch (Exception ex) when (ex is StartupException or BpfException)
        {
            _unavailable = "the kernel cannot run SockTrace's BPF programs: " + ex.Message;
        }
    }

    internal RecordCapture Capture { get; } = new(ScenarioChild.Comm);

    /// <summary>The kernel's counts of failed accepts of scenario processes now, by key.</summary>
    internal Dictionary<(ushort Port, ushort Errno, ulong Cgroup), ulong> FailedAccepts()
    {
        var counts = new Dictionary<(ushort, ushort, ulong), ulong>();
        foreach (var (key, count) in _source?.AcceptErrors.Read() ?? [])
        {
            var k = key;
            if (SockTrace.Agent.Metrics.CommLabel.Text(k.Comm) == ScenarioChild.Comm)
                counts[(k.ListenPort, k.Errno, k.CgroupId)] = count;
        }
        return counts;
    }

    /// <summary>Fails (never skips) the calling test when the kernel side cannot run.</summary>
    public void Require()
    {
        if (_unavailable is not null)
            Assert.Fail(_unavailable);
    }

    public void Dispose() => _source?.Dispose();

    private static bool IsRoot() => File.ReadLines("/proc/self/status")
        .Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == "0");
}

[CollectionDefinition(Name)]
public sealed class KernelCollection : ICollectionFixture<KernelObserver>
{
    public const string Name = "kernel";
}
