using System.Net.Sockets;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>The accept path on the real kernel, through real sockets, asserted exactly.</summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed class AcceptPathTests
{
    private static readonly string OwnComm = File.ReadAllText($"/proc/{Environment.ProcessId}/comm").Trim();

    [Fact]
    public void CountsEveryAcceptWithItsQueueWait()
    {
        const int n = 5;
        var wait = TimeSpan.FromMilliseconds(30);
        using var pipeline = new KernelPipeline();
        using var listener = Loopback.Listen();
        int port = listener.Port();

        var waited = Loopback.ConnectAndAcceptAfter(listener, n, wait);

        string p = Text(port);
        var scrape = pipeline.SettleScrape("socktrace_accepts_total", port, n);
        Assert.Equal(n, scrape.Sum("socktrace_accepts_total", ("port", p), ("peer", "loopback"), ("comm", OwnComm)));
        Assert.Equal(n, scrape.Sum("socktrace_accepts_total", ("port", p)));

        Assert.Equal(n, scrape.Sum("socktrace_accept_queue_wait_seconds_count", ("port", p)));
        // At least W each; at most what the test measured from before connect() to after
        // accept() (Loopback.ConnectAndAcceptAfter): the queue starts inside that span.
        double expected = waited.Sum(w => w.TotalSeconds);
        Assert.InRange(scrape.Sum("socktrace_accept_queue_wait_seconds_sum", ("port", p)), n * wait.TotalSeconds * 0.9, expected * 1.1);
        // Each connection waited at least W (how much longer is up to the scheduler): no
        // wait fell in a bucket below 0.9 W.
        Assert.Equal(0, scrape.Where(s => s.Name == "socktrace_accept_queue_wait_seconds_bucket" && s.Labels["port"] == p
            && s.Labels["le"] != "+Inf" && double.Parse(s.Labels["le"], System.Globalization.CultureInfo.InvariantCulture) < wait.TotalSeconds * 0.9).Select(s => s.Value).DefaultIfEmpty(0).Max());

        Assert.Equal(n, scrape.Sum("socktrace_accept_duration_seconds_count", ("port", p)));
        Assert.Equal(0, scrape.Sum("socktrace_accept_errors_total", ("port", p)));
    }

    [Fact]
    public void CountsEagainFromANonBlockingListener()
    {
        const int n = 7;
        using var pipeline = new KernelPipeline();
        using var listener = Loopback.Listen();
        int port = listener.Port();

        Loopback.AcceptWouldBlock(listener, n);

        string p = Text(port);
        var scrape = pipeline.SettleScrape("socktrace_accept_errors_total", port, n);
        Assert.Equal(n, scrape.Sum("socktrace_accept_errors_total", ("port", p), ("errno", "eagain")));
        Assert.Equal(n, scrape.Sum("socktrace_accept_errors_total", ("port", p)));
        Assert.Equal(0, scrape.Sum("socktrace_accepts_total", ("port", p)));
        // Counted in the kernel, not timed: no record.
        Assert.Equal(0, scrape.Sum("socktrace_accept_duration_seconds_count", ("port", p)));
        Assert.Equal(0, scrape.Sum("socktrace_accept_queue_wait_seconds_count", ("port", p)));
    }

    /// <summary>
    /// More listeners failing than st_error_cache has slots on every CPU together: the
    /// keys that find their slot held by another are counted in st_accept_errors, and every
    /// key's count over both stays exact.
    /// </summary>
    [Fact]
    public void ErrorsOfMoreListenersThanCacheSlotsAreAllCounted()
    {
        const int calls = 2;
        int listeners = (int)AcceptErrorTable.CacheSlots * Interop.Libbpf.libbpf_num_possible_cpus() + 1;
        using var pipeline = new KernelPipeline();
        var sockets = Enumerable.Range(0, listeners).Select(_ => Loopback.Listen()).ToList();
        try
        {
            foreach (var listener in sockets)
                Loopback.AcceptWouldBlock(listener, calls);
            var ports = sockets.Select(l => (ushort)l.Port()).ToHashSet();

            var counts = pipeline.Source.AcceptErrors.Read().Where(c => ports.Contains(c.Key.ListenPort)).ToList();
            Assert.Equal(listeners, counts.Count);
            Assert.All(counts, c => Assert.Equal((ulong)calls, c.Count));
            Assert.All(counts, c => Assert.Equal(11, (int)c.Key.Errno));
            Assert.Contains(HashKeys(pipeline.Source.MapFd("st_accept_errors")), ports.Contains);
        }
        finally
        {
            sockets.ForEach(l => l.Dispose());
        }
    }

    private static unsafe List<ushort> HashKeys(int mapFd)
    {
        var ports = new List<ushort>();
        var values = new ulong[Interop.Libbpf.libbpf_num_possible_cpus()];
        fixed (ulong* v = values)
            BpfMapWalk.Each<AcceptErrorKey>(mapFd, "st_accept_errors", v, key => ports.Add(key.ListenPort));
        return ports;
    }

    [Fact]
    public async Task ABlockingAcceptIsTimedFromEntryToReturn()
    {
        var block = TimeSpan.FromMilliseconds(1500);
        using var pipeline = new KernelPipeline();
        using var listener = Loopback.Listen();
        int port = listener.Port();

        int tid = 0;
        var accepting = Task.Run(() =>
        {
            tid = gettid();
            using var s = listener.Accept();
        });
        // Time the block from the moment the call is inside accept4, not from Task.Run.
        Eventually.True(() => tid != 0 && AcceptSleepers.OfThisProcess().Contains(tid), "the accepting thread blocked in accept4");
        await Task.Delay(block);
        using (Loopback.Connect(port))
            await accepting;

        string p = Text(port);
        var scrape = pipeline.SettleScrape("socktrace_accept_duration_seconds_count", port, 1);
        Assert.Equal(1, scrape.Sum("socktrace_accept_duration_seconds_count", ("port", p)));
        Assert.InRange(scrape.Sum("socktrace_accept_duration_seconds_sum", ("port", p)), block.TotalSeconds, block.TotalSeconds + 5);
        // Accepted the moment it was established: the queue wait is only the gap from the
        // handshake to the blocked thread's wakeup, nothing of the time it blocked before.
        Assert.Equal(1, scrape.Sum("socktrace_accept_queue_wait_seconds_count", ("port", p)));
        Assert.InRange(scrape.Sum("socktrace_accept_queue_wait_seconds_sum", ("port", p)), 0, block.TotalSeconds / 3);
    }

    /// <summary>Every blocked accept holds a kretprobe instance in kprobe mode; with too few
    /// (the kernel default is max(10, 2 * CPUs)) returns would be lost.</summary>
    [Fact]
    public void SixtyFourThreadsBlockedInAcceptAreAllCounted()
    {
        const int n = 64;
        using var pipeline = new KernelPipeline();
        using var listener = Loopback.Listen(backlog: n);
        int port = listener.Port();
        var accepted = new Socket?[n];
        var threads = Enumerable.Range(0, n).Select(i => new Thread(() => accepted[i] = listener.Accept()) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        Eventually.True(() => AcceptSleepers.OfThisProcess().Count >= n, $"{n} threads blocked in accept4");

        var clients = Enumerable.Range(0, n).Select(_ => Loopback.Connect(port)).ToList();
        threads.ForEach(t => t.Join());

        var scrape = pipeline.SettleScrape("socktrace_accepts_total", port, n);
        Assert.Equal(n, scrape.Sum("socktrace_accepts_total", ("port", Text(port))));
        Assert.Equal(n, scrape.Sum("socktrace_accept_duration_seconds_count", ("port", Text(port))));
        // The kretprobes on the sleeping functions come from kprobe_events, whose
        // kprobe_profile counts their misses: none here.
        if (KernelPipeline.ExpectedMode(SockTrace.Agent.Bpf.Hooks.Accept) == "kprobe")
        {
            var misses = pipeline.Scrape().Where(s => s.Name == "socktrace_kretprobe_misses_total").ToDictionary(s => s.Labels["program"], s => s.Value);
            Assert.Equal(0, Assert.Contains("st_krp_sys_accept4", (IDictionary<string, double>)misses));
        }
        foreach (var s in clients.Concat(accepted))
            s?.Dispose();
    }

    private static string Text(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int gettid();

    [Fact]
    public void IPv6LoopbackPeersAreLoopback()
    {
        using var pipeline = new KernelPipeline();
        using var listener = Loopback.Listen(address: System.Net.IPAddress.IPv6Loopback);
        int port = listener.Port();

        using (Loopback.Connect(port, System.Net.IPAddress.IPv6Loopback))
        using (listener.Accept()) { }

        pipeline.AssertOneAccept(port, "loopback");
    }
}
