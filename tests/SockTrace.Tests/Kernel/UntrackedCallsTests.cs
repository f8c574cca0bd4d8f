using System.Net.Sockets;
using System.Runtime.InteropServices;
using SockTrace.Agent.Events;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// Losses on the accept path are counted, never silent, and state kept between hooks
/// belongs to the call or socket it was made for: an accept whose return finds no entry,
/// a UNIX-socket accept beside a TCP call's left-over entry, a child that dies in the
/// accept queue. Every attach mode (the kernel matrix runs these with kprobe and fentry),
/// except the UNIX accept test, which runs on the host alone (see its summary).
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class UntrackedCallsTests
{
    /// <summary>struct accept_call (bpf/accept.bpf.c): enter_ns, listener, registered, lport, inet, active, padding.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct AcceptCall
    {
        public ulong EnterNs;
        public ulong Listener;
        public ulong Registered;
        public ushort Lport;
        public byte Inet;
        public byte Active;
        public uint Pad;
    }

    /// <summary>
    /// The no_entry counter is the node's: any thread on the machine asleep in accept when the
    /// programs attach (a test host's listener, a parallel test's server) counts one when it
    /// returns. An attempt is judged only when no other thread slept in accept before or after
    /// the attach; a busy machine gets more attempts, never a looser count.
    /// </summary>
    [Fact]
    [Trait("Category", "Kernel")]
    public void AnAcceptThatBeganBeforeTheProgramsIsCountedAsNoEntry()
    {
        var busy = new List<string>();
        for (int attempt = 0; attempt < 10; attempt++)
        {
            string? others = AttemptNoEntry();
            if (others is null)
                return;
            busy.Add(others);
            Thread.Sleep(1000);
        }
        Assert.Fail("other threads slept in accept across every attach: " + string.Join("; ", busy));
    }

    /// <summary>One attempt: null when it was judged (and passed), else the other threads that slept in accept.</summary>
    private static string? AttemptNoEntry()
    {
        using var listener = Loopback.Listen();
        int port = listener.Port();
        int tid = 0;
        var accepting = new Thread(() =>
        {
            tid = gettid();
            using var s = listener.Accept();
        });
        accepting.Start();
        Eventually.True(() => tid != 0 && AcceptSleepers.OfThisProcess().Contains(tid), "the accepting thread blocked in accept4");

        var others = AcceptSleepers.OnTheMachine();
        using var pipeline = new KernelPipeline();
        ulong before = Untracked(pipeline, UntrackedReasons.NoEntry);
        others.UnionWith(AcceptSleepers.OnTheMachine());
        others.Remove(tid);
        using (Loopback.Connect(port))
            Assert.True(accepting.Join(TimeSpan.FromSeconds(60)), "accept returned");
        if (others.Count != 0)
            return string.Join(",", others);

        // Its entry was never made: no record. A syscall tracepoint still sees the return,
        // which counts one no_entry; a kretprobe or fexit program only runs for calls that
        // entered the function after it was attached (the return is hooked at entry), so
        // there the call is invisible at both ends and nothing is lost.
        ulong expected = KernelPipeline.ExpectedMode(SockTrace.Agent.Bpf.Hooks.Accept) == "tracepoint" ? 1UL : 0UL;
        Thread.Sleep(500);
        Assert.Equal(expected, Untracked(pipeline, UntrackedReasons.NoEntry) - before);
        Assert.DoesNotContain(pipeline.Scrape(), s => s.Name.StartsWith("socktrace_accept", StringComparison.Ordinal) && s.Labels.GetValueOrDefault("port") == Text(port));
        return null;
    }

    /// <summary>
    /// A thread whose TCP accept's return was missed (a kretprobe past maxactive: made here by
    /// writing that call's entry into the map) then accepts on a UNIX socket: the UNIX call
    /// replaces the left-over entry (one return_missed), makes no record, and leaves no entry.
    /// Before 6.4 the map's update op returned int, so the entry program's -EEXIST arrived
    /// zero-extended: compared as a long it was no -EEXIST, and the call counted map_full and
    /// left the stale entry for its return to take (seen on Debian's 6.1, bpf/accept.bpf.c).
    /// </summary>
    [Fact]
    [Trait("Category", "Kernel")]
    public unsafe void AUnixAcceptNeitherTakesNorLeavesAnInFlightEntry()
    {
        // The in-flight map the test can write to: older kernels' (task storage is the thread's).
        using var pipeline = new KernelPipeline(olderKernelPaths: true);
        int calls = pipeline.Source.MapFd("st_accept_calls");
        // The port the left-over entry claims: a record from it would be a TCP accept that never was.
        using var tcp = Loopback.Listen();
        int port = tcp.Port();
        string path = Path.Combine(Path.GetTempPath(), $"socktrace-unix-{Environment.ProcessId}-{port}.sock");
        using var unix = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        unix.Bind(new UnixDomainSocketEndPoint(path));
        unix.Listen(4);
        ulong missedBefore = Untracked(pipeline, UntrackedReasons.ReturnMissed);
        ulong noEntryBefore = Untracked(pipeline, UntrackedReasons.NoEntry);
        ulong mapFullBefore = Untracked(pipeline, UntrackedReasons.MapFull);
        try
        {
            bool leftOver = false, afterAccept = true, afterEagain = true;
            Exception? failed = null;
            var thread = new Thread(() =>
            {
                try
                {
                    ulong key = ((ulong)(uint)Environment.ProcessId << 32) | (uint)gettid();
                    var stale = new AcceptCall { EnterNs = 1, Lport = (ushort)port, Inet = 1 };
                    Assert.Equal(0, bpf_map_update_elem(calls, &key, &stale, 0));
                    leftOver = IsInFlight(calls, key);

                    using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    client.Connect(new UnixDomainSocketEndPoint(path));
                    using (unix.Accept())
                        afterAccept = IsInFlight(calls, key);
                    unix.Blocking = false;
                    Assert.Equal(SocketError.WouldBlock, Assert.Throws<SocketException>(() => unix.Accept()).SocketErrorCode);
                    afterEagain = IsInFlight(calls, key);
                }
                catch (Exception ex)
                {
                    failed = ex;
                }
            });
            thread.Start();
            thread.Join();
            if (failed is not null)
                throw failed;

            Assert.True(leftOver, "the left-over entry was written");
            Assert.False(afterAccept, "the UNIX accept left an entry behind");
            Assert.False(afterEagain, "the failed UNIX accept left an entry behind");
            Thread.Sleep(500);
            // No accept family has a series for that port: no record claimed it (a return
            // that took the left-over entry would have made one).
            Assert.DoesNotContain(pipeline.Scrape(), s => s.Name.StartsWith("socktrace_accept", StringComparison.Ordinal) && s.Labels.GetValueOrDefault("port") == Text(port));
            ulong missed = Untracked(pipeline, UntrackedReasons.ReturnMissed) - missedBefore;
            ulong noEntry = Untracked(pipeline, UntrackedReasons.NoEntry) - noEntryBefore;
            ulong mapFull = Untracked(pipeline, UntrackedReasons.MapFull) - mapFullBefore;
            Assert.True(missed == 1, $"return_missed counted {missed} times, expected 1 (meanwhile no_entry {noEntry}, map_full {mapFull})");
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// A child reset while it waits in the accept queue is still handed out by accept(), and
    /// reports the time it waited; the connection made after it reports its own, from its
    /// handshake to its accept, not the dead child's.
    /// </summary>
    [Fact]
    [Trait("Category", "Kernel")]
    public void AChildResetInTheQueueLeavesOnlyTheNextConnectionsOwnQueueWait()
    {
        var wait = TimeSpan.FromMilliseconds(60);
        using var pipeline = new KernelPipeline();
        using var listener = Loopback.Listen();
        int port = listener.Port();

        long resetConnected = System.Diagnostics.Stopwatch.GetTimestamp();
        var reset = Loopback.Connect(port);
        reset.LingerState = new LingerOption(true, 0);
        reset.Close(); // RST: the queued child goes ESTABLISHED -> CLOSE
        Thread.Sleep(50);

        // From before connect(): the queue wait starts inside it.
        long connected = System.Diagnostics.Stopwatch.GetTimestamp();
        using var next = Loopback.Connect(port);
        Thread.Sleep(wait);
        // accept() hands out the dead child first (it stays queued), then the live one.
        using var first = listener.Accept();
        using var second = listener.Accept();
        double waited = System.Diagnostics.Stopwatch.GetElapsedTime(connected).TotalSeconds;
        double deadWaited = System.Diagnostics.Stopwatch.GetElapsedTime(resetConnected).TotalSeconds;
        Assert.Equal(((System.Net.IPEndPoint)next.LocalEndPoint!).Port, ((System.Net.IPEndPoint)second.RemoteEndPoint!).Port);

        var scrape = pipeline.SettleScrape("socktrace_accepts_total", port, 2);
        Assert.Equal(2, scrape.Sum("socktrace_accepts_total", ("port", Text(port))));
        Assert.Equal(2, scrape.Sum("socktrace_accept_duration_seconds_count", ("port", Text(port))));
        Assert.Equal(2, scrape.Sum("socktrace_accept_queue_wait_seconds_count", ("port", Text(port))));
        // The dead child waited the 50 ms and W at least; the live one W. Had the live one
        // taken the dead one's stamp, the sum would hold the 50 ms twice.
        double lower = 0.05 + 2 * wait.TotalSeconds, upper = deadWaited + waited;
        Assert.InRange(scrape.Sum("socktrace_accept_queue_wait_seconds_sum", ("port", Text(port))), lower * 0.9, upper * 1.1);
    }

    private static string Text(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static ulong Untracked(KernelPipeline pipeline, string reason) =>
        (ulong)pipeline.Scrape().Single(s => s.Name == "socktrace_untracked_calls_total" && s.Labels["reason"] == reason).Value;

    private static unsafe bool IsInFlight(int mapFd, ulong key)
    {
        AcceptCall value;
        int err = SockTrace.Agent.Bpf.Interop.Libbpf.bpf_map_lookup_elem(mapFd, &key, &value);
        Assert.True(err is 0 or -2, $"bpf_map_lookup_elem: {err}");
        return err == 0;
    }

    [DllImport("libc")]
    private static extern int gettid();

    [DllImport("libbpf.so.1")]
    private static extern unsafe int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);
}
