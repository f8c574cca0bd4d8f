using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Accepts per listening socket and per accepting process of each, and each listener's
/// queues as its last accept saw them, counted from the accept records, which name their
/// listener: the kernel's listener map (bpf/listen.bpf.h) then needs no update per accept.
/// <see cref="Merge"/> joins these to the kernel's listeners at scrape time; a listener the
/// kernel no longer has (closed) is forgotten with its workers. At most
/// <see cref="Capacity"/> listeners and as many workers are followed, as many as the
/// kernel's map holds; the accepts of any beyond are counted in
/// socktrace_series_overflow_total.
/// </summary>
public sealed class ListenAccepts(SeriesLimit? limit = null) : IAcceptHandler
{
    public const int Capacity = 16384;

    internal static readonly KeyValuePair<string, object?>[] Metric = [new("metric", "socktrace_listen_accepts_total")];

    private sealed class Listener
    {
        public ulong Accepts;
        public ulong QueuesNs;
        public uint Depth, Limit, SynQueue;
    }

    private sealed class Worker(string comm, ulong firstNs)
    {
        public readonly string Comm = comm;
        public readonly ulong FirstNs = firstNs;
        public ulong Accepts;
    }

    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, Listener> _listeners = [];
    private readonly Dictionary<(ulong Sock, uint Tgid), Worker> _workers = [];

    public void OnAccept(in AcceptRecord r)
    {
        if (r.Ret < 0 || r.Listener == 0)
            return;
        bool dropped = false;
        lock (_lock)
        {
            if (!_listeners.TryGetValue(r.Listener, out var listener))
            {
                if (_listeners.Count >= Capacity)
                    dropped = true;
                else
                    _listeners[r.Listener] = listener = new Listener();
            }
            if (listener is not null)
            {
                listener.Accepts++;
                if (r.ExitNs >= listener.QueuesNs)
                    (listener.QueuesNs, listener.Depth, listener.Limit, listener.SynQueue) = (r.ExitNs, r.QueueDepth, r.QueueLimit, r.SynQueue);
                if (!_workers.TryGetValue((r.Listener, r.Pid), out var worker) && _workers.Count < Capacity)
                    _workers[(r.Listener, r.Pid)] = worker = new Worker(CommLabel.Text(r.Comm), r.ExitNs);
                if (worker is not null)
                    worker.Accepts++;
                else
                    dropped = true;
            }
        }
        if (dropped)
            limit?.Folded(Metric);
    }

    /// <summary>The kernel's listeners with their accepts, and whichever of the kernel's and
    /// the last accept's view of their queues is the later; forgets the listeners not there.</summary>
    public List<ListenQueue> Merge(IReadOnlyList<ListenQueue> kernel)
    {
        var merged = new List<ListenQueue>(kernel.Count);
        lock (_lock)
        {
            var live = new HashSet<ulong>(kernel.Count);
            foreach (var q in kernel)
            {
                live.Add(q.Sock);
                if (!_listeners.TryGetValue(q.Sock, out var l))
                {
                    merged.Add(q);
                    continue;
                }
                merged.Add(l.QueuesNs > q.QueuesNs
                    ? q with { Accepts = l.Accepts, Depth = l.Depth, Limit = l.Limit, SynQueue = l.SynQueue, QueuesNs = l.QueuesNs }
                    : q with { Accepts = l.Accepts });
            }
            foreach (var gone in _listeners.Keys.Where(k => !live.Contains(k)).ToList())
                _listeners.Remove(gone);
            foreach (var gone in _workers.Keys.Where(k => !live.Contains(k.Sock)).ToList())
                _workers.Remove(gone);
        }
        return merged;
    }

    /// <summary>The accepting processes of <paramref name="listeners"/>.</summary>
    public List<ListenWorker> Workers(IReadOnlyList<ListenQueue> listeners)
    {
        var live = listeners.Select(l => l.Sock).ToHashSet();
        lock (_lock)
            return [.. _workers.Where(w => live.Contains(w.Key.Sock)).Select(w => new ListenWorker(w.Key.Sock, w.Key.Tgid, w.Value.Comm, w.Value.FirstNs, w.Value.Accepts))];
    }
}
