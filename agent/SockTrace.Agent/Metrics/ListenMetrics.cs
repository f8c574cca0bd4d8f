using System.Diagnostics.Metrics;
using System.Globalization;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Listen overflows, SYN-queue drops, accepts and queue lengths per listening socket, read
/// from the kernel's map at scrape time: `ss -lnt` and /proc/net/netstat for every namespace
/// on the node at once. Each listener's series carry netns, port and listener
/// (<see cref="ListenerLabels"/>); at most --max-series-per-metric listeners get series of
/// their own, and the counts of the rest are added up under netns, port and listener "other".
/// </summary>
public sealed class ListenMetrics
{
    private static readonly KeyValuePair<string, object?>[] Other = [new("netns", SeriesLimit.Other), new("port", SeriesLimit.Other), new("listener", SeriesLimit.Other)];

    private static readonly KeyValuePair<string, object?>[] OtherWorker = [.. Other, new("worker", SeriesLimit.Other)];

    private readonly ListenerLabels _labels;
    private readonly WorkerLabels _workerLabels;
    private volatile Func<IReadOnlyList<ListenQueue>>? _read;
    private volatile Func<IReadOnlyList<ListenQueue>, IReadOnlyList<ListenWorker>>? _readWorkers;
    private volatile bool _dropsCounted;

    public ListenMetrics(IMeterFactory meterFactory, int maxSeries = SeriesLimit.DefaultMaxPerMetric)
    {
        _labels = new ListenerLabels(maxSeries);
        _workerLabels = new WorkerLabels(maxSeries);
        var meter = meterFactory.Create(SockTraceMeter.Name);
        meter.CreateObservableCounter("socktrace.listen.overflows", () => _dropsCounted ? Observe(q => (long)q.Overflows, foldRest: true) : [],
            description: "Connections a listener refused because its accept queue was full (ListenOverflows of its namespace's /proc/net/netstat), per listening socket. Counted only with the listen_overflow hook attached.");
        meter.CreateObservableCounter("socktrace.syn_queue.drops", () => _dropsCounted ? Observe(q => (long)q.SynDrops, foldRest: true) : [],
            description: "SYNs a listener dropped because its SYN (request) queue was full and syncookies were off (TCPReqQFullDrop of its namespace's /proc/net/netstat), per listening socket. Counted only with the listen_overflow hook attached.");
        meter.CreateObservableCounter("socktrace.syncookies.sent", () => _dropsCounted ? Observe(q => (long)q.Cookies, foldRest: true) : [],
            description: "SYNs a listener answered with a SYN cookie (SyncookiesSent of its namespace's /proc/net/netstat), per listening socket. Counted only with the listen_overflow hook attached; in tracepoint mode only for a port with one listening socket.");
        meter.CreateObservableCounter("socktrace.listen.accepts", () => Observe(q => (long)q.Accepts, foldRest: true),
            description: "Connections accept() returned from a listening socket: the spread across the members of a SO_REUSEPORT group.");
        meter.CreateObservableCounter("socktrace.listen.worker.accepts", ObserveWorkers,
            description: "Connections each process accept()ed from a listening socket: the spread across the workers that share one listener. worker is the process's name and its ordinal among that listener's accepting processes.");
        meter.CreateObservableGauge("socktrace.listen.queue.depth", () => Observe(q => q.Depth, foldRest: false),
            description: "Connections waiting in a listener's accept queue when last looked at (Recv-Q of `ss -lnt`), per listening socket.");
        meter.CreateObservableGauge("socktrace.listen.queue.limit", () => Observe(q => q.Limit, foldRest: false),
            description: "The backlog a listener's listen() set (Send-Q of `ss -lnt`), per listening socket.");
        meter.CreateObservableGauge("socktrace.listen.syn_queue.depth", () => Observe(q => q.SynQueue, foldRest: false),
            description: "Connection requests in a listener's SYN queue (handshakes not yet complete) when last looked at, per listening socket.");
    }

    /// <summary>Starts reporting what <paramref name="read"/> returns (the kernel map, or a test's
    /// listeners). Without <paramref name="dropsCounted"/> (the listen_overflow hook left out)
    /// there are no overflow and SYN-drop series at all, rather than zeros nothing counted.</summary>
    public void Observe(Func<IReadOnlyList<ListenQueue>> read, bool dropsCounted, Func<IReadOnlyList<ListenQueue>, IReadOnlyList<ListenWorker>>? readWorkers = null)
    {
        _dropsCounted = dropsCounted;
        _readWorkers = readWorkers;
        _read = read;
    }

    private List<Measurement<long>> ObserveWorkers()
    {
        if (_read is not { } read || _readWorkers is not { } readWorkers)
            return [];
        var listeners = _labels.Assign(read());
        var workers = readWorkers([.. listeners.Select(l => l.Queue)]);
        var measurements = new List<Measurement<long>>(workers.Count + 1);
        long rest = 0;
        bool folded = false;
        foreach (var (worker, tags) in _workerLabels.Assign(workers, listeners))
        {
            if (tags is null)
            {
                rest += (long)worker.Accepts;
                folded = true;
                continue;
            }
            measurements.Add(new Measurement<long>((long)worker.Accepts, tags));
        }
        if (folded)
            measurements.Add(new Measurement<long>(rest, OtherWorker));
        return measurements;
    }

    private List<Measurement<long>> Observe(Func<ListenQueue, long> value, bool foldRest)
    {
        if (_read is not { } read)
            return [];
        var queues = read();
        var measurements = new List<Measurement<long>>(queues.Count + 1);
        long rest = 0;
        bool folded = false;
        foreach (var (queue, tags) in _labels.Assign(queues))
        {
            if (tags is null)
            {
                rest += value(queue);
                folded = true;
                continue;
            }
            measurements.Add(new Measurement<long>(value(queue), tags));
        }
        if (folded && foldRest)
            measurements.Add(new Measurement<long>(rest, Other));
        return measurements;
    }
}

/// <summary>
/// The listener label of each listening socket: its bound address and its ordinal among the
/// sockets bound to that same address and port in that namespace, "10.0.0.1#0", "0.0.0.0#3",
/// "[::]#0". Several sockets share an address and port only as a SO_REUSEPORT group, so the
/// ordinal is the member's. It is the smallest one free when the agent first sees the socket
/// (members seen at once are numbered in the order they called listen()) and stays with it until it closes, so closing one member leaves the others' series as they
/// were, and a new member takes the freed ordinal: the label never outgrows the group. (The
/// kernel's own index in the group is no such label: reuseport_detach_sock() moves the last
/// member into a leaving one's slot.)
/// </summary>
internal sealed class ListenerLabels(int maxSeries)
{
    private readonly Dictionary<ulong, (KeyValuePair<string, object?>[] Tags, (uint, ushort, string) Group, int Ordinal)> _bySock = [];
    private readonly Dictionary<(uint Netns, ushort Port, string Address), SortedSet<int>> _used = [];

    /// <summary>Each listener with its label set, or null when the cap folds it into "other".
    /// Sockets no longer in <paramref name="queues"/> give their labels back.</summary>
    public List<(ListenQueue Queue, KeyValuePair<string, object?>[]? Tags)> Assign(IReadOnlyList<ListenQueue> queues)
    {
        var result = new List<(ListenQueue, KeyValuePair<string, object?>[]?)>(queues.Count);
        lock (_bySock)
        {
            var present = new HashSet<ulong>(queues.Count);
            foreach (var q in queues)
                present.Add(q.Sock);
            foreach (var gone in _bySock.Where(e => !present.Contains(e.Key)).ToList())
            {
                var used = _used[gone.Value.Group];
                used.Remove(gone.Value.Ordinal);
                if (used.Count == 0)
                    _used.Remove(gone.Value.Group);
                _bySock.Remove(gone.Key);
            }
            // New sockets take their ordinals in the order the kernel first saw them (listen()),
            // not in the hash map's: members that start together are numbered as they started.
            foreach (var q in queues.OrderBy(q => _bySock.ContainsKey(q.Sock) ? 0 : q.SeenNs))
            {
                if (!_bySock.TryGetValue(q.Sock, out var known))
                {
                    if (_bySock.Count >= maxSeries)
                    {
                        result.Add((q, null));
                        continue;
                    }
                    string address = q.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{q.Address}]" : q.Address.ToString();
                    var group = (q.Netns, q.Port, address);
                    if (!_used.TryGetValue(group, out var used))
                        _used[group] = used = [];
                    int ordinal = 0;
                    while (used.Contains(ordinal))
                        ordinal++;
                    used.Add(ordinal);
                    KeyValuePair<string, object?>[] tags =
                    [
                        new("netns", q.Netns.ToString(CultureInfo.InvariantCulture)),
                        new("port", q.Port.ToString(CultureInfo.InvariantCulture)),
                        new("listener", $"{address}#{ordinal.ToString(CultureInfo.InvariantCulture)}"),
                    ];
                    _bySock[q.Sock] = known = (tags, group, ordinal);
                }
                result.Add((q, known.Tags));
            }
        }
        return result;
    }
}

/// <summary>
/// The worker label of each process that accepted from a listening socket: its name and its
/// ordinal among that listener's accepting processes, "nginx#0", "nginx#1", in the order of
/// their first accept. Processes that share a listener are its workers, so the label is
/// bounded by their number (never a pid); a closed listener's workers go with it.
/// </summary>
internal sealed class WorkerLabels(int maxSeries)
{
    private readonly Dictionary<(ulong Sock, uint Tgid), KeyValuePair<string, object?>[]> _tags = [];
    private readonly Dictionary<ulong, int> _next = [];

    public List<(ListenWorker Worker, KeyValuePair<string, object?>[]? Tags)> Assign(
        IReadOnlyList<ListenWorker> workers, List<(ListenQueue Queue, KeyValuePair<string, object?>[]? Tags)> listeners)
    {
        var listenerTags = listeners.Where(l => l.Tags is not null).ToDictionary(l => l.Queue.Sock, l => l.Tags!);
        var result = new List<(ListenWorker, KeyValuePair<string, object?>[]?)>(workers.Count);
        lock (_tags)
        {
            foreach (var gone in _tags.Keys.Where(k => !listenerTags.ContainsKey(k.Sock)).ToList())
            {
                _tags.Remove(gone);
                _next.Remove(gone.Sock);
            }
            foreach (var w in workers.OrderBy(w => w.FirstNs))
            {
                if (!_tags.TryGetValue((w.Sock, w.Tgid), out var tags))
                {
                    if (_tags.Count >= maxSeries || !listenerTags.TryGetValue(w.Sock, out var of))
                    {
                        result.Add((w, null));
                        continue;
                    }
                    int ordinal = _next.GetValueOrDefault(w.Sock);
                    _next[w.Sock] = ordinal + 1;
                    _tags[(w.Sock, w.Tgid)] = tags = [.. of, new("worker", $"{w.Comm}#{ordinal.ToString(CultureInfo.InvariantCulture)}")];
                }
                result.Add((w, tags));
            }
        }
        return result;
    }
}
