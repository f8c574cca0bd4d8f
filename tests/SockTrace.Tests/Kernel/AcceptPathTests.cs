using System.Net.Sockets;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>The accept path on the real kernel, through real sockets, asserted exactly.</summary>
[Trait("Category", "Kernel")]
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

        // Read as a scrape reads them: the /metrics exposition of the accept families.
        string p = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var scrape = pipeline.SettleScrape("socktrace_accepts_total", port, n);
        Assert.Equal(n, scrape.Sum("socktrace_accepts_total", ("port", p), ("peer", "loopback"), ("comm", OwnComm)));
        Assert.Equal(n, scrape.Sum("socktrace_accepts_total", ("port", p)));

        Assert.Equal(n, scrape.Sum("socktrace_accept_queue_wait_seconds_count", ("port", p)));
        // At least W each; at most what the test measured from connect() to accept(), which
        // also holds the time the handshake's last ACK took to be processed after connect()
        // returned (tens of milliseconds under software emulation): the queue starts there.
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

        var errors = pipeline.Settle(pipeline.Errors, KernelPipeline.OnPort<long>(port), n);
        Assert.Equal(n, errors.Sum(m => m.Value));
        Assert.All(errors, m => Assert.Equal("eagain", m.Tags["errno"]));
        Assert.DoesNotContain(pipeline.Accepts.GetMeasurementSnapshot(), m => KernelPipeline.OnPort<long>(port)(m));
        Assert.Equal(n, pipeline.Settle(pipeline.Duration, KernelPipeline.OnPort<double>(port), n).Count);
        Assert.DoesNotContain(pipeline.QueueWait.GetMeasurementSnapshot(), m => KernelPipeline.OnPort<double>(port)(m));
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
        Eventually.True(() => tid != 0 && InAccept($"/proc/self/task/{tid}"), "the accepting thread blocked in accept4");
        await Task.Delay(block);
        using (Loopback.Connect(port))
            await accepting;

        var duration = Assert.Single(pipeline.Settle(pipeline.Duration, KernelPipeline.OnPort<double>(port), 1));
        Assert.InRange(duration.Value, block.TotalSeconds, block.TotalSeconds + 5);
        // Accepted the moment it was established: the queue wait is only the gap from the
        // handshake to the blocked thread's wakeup, nothing of the time it blocked before.
        var queueWait = Assert.Single(pipeline.Settle(pipeline.QueueWait, KernelPipeline.OnPort<double>(port), 1));
        Assert.InRange(queueWait.Value, 0, block.TotalSeconds / 3);
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
        Eventually.True(() => ThreadsInAccept() >= n, $"{n} threads blocked in accept4");

        var clients = Enumerable.Range(0, n).Select(_ => Loopback.Connect(port)).ToList();
        threads.ForEach(t => t.Join());

        var accepts = pipeline.Settle(pipeline.Accepts, KernelPipeline.OnPort<long>(port), n);
        Assert.Equal(n, accepts.Sum(m => m.Value));
        Assert.Equal(n, pipeline.Settle(pipeline.Duration, KernelPipeline.OnPort<double>(port), n).Count);
        // The kretprobes on the sleeping functions come from kprobe_events, whose
        // kprobe_profile counts their misses: none here.
        if (KernelPipeline.ExpectedMode(SockTrace.Agent.Bpf.Hooks.Accept) == "kprobe")
        {
            var misses = pipeline.Source.KretprobeMisses().ToDictionary(m => m.Program, m => m.Missed);
            Assert.Equal(0UL, Assert.Contains("st_krp_sys_accept4", (IDictionary<string, ulong>)misses));
            Assert.Equal(0UL, Assert.Contains("st_krp_inet_csk_accept", (IDictionary<string, ulong>)misses));
        }
        foreach (var s in clients.Concat(accepted))
            s?.Dispose();
    }

    /// <summary>Threads of this process in accept4(2).</summary>
    private static int ThreadsInAccept() => Directory.EnumerateDirectories("/proc/self/task").Count(InAccept);

    /// <summary>Whether the thread is inside accept4(2), per /proc/self/task/TID/syscall.</summary>
    private static bool InAccept(string taskDir)
    {
        int accept4 = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? 242 : 288;
        try
        {
            return File.ReadAllText(Path.Combine(taskDir, "syscall"))
                .StartsWith(accept4.ToString(System.Globalization.CultureInfo.InvariantCulture) + " ", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false; // The thread exited while we looked.
        }
    }

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

        var accept = Assert.Single(pipeline.Settle(pipeline.Accepts, KernelPipeline.OnPort<long>(port), 1));
        Assert.Equal("loopback", accept.Tags["peer"]);
    }
}
