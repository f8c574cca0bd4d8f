using System.Diagnostics;
using SockTrace.Agent.Events;
using SockTrace.Agent.Hosting;
using SockTrace.Reference;

namespace SockTrace.Agent.Reference;

/// <summary>
/// The in-process model of the socket path as the agent's record source (`--source
/// reference`): it runs a scenario on a virtual clock and hands the records it emits, byte
/// for byte in the bpf/socktrace.h layout, to the same decoder and metrics the kernel's
/// records go to. No BPF, so no privileges: for demos and dashboard work.
/// </summary>
public sealed class ReferenceEventSource : IEventSource
{
    private readonly IRecordSink _sink;
    private readonly ModelRun _run;

    public ReferenceEventSource(IRecordSink sink, string scenarioFile, TimeSpan doubleCloseWindow)
    {
        _sink = sink;
        try
        {
            // Run at construction, so a scenario the model rejects stops start-up with its reason.
            // The virtual clock starts at the real CLOCK_MONOTONIC, so /races shows plausible times.
            _run = ModelRun.Execute(Scenario.Load(scenarioFile), new ModelOptions
            {
                Pid = (uint)Environment.ProcessId,
                StartNs = MonotonicClock.NowNs(),
                DoubleCloseWindow = doubleCloseWindow,
            });
        }
        catch (ScenarioException ex)
        {
            throw new StartupException(ExitCodes.Usage, $"scenario {scenarioFile}: {ex.Message}");
        }
    }

    public IReadOnlyList<ProbeInfo> Probes { get; } = [new("reference", "model")];

    /// <summary>Records the scenario produced.</summary>
    public int Records => _run.Records.Count;

    public ulong RecordsDropped => 0;

    /// <summary>Never raised: the model has done all its work before <see cref="Start"/>.</summary>
    public event Action<Exception>? Faulted { add { } remove { } }

    /// <summary>Delivers every record, on the calling thread (the decoder takes one thread at a time).</summary>
    public void Start()
    {
        foreach (var record in _run.Records)
            _sink.OnRecord(record);
    }

    public void Dispose()
    {
    }
}
