using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>Reads st_listen (bpf/listen.bpf.h): listening sockets by network namespace and port.</summary>
public sealed unsafe class ListenQueueTable(int mapFd)
{
    private const int ENOENT = 2;

    /// <summary>Every listener in the map. One evicted while the map is walked is skipped.</summary>
    public List<ListenQueue> Read()
    {
        var queues = new List<ListenQueue>();
        ListenKey key = default, next;
        ListenKey* previous = null;
        ListenValue value;
        while (true)
        {
            int err = Interop.Libbpf.bpf_map_get_next_key(mapFd, previous, &next);
            if (err == -ENOENT)
                break;
            if (err < 0)
                throw new BpfException("bpf_map_get_next_key", -err, "st_listen");
            key = next;
            previous = &key;
            err = Interop.Libbpf.bpf_map_lookup_elem(mapFd, &key, &value);
            if (err == -ENOENT)
                continue;
            if (err < 0)
                throw new BpfException("bpf_map_lookup_elem", -err, "st_listen");
            queues.Add(new ListenQueue(key.Netns, key.Port, value.Overflows, value.Depth, value.Limit));
        }
        return queues;
    }
}
