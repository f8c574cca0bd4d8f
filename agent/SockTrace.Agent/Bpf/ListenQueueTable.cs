using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>Reads st_listen (bpf/listen.bpf.h): listening sockets by network namespace and port.</summary>
public sealed unsafe class ListenQueueTable(int mapFd)
{
    /// <summary>Every listener in the map.</summary>
    public List<ListenQueue> Read()
    {
        var queues = new List<ListenQueue>();
        var value = new ListenValue[1];
        fixed (ListenValue* v = value)
            BpfMapWalk.Each<ListenKey>(mapFd, "st_listen", v,
                key => queues.Add(new ListenQueue(key.Netns, key.Port, value[0].Overflows, value[0].Depth, value[0].Limit)));
        return queues;
    }
}
