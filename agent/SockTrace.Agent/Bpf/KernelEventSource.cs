using Microsoft.Extensions.Logging;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// The BPF programs on the running kernel: opens the object, loads the programs the attach
/// plan chose, attaches them, and drains their ring buffer into the sink. Disposing
/// detaches everything.
/// </summary>
public sealed partial class KernelEventSource : IEventSource
{
    private readonly BpfObject _object;
    private readonly List<BpfLinkHandle> _links = [];
    private readonly List<string> _attached = [];
    private readonly PerCpuCounters _counters;
    private readonly PerCpuCounters _selfSeen;
    private readonly KretprobeMisses _kretprobes;
    private readonly RingBufferReader _reader;
    private readonly ILogger _logger;

    public KernelEventSource(IRecordSink sink, IReadOnlyList<HookPlan> plan, KernelFeatures kernel, KernelSourceOptions options, ILogger logger)
    {
        _logger = logger;
        Plan = plan;
        _object = BpfObject.OpenEmbedded(BpfObject.Name);
        try
        {
            var chosen = plan.SelectMany(h => h.Programs).Select(p => p.Name).ToHashSet();
            foreach (string program in _object.ProgramNames)
                _object.SetAutoload(program, chosen.Contains(program));
            _object.SetMaxEntries("st_events", options.RingBufferBytes);
            _object.SetMaxEntries("st_acceptors", AcceptorWords());
            bool Attached(Hook hook) => plan.Any(h => h.Hook == hook && h.Mode is not null);
            kernel.Prepare(_object, new BpfConfig
            {
                WakeupBytes = options.RingBufferBytes / 4,
                DoubleCloseWindowNs = (ulong)(options.DoubleCloseWindow.Ticks * 100),
                Flags = (Attached(Hooks.Delivery) ? BpfConfigFlags.Delivery : 0) | (Attached(Hooks.Rx) ? BpfConfigFlags.RxDevices : 0),
                SelfTgid = (uint)Environment.ProcessId,
            }, options.KernelFeatures);
            _object.Load();
            _kretprobes = new KretprobeMisses(kernel.Tracefs);
            bool kprobeEvents = KprobeEvents.Writable(kernel.Tracefs);
            foreach (var hook in plan)
            {
                if (hook.Mode is not { } mode)
                {
                    LogLeftOut(hook.Hook.Name, hook.Why);
                    continue;
                }
                foreach (var program in hook.Programs.OrderByDescending(p => p.Return))
                {
                    _links.Add(Attach(program, kprobeEvents, kernel.Tracefs));
                    _attached.Add(program.Name);
                }
                LogAttached(hook.Hook.Name, mode.Name(), hook.Why);
            }
            Probes = [.. plan.Where(h => h.Mode is not null).Select(h => new ProbeInfo(h.Hook.Name, h.Mode!.Value.Name()))];
            _counters = new PerCpuCounters(_object.MapFd("st_counters"));
            _selfSeen = new PerCpuCounters(_object.MapFd("st_self_seen"));
            RxDevices = new RxDeviceCounters(_object.MapFd("st_rx_cache"), _object.MapFd("st_rx_devices"), _object.MapFd("st_rx_names"));
            Deliveries = new DeliveryCounters(_object.MapFd("st_delivery"), _object.MapFd("st_local_pairs"), _object.MapFd("st_delivery_latency"));
            ListenQueues = new ListenQueueTable(_object.MapFd("st_listen"));
            AcceptErrors = new AcceptErrorTable(_object.MapFd("st_error_cache"), _object.MapFd("st_accept_errors"));
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

    /// <summary>The agent's own calls each self-tested hook saw (<see cref="HookSelfTest"/>).</summary>
    internal ulong SelfSeen(uint slot) => _selfSeen.Read(slot);

    /// <summary>The plan this source attached.</summary>
    public IReadOnlyList<HookPlan> Plan { get; private set; } = [];

    public ulong? RecordsProduced => _counters.Read(KernelCounters.RecordsProduced);

    public IReadOnlyList<(string Reason, ulong Calls)> UntrackedCalls() =>
    [
        (UntrackedReasons.MapFull, _counters.Read(KernelCounters.PendingMapFull)),
        (UntrackedReasons.NoEntry, _counters.Read(KernelCounters.NoEntry)),
        (UntrackedReasons.ReturnMissed, _counters.Read(KernelCounters.ReturnMissed)),
        (UntrackedReasons.ErrorsLost, _counters.Read(KernelCounters.ErrorsLost)),
        (UntrackedReasons.UringFixedFile, _counters.Read(KernelCounters.UringFixed)),
    ];

    public IReadOnlyList<(string Program, ulong Missed)> KretprobeMisses() => _kretprobes.Read();

    /// <summary>The rx hook's per-device counters; empty when the hook is not loaded.</summary>
    public RxDeviceCounters RxDevices { get; }

    /// <summary>The delivery hook's per-path and local-pair counters; empty when the hook is not loaded.</summary>
    public DeliveryCounters Deliveries { get; }

    /// <summary>Listening sockets seen at listen(), an accept or a listen overflow.</summary>
    public ListenQueueTable ListenQueues { get; }

    /// <summary>Failed accepts, counted in the kernel.</summary>
    public AcceptErrorTable AcceptErrors { get; }

    public event Action<Exception>? Faulted;

    public IReadOnlyList<(string Program, ulong Misses)> ProgramMisses() =>
        [.. _attached.Select(name => (name, _object.RecursionMisses(name)))];

    /// <summary>The fd of one of the object's maps, for tests that look inside.</summary>
    internal int MapFd(string mapName) => _object.MapFd(mapName);

    public void Start() => _reader.Start();

    public void Dispose()
    {
        _reader.Dispose();
        Detach();
    }

    private BpfLinkHandle Attach(HookProgram program, bool kprobeEvents, string tracefs)
    {
        if (program.BlockingReturn && kprobeEvents)
        {
            var created = KprobeEvents.AttachKretprobe(_object, program.Name, program.KernelFunction!, tracefs, out string eventName);
            _kretprobes.AddEvent(program.Name, eventName);
            return created;
        }
        if (program.BlockingReturn)
            LogDefaultMaxActive(program.KernelFunction!);
        // Where the hook says, not only where the program's SEC() name says: a program can be
        // put elsewhere (the hook self-test's tests put one where it never fires).
        var link = program.Name switch
        {
            _ when program.Name.StartsWith("st_tp_btf_", StringComparison.Ordinal) => _object.Attach(program.Name),
            _ when program.Name.StartsWith("st_tp_", StringComparison.Ordinal) => _object.AttachTo(program.Name, tracepoint: program.Tracepoint),
            _ when program.Name.StartsWith("st_kp_", StringComparison.Ordinal) => _object.AttachTo(program.Name, function: program.KernelFunction),
            _ when program.Name.StartsWith(Bpf.KretprobeMisses.ProgramPrefix, StringComparison.Ordinal) => _object.AttachTo(program.Name, function: program.KernelFunction, retprobe: true),
            _ => _object.Attach(program.Name),
        };
        if (Bpf.KretprobeMisses.IsKretprobe(program.Name))
            _kretprobes.AddLink(program.Name, link);
        return link;
    }

    private void Detach()
    {
        foreach (var link in _links)
            link.Dispose();
        _links.Clear();
        _object.Dispose();
    }

    /// <summary>st_acceptors holds a bit per possible tgid (bpf/fdrace.bpf.h): kernel.pid_max
    /// of them, in 64-bit words. Where pid_max cannot be read, the kernel's limit for 64-bit
    /// machines (PID_MAX_LIMIT, include/linux/threads.h).</summary>
    private static uint AcceptorWords()
    {
        const uint pidMaxLimit = 4 * 1024 * 1024;
        uint pidMax = pidMaxLimit;
        try
        {
            if (uint.TryParse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), System.Globalization.CultureInfo.InvariantCulture, out uint read) && read > 0)
                pidMax = Math.Min(read, pidMaxLimit);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        return (pidMax + 63) / 64;
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Attached hook {Hook} in {Mode} mode ({Why})")]
    private partial void LogAttached(string hook, string mode, string why);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Hook {Hook} is not attached: {Why}")]
    private partial void LogLeftOut(string hook, string why);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "kprobe_events is not writable: the kretprobe on {Function} uses the kernel's default maxactive, and returns beyond that many concurrent calls are missed")]
    private partial void LogDefaultMaxActive(string function);
}

/// <summary>Settings of the kernel source, validated by the host before use. <paramref name="KernelFeatures"/>
/// limits what of the kernel the programs use (<see cref="KernelFeatures.KernelFlags"/>: all it has), so that
/// tests reach the paths of older kernels on this one.</summary>
public sealed record KernelSourceOptions(uint RingBufferBytes, TimeSpan PollInterval, TimeSpan DoubleCloseWindow, BpfConfigFlags KernelFeatures = Bpf.KernelFeatures.KernelFlags);
