namespace SockTrace.Agent.Events;

/// <summary>Something that produces records into a sink: the kernel's BPF programs, or a model.</summary>
public interface IEventSource : IDisposable
{
    /// <summary>What is attached, one entry per hook.</summary>
    IReadOnlyList<ProbeInfo> Probes { get; }

    /// <summary>Records lost before they reached the sink (ring buffer full).</summary>
    ulong RecordsDropped { get; }

    /// <summary>Records the source tried to hand over, delivered or dropped; null when it does not count them.</summary>
    ulong? RecordsProduced => null;

    /// <summary>Traced calls that produced no record, by reason (<see cref="UntrackedReasons"/>):
    /// a call's entry and return are paired through an in-flight map; empty when not counted.</summary>
    IReadOnlyList<(string Reason, ulong Calls)> UntrackedCalls() => [];

    /// <summary>Per kretprobe program, the returns the kernel missed (nmissed); empty where none
    /// is attached or the kernel does not count them.</summary>
    IReadOnlyList<(string Program, ulong Missed)> KretprobeMisses() => [];

    /// <summary>Per attached program, the runs the kernel skipped because another BPF program
    /// was running on that CPU; empty when not counted.</summary>
    IReadOnlyList<(string Program, ulong Misses)> ProgramMisses() => [];

    /// <summary>Raised, on any thread, when the source stops producing because of an error.</summary>
    event Action<Exception>? Faulted;

    /// <summary>Starts delivering records to the sink given at construction.</summary>
    void Start();
}
