using Microsoft.Extensions.Logging;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// The BPF programs on the running kernel: opens, configures, loads and attaches them, and
/// drains their ring buffer into the sink. Disposing detaches everything.
/// </summary>
public sealed partial class KernelEventSource : IEventSource
{
    /// <summary>Which programs make up each hook, in this kernel's attach mode.</summary>
    private static readonly (ProbeInfo Probe, string[] Programs)[] Hooks =
    [
        (new("accept4", "tracepoint"), ["st_tp_enter_accept4", "st_tp_exit_accept4"]),
        (new("accept", "tracepoint"), ["st_tp_enter_accept", "st_tp_exit_accept"]),
        (new("inet_sock_set_state", "tp_btf"), ["st_tp_btf_inet_sock_set_state"]),
    ];

    private readonly BpfObject _object;
    private readonly List<BpfLinkHandle> _links = [];
    private readonly PerCpuCounters _counters;
    private readonly RingBufferReader _reader;
    private readonly ILogger _logger;

    public KernelEventSource(IRecordSink sink, KernelSourceOptions options, ILogger logger)
    {
        _logger = logger;
        _object = BpfObject.OpenEmbedded("accept");
        try
        {
            _object.SetMaxEntries("st_events", options.RingBufferBytes);
            _object.SetConfig(new BpfConfig { WakeupBytes = options.RingBufferBytes / 4 });
            _object.Load();
            foreach (var (probe, programs) in Hooks)
            {
                foreach (string program in programs)
                    _links.Add(_object.Attach(program));
                LogAttached(probe.Hook, probe.Mode);
            }
            Probes = [.. Hooks.Select(h => h.Probe)];
            _counters = new PerCpuCounters(_object.MapFd("st_counters"));
            _reader = new RingBufferReader(_object.MapFd("st_events"), sink, options.PollInterval);
            _reader.Faulted += ex => Faulted?.Invoke(ex);
        }
        catch
        {
            Detach();
            throw;
        }
    }

    public IReadOnlyList<ProbeInfo> Probes { get; }

    public ulong RecordsDropped => _counters.Read(KernelCounters.RingBufferDrops);

    public event Action<Exception>? Faulted;

    public void Start() => _reader.Start();

    public void Dispose()
    {
        _reader.Dispose();
        Detach();
    }

    private void Detach()
    {
        foreach (var link in _links)
            link.Dispose();
        _links.Clear();
        _object.Dispose();
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Attached hook {Hook} in {Mode} mode")]
    private partial void LogAttached(string hook, string mode);
}

/// <summary>Settings of the kernel source, validated by the host before use.</summary>
public sealed record KernelSourceOptions(uint RingBufferBytes, TimeSpan PollInterval);
