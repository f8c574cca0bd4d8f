using System.Diagnostics.Metrics;
using System.Reflection;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// The agent's own health: records by type, records lost, what is attached, the build.
/// Read at scrape time from the running source and decoder.
/// </summary>
public sealed class AgentMetrics
{
    private static readonly string[] RecordTypeNames = ["invalid", "accept", "fd_race", "established", "client"];
    private volatile IEventSource? _source;
    private volatile RecordDecoder? _decoder;
    private volatile AcceptJoin? _join;

    public AgentMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(SockTraceMeter.Name);
        meter.CreateObservableCounter("socktrace.events", ObserveEvents,
            description: "Records received from the kernel, by type; type=\"invalid\" counts malformed records that were rejected.");
        meter.CreateObservableCounter("socktrace.records.rejected", ObserveRejected,
            description: "Records the decoder rejected, by reason (short, size, type: malformed; exit_before_entry, family, errno: an accept no kernel can have meant); they add up to socktrace_events_total{type=\"invalid\"}.");
        meter.CreateObservableCounter("socktrace.ringbuf.drops", ObserveDrops,
            description: "Records lost because the ring buffer was full (counted in the kernel).");
        // Observed after the two above, so a scrape reads it last: records in flight can only
        // make produced exceed events + drops, never fall short of it.
        meter.CreateObservableCounter("socktrace.records.produced", ObserveProduced,
            description: "Records the kernel tried to write to the ring buffer; equals the sum of socktrace_events_total and socktrace_ringbuf_drops_total once the ring is drained.");
        meter.CreateObservableCounter("socktrace.untracked_calls", ObserveUntracked,
            description: "Traced calls that produced no record, by reason (counted in the kernel): map_full, an in-flight map entry (accept, dup2, close) could not be stored; no_entry, an accept returned with no entry (begun before the agent attached, or evicted); return_missed, an accept's return was never seen; errors_lost, a failed accept found the kernel's error counts full; io_uring_fixed_file, an io_uring accept on a listener in, or into, the ring's fixed files.");
        meter.CreateObservableCounter("socktrace.accept.queue_wait.unknown", ObserveUnstamped,
            description: "Accepted connections whose queue wait is not in socktrace_accept_queue_wait_seconds: no record of their becoming ESTABLISHED was seen (lost to a full ring buffer, or begun before the agent started).");
        meter.CreateObservableCounter("socktrace.kretprobe.misses", ObserveKretprobeMisses,
            description: "Returns each kretprobe program missed because all of its maxactive instances were in use (the kernel's nmissed: tracefs kprobe_profile, or the BPF link's info).");
        meter.CreateObservableCounter("socktrace.program.misses", ObserveMisses,
            description: "Runs of each attached BPF program that the kernel skipped because another BPF program was running on that CPU (bpf_prog_info.recursion_misses): events lost to the kernel's recursion guard.");
        meter.CreateObservableGauge("socktrace.probe.info", ObserveProbes,
            description: "1 for each attached hook, labelled with the attach mode it uses.");
        string version = typeof(AgentMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        meter.CreateObservableGauge("socktrace.build.info", () => new Measurement<int>(1, new KeyValuePair<string, object?>("version", version)),
            description: "1, labelled with the agent's version.");
    }

    public void Observe(IEventSource source, RecordDecoder decoder, AcceptJoin? join = null)
    {
        _decoder = decoder;
        _join = join;
        _source = source;
    }

    private IEnumerable<Measurement<long>> ObserveUnstamped()
    {
        if (_join is { } join)
            yield return new(join.QueueWaitUnknown);
    }

    private IEnumerable<Measurement<long>> ObserveEvents()
    {
        if (_decoder is not { } decoder)
            yield break;
        yield return new(decoder.Invalid, new KeyValuePair<string, object?>("type", RecordTypeNames[0]));
        for (uint type = 1; type < RecordTypes.Count; type++)
            yield return new(decoder.Decoded(type), new KeyValuePair<string, object?>("type", RecordTypeNames[type]));
    }

    private IEnumerable<Measurement<long>> ObserveRejected()
    {
        if (_decoder is not { } decoder)
            yield break;
        for (int reason = 0; reason < RejectReasons.Count; reason++)
            yield return new(decoder.Rejected(reason), new KeyValuePair<string, object?>("reason", RejectReasons.Label(reason)));
    }

    private IEnumerable<Measurement<long>> ObserveDrops()
    {
        if (_source is { } source)
            yield return new((long)source.RecordsDropped);
    }

    private IEnumerable<Measurement<long>> ObserveProduced()
    {
        if (_source?.RecordsProduced is { } produced)
            yield return new((long)produced);
    }

    private IEnumerable<Measurement<long>> ObserveUntracked()
    {
        if (_source is not { } source)
            yield break;
        foreach (var (reason, calls) in source.UntrackedCalls())
            yield return new((long)calls, new KeyValuePair<string, object?>("reason", reason));
    }

    private IEnumerable<Measurement<long>> ObserveKretprobeMisses()
    {
        if (_source is not { } source)
            yield break;
        foreach (var (program, missed) in source.KretprobeMisses())
            yield return new((long)missed, new KeyValuePair<string, object?>("program", program));
    }

    private IEnumerable<Measurement<long>> ObserveMisses()
    {
        if (_source is not { } source)
            yield break;
        foreach (var (program, misses) in source.ProgramMisses())
            yield return new((long)misses, new KeyValuePair<string, object?>("program", program));
    }

    private IEnumerable<Measurement<int>> ObserveProbes()
    {
        if (_source is not { } source)
            yield break;
        foreach (var probe in source.Probes)
            yield return new(1, new("hook", probe.Hook), new("mode", probe.Mode));
    }
}
