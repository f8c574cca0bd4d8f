using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>Reads st_listen (bpf/listen.bpf.h): every listening socket seen, by its struct sock
/// address. Its accepts are counted from the accept records (<see cref="Metrics.ListenAccepts"/>).</summary>
public sealed unsafe class ListenQueueTable(int listenFd)
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
                    queues.Add(new ListenQueue(sock, l.SeenNs, l.Netns, l.Port, l.Address(), l.Overflows, l.SynDrops, l.Cookies, 0, l.Depth, l.Limit, l.SynQueue, l.QueuesNs));
            });
        return queues;
    }
}
