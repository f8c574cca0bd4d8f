using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// From a source's records to the metrics: accept records completed by <see cref="AcceptJoin"/>,
/// then counted by the accept metrics and by each listener's accepts (<see cref="ListenAccepts"/>);
/// fd races; and, for the kernel source, what its programs count themselves, read at scrape time.
/// The agent and the kernel tests build the same one.
/// </summary>
public sealed class RecordPipeline
{
    private readonly AcceptMetrics _accepts;

    public RecordPipeline(AcceptMetrics accepts, FdRaceMetrics races, SeriesLimit? limit = null)
    {
        _accepts = accepts;
        ListenAccepts = new ListenAccepts(limit);
        Join = new AcceptJoin(new AcceptHandlers(accepts, ListenAccepts));
        Decoder = new RecordDecoder(Join, races);
    }

    public RecordDecoder Decoder { get; }
    public AcceptJoin Join { get; }
    public ListenAccepts ListenAccepts { get; }

    /// <summary>Reports what <paramref name="source"/> counts in the kernel through the metrics;
    /// <paramref name="rx"/> and <paramref name="delivery"/> only with the receive metrics on.</summary>
    public void Observe(KernelEventSource source, AgentMetrics agent, ListenMetrics listen, RxMetrics? rx = null, DeliveryMetrics? delivery = null)
    {
        agent.Observe(source, Decoder, Join);
        _accepts.ObserveKernelErrors(source.AcceptErrors.Read, source.AcceptErrors.Forget);
        rx?.Observe(source.RxDevices.Read);
        delivery?.Observe(source.Deliveries.ReadDeliveries, source.Deliveries.ReadLocalPairs, source.Deliveries.ReadLatencies);
        listen.Observe(() => ListenAccepts.Merge(source.ListenQueues.Read()), source.Probes.Any(p => p.Hook == Hooks.ListenOverflow.Name), ListenAccepts.Workers);
    }
}
