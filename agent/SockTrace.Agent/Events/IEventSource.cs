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

    /// <summary>Calls that produced no record because their in-flight entry could not be
    /// stored (the call's entry and return are paired through a map); null when not counted.</summary>
    ulong? CallsUntracked => null;

    /// <summary>Per attached program, the runs the kernel skipped because another BPF program
    /// was running on that CPU; empty when not counted.</summary>
    IReadOnlyList<(string Program, ulong Misses)> ProgramMisses() => [];

    /// <summary>Raised, on any thread, when the source stops producing because of an error.</summary>
    event Action<Exception>? Faulted;

    /// <summary>Starts delivering records to the sink given at construction.</summary>
    void Start();
}
