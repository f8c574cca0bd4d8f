namespace SockTrace.Reference;

/// <summary>A file the fd table can hold that is not a socket (the inherited stdio).</summary>
internal sealed class OtherFile;

/// <summary>A listening socket and its accept queue (struct inet_connection_sock's icsk_accept_queue).</summary>
internal sealed class ListenSocket(string name, ushort port, ushort family, string address, int backlog, bool blocking)
{
    public string Name { get; } = name;
    public ushort Port { get; } = port;
    public ushort Family { get; } = family;
    public string Address { get; } = address;
    public int Backlog { get; } = backlog;
    public bool Blocking { get; } = blocking;
    /// <summary>Children that completed the handshake, oldest first (reqsk_queue_add() appends).</summary>
    public Queue<StreamSocket> Queue { get; } = new();
    /// <summary>Threads asleep in accept, in the order they went to sleep (exclusive waiters wake first-in first).</summary>
    public List<ModelThread> Waiters { get; } = [];

    /// <summary>sk_acceptq_is_full(): the queue holds up to backlog + 1 (net/sock.h compares with &gt;).</summary>
    public bool Full => Queue.Count > Backlog;
}

/// <summary>One end of an established connection.</summary>
internal sealed class StreamSocket(ushort family, byte[] peerAddr, ushort peerPort, string path)
{
    public ushort Family { get; } = family;
    public byte[] PeerAddr { get; } = peerAddr;
    public ushort PeerPort { get; } = peerPort;
    /// <summary>loopback or nic: the path its bytes are delivered over.</summary>
    public string Path { get; } = path;
    public StreamSocket? Peer { get; set; }
    public ulong EstablishedNs { get; set; }
    /// <summary>Bytes delivered to this end and not yet read.</summary>
    public long Pending { get; set; }
}

/// <summary>A thread of the modelled process; <see cref="Waiting"/> is set while it sleeps in accept.</summary>
internal sealed class ModelThread(string name, uint tid)
{
    public string Name { get; } = name;
    public uint Tid { get; } = tid;
    public PendingAccept? Waiting { get; set; }
}

/// <summary>An accept asleep on an empty queue, holding the fd it reserved.</summary>
internal sealed record PendingAccept(int StepIndex, int Fd, ListenSocket Listener, ulong EnterNs);
