namespace SockTrace.Reference;

/// <summary>
/// The kernel path SockTrace observes, for one process: its fd table, its sockets, and the
/// records the BPF programs would emit, in the order they would emit them. Syscalls take
/// no virtual time; only waits move the clock.
/// </summary>
internal sealed class SocketModel
{
    private const ushort AfInet = 2;
    private const ushort AfInet6 = 10;
    private static readonly byte[] Loopback4 = [127, 0, 0, 1];
    private static readonly byte[] Loopback6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    private readonly ModelOptions _options;
    private readonly Action<byte[]> _emit;
    /// <summary>st_closes in fdrace.bpf.h: the last successful close() of each fd, and by whom;
    /// Ns 0 once an accept consumed it.</summary>
    private readonly Dictionary<int, (ulong Ns, uint Tid)> _closes = [];
    private ushort _nextPeerPort = 40000;
    /// <summary>st_acceptors (fdrace.bpf.h): set at the first accept on a listener; until then
    /// the close and dup hooks do not follow this process.</summary>
    private bool _accepts;

    public SocketModel(ModelOptions options, int nofile, Action<byte[]> emit)
    {
        _options = options;
        _emit = emit;
        Clock = new VirtualClock(options.StartNs);
        Fds = new FdTable(nofile);
        for (int i = 0; i < options.InheritedFds; i++)
            Fds.Open(new OtherFile());
    }

    public VirtualClock Clock { get; }
    public FdTable Fds { get; }
    public Dictionary<string, long> Delivered { get; } = [];

    /// <summary>Raised when a connection wakes a thread asleep in accept: (step, thread, return value).</summary>
    public event Action<int, ModelThread, int>? AcceptCompleted;

    /// <summary>socket() + bind() + listen(): one fd.</summary>
    public int Listen(ListenSocket listener) => Fds.Open(listener);

    /// <summary>
    /// socket() + connect(): the client's fd, and the handshake completing into the listener's
    /// queue at once (loopback delivers the SYN, SYN-ACK and ACK before connect() returns).
    /// </summary>
    public int Connect(ListenSocket listener, string via)
    {
        int fd = Fds.Reserve();
        if (fd < 0)
            return fd;
        if (listener.Full)
            throw new ScenarioException($"the accept queue of '{listener.Name}' is full (backlog {listener.Backlog}): the kernel would drop the handshake, which the model does not model");
        bool v6 = via == "loopback6";
        byte[] clientAddr = via switch { "nic" => _options.NicAddress, "loopback6" => Loopback6, _ => Loopback4 };
        string path = via == "nic" ? "nic" : "loopback";
        var client = new StreamSocket(v6 ? AfInet6 : AfInet, v6 ? Loopback6 : Loopback4, listener.Port, path);
        var child = new StreamSocket(v6 ? AfInet6 : AfInet, clientAddr, _nextPeerPort++, path) { Peer = client, EstablishedNs = Clock.NowNs };
        client.Peer = child;
        Fds.Install(fd, client);
        listener.Queue.Enqueue(child);
        if (listener.Waiters.Count > 0)
        {
            // The child's arrival wakes the first exclusive waiter (inet_csk_wait_for_connect()).
            var thread = listener.Waiters[0];
            listener.Waiters.RemoveAt(0);
            var pending = thread.Waiting!;
            thread.Waiting = null;
            int ret = Complete(thread, pending.Fd, listener, pending.EnterNs);
            AcceptCompleted?.Invoke(pending.StepIndex, thread, ret);
        }
        return fd;
    }

    // Every connection the model makes comes from a socket of this same host (the scenario's
    // own connect), which accept.bpf.c marks peer_local: the peer is "local" unless loopback.

    /// <summary>
    /// accept4(), as __sys_accept4_file() runs it: reserve the fd first (get_unused_fd_flags(),
    /// EMFILE before the queue is even looked at), then take a child (inet_csk_accept():
    /// EAGAIN on an empty non-blocking listener, else sleep), then fd_install(). Returns the
    /// fd, -errno, or null when the thread went to sleep holding its reservation.
    /// </summary>
    public int? Accept(ModelThread thread, int stepIndex, int listenFd, out int reserved)
    {
        reserved = -1;
        if (Fds.FileAt(listenFd) is not ListenSocket listener)
        {
            if (Fds.FileAt(listenFd) is null)
                return -Errno.EBADF; // no socket: the BPF program records nothing (sock_of_fd() is NULL)
            throw new ScenarioException($"step {stepIndex}: accept on fd {listenFd}, which is not a listener, is not modelled");
        }
        ulong enter = Clock.NowNs;
        _accepts = true;
        int fd = Fds.Reserve();
        if (fd < 0)
            return Fail(thread, listener, enter, fd);
        if (listener.Queue.Count == 0)
        {
            if (!listener.Blocking)
            {
                Fds.Unreserve(fd);
                return Fail(thread, listener, enter, -Errno.EAGAIN);
            }
            reserved = fd;
            thread.Waiting = new PendingAccept(stepIndex, fd, listener, enter);
            listener.Waiters.Add(thread);
            return null;
        }
        return Complete(thread, fd, listener, enter);
    }

    /// <summary>close(), as close_enter() in fdrace.bpf.c judges it, once the process accepts:
    /// a slot with a file records the close; an empty one (EBADF) is a double_close when
    /// another thread closed the same fd within the window.</summary>
    public int Close(ModelThread thread, int fd)
    {
        ulong now = Clock.NowNs;
        int ret = Fds.Close(fd, out var file);
        if (ret == 0 && file is ListenSocket { Waiters.Count: > 0 } l)
            throw new ScenarioException($"closing listener '{l.Name}' while a thread sleeps in accept on it is not modelled");
        if (!_accepts)
            return ret;
        if (ret == 0)
        {
            _closes[fd] = (now, thread.Tid);
        }
        else if (_closes.TryGetValue(fd, out var last) && last.Ns != 0 && last.Tid != thread.Tid
            && now - last.Ns <= (ulong)(_options.DoubleCloseWindow.Ticks * 100))
        {
            EmitRace(thread, fd, RecordWriter.RaceDoubleClose, now - last.Ns, last.Tid);
        }
        return ret;
    }

    /// <summary>dup2()/dup3(); an EBUSY is what fdrace.bpf.c reports as dup2_busy.</summary>
    public int Dup2(ModelThread thread, int oldfd, int newfd, bool dup3)
    {
        int ret = Fds.Dup2(oldfd, newfd, dup3, out _);
        if (ret == -Errno.EBUSY)
            EmitRace(thread, newfd, RecordWriter.RaceDup2Busy, 0, 0);
        return ret;
    }

    /// <summary>write(): the bytes land in the peer's receive queue, over the connection's path.</summary>
    public int Send(int fd, int bytes, int stepIndex)
    {
        if (Fds.FileAt(fd) is not StreamSocket { Peer: { } peer } socket)
            throw new ScenarioException($"step {stepIndex}: send on fd {fd}, which is not a connected socket, is not modelled");
        peer.Pending += bytes;
        Delivered[socket.Path] = Delivered.GetValueOrDefault(socket.Path) + bytes;
        return bytes;
    }

    /// <summary>recv(MSG_WAITALL) of bytes already delivered.</summary>
    public int Recv(int fd, int bytes, int stepIndex)
    {
        if (Fds.FileAt(fd) is not StreamSocket socket)
            throw new ScenarioException($"step {stepIndex}: recv on fd {fd}, which is not a connected socket, is not modelled");
        if (socket.Pending < bytes)
            throw new ScenarioException($"step {stepIndex}: recv of {bytes} bytes with {socket.Pending} delivered would block, which the model does not model");
        socket.Pending -= bytes;
        return bytes;
    }

    private int Complete(ModelThread thread, int fd, ListenSocket listener, ulong enter)
    {
        var child = listener.Queue.Dequeue();
        Fds.Install(fd, child);
        ulong now = Clock.NowNs;
        _emit(RecordWriter.Write(new RecordWriter.Accept(_options.Pid, thread.Tid, fd, listener.Port, child.Family,
            enter, now, child.EstablishedNs, child.PeerAddr, child.PeerPort, PeerLocal: true, _options.Comm, ClosedByOther(thread, fd))));
        return fd;
    }

    private int Fail(ModelThread thread, ListenSocket listener, ulong enter, int ret)
    {
        _emit(RecordWriter.Write(new RecordWriter.Accept(_options.Pid, thread.Tid, ret, listener.Port, 0,
            enter, Clock.NowNs, 0, [], 0, PeerLocal: false, _options.Comm)));
        return ret;
    }

    /// <summary>st_fd_closed_by_other() (fdrace.bpf.h): when another thread last closed the fd
    /// accept returned, or 0; the close is consumed whoever made it.</summary>
    private ulong ClosedByOther(ModelThread thread, int fd)
    {
        if (!_closes.TryGetValue(fd, out var closed) || closed.Ns == 0)
            return 0;
        _closes[fd] = (0, closed.Tid);
        return closed.Tid != thread.Tid ? closed.Ns : 0;
    }

    private void EmitRace(ModelThread thread, int fd, uint kind, ulong gap, uint otherTid) =>
        _emit(RecordWriter.Write(new RecordWriter.FdRace(_options.Pid, thread.Tid, fd, kind, Clock.NowNs, gap, otherTid, _options.Comm)));

    public ListenSocket NewListener(string name, ushort port, string address, int backlog, bool blocking) =>
        new(name, port, address == "loopback6" ? AfInet6 : AfInet, address, backlog, blocking);
}
