using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;

namespace SockTrace.Agent.Bpf;

/// <summary>Reads st_listen and st_listen_workers (bpf/listen.bpf.h): every listening socket
/// seen, by its struct sock address, and the processes that accepted from each.</summary>
public sealed unsafe class ListenQueueTable(int listenFd, int workersFd)
{
    /// <summary>Every listener in the map.</summary>
    public List<ListenQueue> Read()
    {
        var queues = new List<ListenQueue>();
        var value = new ListenValue[1];
        fixed (ListenValue* v = value)
            BpfMapWalk.Each<ulong>(listenFd, "st_listen", v, sock =>
            {
                ref var l = ref value[0];
                // Indexed at its first accept when listen() picked the port (bpf/listen.bpf.h).
                if (l.Port != 0)
                    queues.Add(new ListenQueue(sock, l.SeenNs, l.Netns, l.Port, l.Address(), l.Overflows, l.SynDrops, l.Cookies, l.Accepts, l.Depth, l.Limit, l.SynQueue));
            });
        return queues;
    }

    /// <summary>Every process's accepts from a listener in <paramref name="listeners"/>. The
    /// entries of listeners not there (closed: the kernel removed them from st_listen) are
    /// deleted, so a closed listener's workers go with it.</summary>
    public List<ListenWorker> ReadWorkers(IReadOnlyList<ListenQueue> listeners)
    {
        var live = listeners.Select(l => l.Sock).ToHashSet();
        var workers = new List<ListenWorker>();
        var gone = new List<ListenWorkerKey>();
        var value = new ListenWorkerValue[1];
        fixed (ListenWorkerValue* v = value)
            BpfMapWalk.Each<ListenWorkerKey>(workersFd, "st_listen_workers", v, key =>
            {
                if (!live.Contains(key.Sock))
                {
                    gone.Add(key);
                    return;
                }
                ref var w = ref value[0];
                workers.Add(new ListenWorker(key.Sock, key.Tgid, CommLabel.Text(w.Comm), w.FirstNs, w.Accepts));
            });
        foreach (var key in gone)
        {
            var k = key;
            // ENOENT: the kernel evicted it meanwhile; either way it is gone.
            Interop.Libbpf.bpf_map_delete_elem(workersFd, &k);
        }
        return workers;
    }
}
