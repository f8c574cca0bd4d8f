using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using SockTrace.Agent.Attribution;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Turns accept records into the accept counters and histograms, and the fd reuse gaps
/// (<see cref="FdReuseGaps"/>) they carry. Failed calls are counted, not timed: the kernel
/// counts them itself (st_accept_errors, added here at each scrape by
/// <see cref="ObserveKernelErrors"/>), and a record of one (the reference model's) counts the same.
///
/// These families are aggregated here and written into /metrics by
/// <see cref="WriteTo"/>, not by the OpenTelemetry SDK, for two reasons measured or read in
/// the SDK: a synchronous instrument's series are exported until the process exits (so the
/// series of a listener that is gone could never be dropped after an idle time), and one
/// SDK measurement with cached tags costs about as much as the whole per-record budget
/// (BENCHMARKS.md). The same measurements still go to the instruments of the SockTrace meter
/// whenever an in-process listener (dotnet-counters, a MeterListener) enables them; the SDK
/// itself is told to drop those (<see cref="ExportedHere"/>).
/// </summary>
public sealed class AcceptMetrics : IAcceptHandler
{
    /// <summary>Instruments the SDK must not export: their families are written by <see cref="WriteTo"/>.</summary>
    public static readonly IReadOnlyList<string> ExportedHere = ["socktrace.accepts", "socktrace.accept.errors", "socktrace.accept.duration", "socktrace.accept.queue_wait", "socktrace.fd.reuse_gap"];

    private const double NsPerSecond = 1e9;
    private const string AcceptsHelp = "Successful accept()/accept4() calls, by listening port, accepting process and peer.";
    private const string ErrorsHelp = "Failed accept()/accept4() calls, by listening port, accepting process and errno.";
    private const string DurationHelp = "Time from accept()/accept4() entry to return, of the calls that returned a connection.";
    private const string QueueWaitHelp = "Time an established connection waited in the listen queue before accept returned it.";

    private readonly SeriesLimit _limit;
    private readonly PodAttribution? _attribution;
    private readonly Func<ulong> _nowNs;
    private readonly Lock _lock = new();
    private readonly AcceptSeries _series;
    private readonly FdReuseGaps _reuseGaps;
    private readonly Counter<long> _accepts;
    private readonly Counter<long> _errors;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _queueWait;
    private readonly Histogram<double> _reuseGap;
    private Func<IReadOnlyList<(AcceptErrorKey Key, ulong Count)>>? _readKernelErrors;
    private Func<AcceptErrorKey, bool>? _forgetKernelError;
    // By the raw key's fields: a struct holding an inline array has no cheap equality of its own.
    private readonly Dictionary<(ulong Cgroup, ushort Port, ushort Errno, ulong Comm0, ulong Comm1), (ulong Count, ulong ChangedNs)> _kernelErrors = [];
    private readonly Lock _kernelErrorsLock = new();

    /// <summary>How long a kernel error key may stay unchanged before it is deleted.</summary>
    public static readonly TimeSpan KernelKeyIdle = TimeSpan.FromSeconds(60);
    private static readonly ulong KernelKeyIdleNs = (ulong)KernelKeyIdle.Ticks * 100;

    /// <param name="attribution">Non-null with --attribution on: the counters gain namespace, pod and container.</param>
    /// <param name="idle">Series with no record for this long are dropped; zero keeps them for good.</param>
    /// <param name="nowNs">The kernel's clock (CLOCK_MONOTONIC ns), which stamps the records.</param>
    public AcceptMetrics(IMeterFactory meterFactory, SeriesLimit? limit = null, PodAttribution? attribution = null, TimeSpan idle = default, Func<ulong>? nowNs = null)
    {
        _limit = limit ?? new SeriesLimit(meterFactory);
        _attribution = attribution;
        _nowNs = nowNs ?? MonotonicClock.NowNs;
        _series = new AcceptSeries(_limit.MaxPerMetric, (ulong)idle.Ticks * 100, _nowNs);
        _reuseGaps = new FdReuseGaps(_limit.MaxPerMetric, (ulong)idle.Ticks * 100);
        var meter = meterFactory.Create(SockTraceMeter.Name);
        var buckets = new InstrumentAdvice<double> { HistogramBucketBoundaries = SockTraceMeter.LatencyBuckets };
        _accepts = meter.CreateCounter<long>(ExportedHere[0], description: AcceptsHelp);
        _errors = meter.CreateCounter<long>(ExportedHere[1], description: ErrorsHelp);
        _duration = meter.CreateHistogram(ExportedHere[2], "s", DurationHelp, advice: buckets);
        _queueWait = meter.CreateHistogram(ExportedHere[3], "s", QueueWaitHelp, advice: buckets);
        _reuseGap = meter.CreateHistogram(ExportedHere[4], "s", FdReuseGaps.Help, advice: buckets);
        if (attribution is not null)
            attribution.PodRemoved += RemovePod;
    }

    public void OnAccept(in AcceptRecord r)
    {
        if (r.Ret < 0)
        {
            CountFailed(r.ListenPort, r.Comm, -r.Ret, r.CgroupId, 1, r.ExitNs);
            return;
        }
        bool queued = r.EstablishedNs != 0 && r.ExitNs >= r.EstablishedNs;
        double duration = (r.ExitNs - r.EnterNs) / NsPerSecond;
        double queueWait = queued ? (r.ExitNs - r.EstablishedNs) / NsPerSecond : 0;
        var pod = _attribution is null ? null : _attribution.Resolve(r.CgroupId) ?? PodLabels.None;
        AcceptSeries.Entry entry;
        FdReuseGaps.Series? reuse;
        lock (_lock)
        {
            entry = _series.Accepted(in r, PeerAddress.Classify(r.Family, r.PeerAddr, r.PeerLocal != 0));
            entry.LastNs = entry.PortComm.LastNs = r.ExitNs;
            if (pod is null)
                entry.Count++;
            else
                AcceptSeries.CountPod(entry, pod);
            entry.PortComm.Duration.Record(duration);
            if (queued)
                entry.PortComm.QueueWait.Record(queueWait);
            reuse = _reuseGaps.Record(in r);
        }
        if (entry.Folded)
            _limit.Folded(SeriesLimit.Accepts);
        if (reuse is { Folded: true })
            _limit.Folded(SeriesLimit.FdReuseGap);
        if (entry.PortComm.Folded)
        {
            _limit.Folded(SeriesLimit.AcceptDuration);
            if (queued)
                _limit.Folded(SeriesLimit.AcceptQueueWait);
        }
        if (_accepts.Enabled)
            _accepts.Add(1, entry.Tags);
        if (_duration.Enabled)
            _duration.Record(duration, entry.PortComm.Tags);
        if (queued && _queueWait.Enabled)
            _queueWait.Record(queueWait, entry.PortComm.Tags);
        if (reuse is not null && _reuseGap.Enabled)
            _reuseGap.Record((r.ExitNs - r.FdClosedNs) / NsPerSecond, reuse.Tags);
    }

    /// <summary>
    /// Adds the kernel's counts of failed calls (<paramref name="read"/>: every key with its
    /// total over CPUs, <see cref="Bpf.AcceptErrorTable"/>) at each scrape, as the rise since the
    /// last one. A key whose count has not moved for <see cref="KernelKeyIdle"/> is deleted from
    /// the kernel map (<paramref name="forget"/>, false where the kernel keeps it), so that the
    /// map holds the keys in use (listeners on ephemeral ports come and go); should it count
    /// again, it starts from zero there. Its
    /// series idles out as a record's would. A failure counted in the instant between a key's
    /// last read and its deletion is lost with it.
    /// </summary>
    public void ObserveKernelErrors(Func<IReadOnlyList<(AcceptErrorKey Key, ulong Count)>> read, Func<AcceptErrorKey, bool> forget)
    {
        _forgetKernelError = forget;
        _readKernelErrors = read;
    }

    private void CountFailed(ushort port, ReadOnlySpan<byte> comm, int errno, ulong cgroupId, long n, ulong nowNs)
    {
        var pod = _attribution is null ? null : _attribution.Resolve(cgroupId) ?? PodLabels.None;
        AcceptSeries.Entry entry;
        lock (_lock)
        {
            entry = _series.Failed(port, comm, errno);
            entry.LastNs = nowNs;
            if (pod is null)
                entry.Count += n;
            else
                AcceptSeries.CountPod(entry, pod, n);
        }
        if (entry.Folded)
            _limit.Folded(SeriesLimit.AcceptErrors);
        if (_errors.Enabled)
            _errors.Add(n, entry.Tags);
    }

    private void AddKernelErrors()
    {
        if (_readKernelErrors is not { } read)
            return;
        lock (_kernelErrorsLock)
        {
            ulong now = _nowNs();
            var seen = new HashSet<(ulong, ushort, ushort, ulong, ulong)>();
            foreach (var (key, count) in read())
            {
                ReadOnlySpan<byte> comm = key.Comm;
                var id = key.Id();
                seen.Add(id);
                _kernelErrors.TryGetValue(id, out var last);
                if (count > last.Count)
                {
                    CountFailed(key.ListenPort, comm, key.Errno, key.CgroupId, (long)(count - last.Count), now);
                    _kernelErrors[id] = (count, now);
                }
                else if (now - last.ChangedNs > KernelKeyIdleNs && (_forgetKernelError?.Invoke(key) ?? true))
                {
                    _kernelErrors.Remove(id);
                }
            }
            // Keys the kernel no longer has (deleted here) start again from zero.
            foreach (var gone in _kernelErrors.Keys.Where(k => !seen.Contains(k)).ToList())
                _kernelErrors.Remove(gone);
        }
    }

    /// <summary>Writes the families, after dropping the series that idled out.</summary>
    internal void WriteTo(ExpositionWriter writer)
    {
        AddKernelErrors();
        lock (_lock)
        {
            ulong now = _nowNs();
            _series.Sweep(now);
            _reuseGaps.Sweep(now);
            WriteCounts(writer, "socktrace_accepts_total", AcceptsHelp, _series.Accepted());
            WriteCounts(writer, "socktrace_accept_errors_total", ErrorsHelp, _series.Failed());
            WriteHistograms(writer, "socktrace_accept_duration_seconds", DurationHelp, static p => p.Duration);
            WriteHistograms(writer, "socktrace_accept_queue_wait_seconds", QueueWaitHelp, static p => p.QueueWait);
            _reuseGaps.WriteTo(writer);
        }
    }

    private static void WriteCounts(ExpositionWriter writer, string name, string help, IEnumerable<AcceptSeries.Entry> entries)
    {
        bool any = false;
        foreach (var entry in entries)
        {
            if (entry.Pods is null)
            {
                Write(entry.Tags, entry.Count);
                continue;
            }
            foreach (var pod in entry.Pods.Values)
                Write(pod.Tags, pod.Count);
        }

        void Write(KeyValuePair<string, object?>[] tags, long count)
        {
            if (!any)
                writer.Family(name, "counter", help);
            any = true;
            writer.Sample(name, tags, count);
        }
    }

    private void WriteHistograms(ExpositionWriter writer, string name, string help, Func<AcceptSeries.PortComm, LatencyHistogram> histogram)
    {
        bool any = false;
        foreach (var set in _series.PortComms())
        {
            var h = histogram(set);
            if (h.Count == 0)
                continue;
            if (!any)
                writer.Family(name, "histogram", help, "seconds");
            any = true;
            h.WriteTo(writer, name, set.Tags);
        }
    }

    private void RemovePod(string podUid)
    {
        lock (_lock)
            _series.RemovePod(podUid);
    }
}
