using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Agent.Metrics;
using SockTrace.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// More records than the reader takes: the kernel counts every record it tries to write and
/// every one it loses, and nothing else goes missing.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed partial class OverloadTests(ITestOutputHelper output)
{
    /// <summary>Holds the reader inside its first record until released, so the ring
    /// certainly fills: a fast reader would otherwise keep up with a small burst.</summary>
    private sealed class GatedSink(IRecordSink inner) : IRecordSink
    {
        public ManualResetEventSlim Open { get; } = new(false);

        public void OnRecord(ReadOnlySpan<byte> record)
        {
            Open.Wait();
            inner.OnRecord(record);
        }
    }

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    private static partial int Accept4(nint fd, nint addr, nint addrlen, int flags);

    /// <summary>
    /// A reader held inside its first record and a one-page ring: connections overflow it, and
    /// the kernel's counts still add up (produced = delivered + dropped), while failed accepts,
    /// which are counted in the kernel and never written to the ring, are all counted.
    /// </summary>
    [Fact]
    public void ProducedEqualsDecodedPlusDroppedAndFailedAcceptsAreCountedExactly()
    {
        Requires.Bpf();
        const int eagainBurst = 50_000, connections = 2_000;
        using var metrics = new MetricsHost();
        var pipeline = new RecordPipeline(metrics.Accepts, metrics.Races);
        var gate = new GatedSink(pipeline.Decoder);
        var kernel = KernelFeatures.Probe();
        // The smallest ring the kernel allows (one page, about 20 accept records). The gate,
        // not the poll interval, keeps the reader behind; a short interval drains other
        // processes' records soon after, so the moment the counts add up comes quickly.
        var options = new KernelSourceOptions(4096, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(1));
        using var source = new KernelEventSource(gate, AttachPlan.For(kernel, KernelPipeline.AttachModeUnderTest), kernel, options, NullLogger.Instance);
        pipeline.Observe(source, new AgentMetrics(metrics.Meters), new ListenMetrics(metrics.Meters));
        source.Start();

        using var listener = Loopback.Listen();
        string port = listener.Port().ToString(CultureInfo.InvariantCulture);
        int eagain = 0;
        try
        {
            listener.Blocking = false;
            // Raw accept4(): a managed Accept() would throw per call and slow the burst.
            nint fd = listener.SafeHandle.DangerousGetHandle();
            for (int i = 0; i < eagainBurst; i++)
            {
                if (Accept4(fd, 0, 0, 0) == -1 && Marshal.GetLastPInvokeError() == 11)
                    eagain++;
            }
            listener.Blocking = true;
            for (int i = 0; i < connections; i++)
            {
                using var client = Loopback.Connect(listener.Port());
                using var accepted = listener.Accept();
            }
        }
        finally
        {
            gate.Open.Set();
        }
        Assert.Equal(eagainBurst, eagain);

        // Every other process's accepts are traced too, so the ring is drained when, read
        // in the order a scrape reads them (delivered, dropped, produced: AgentMetrics), the
        // three add up: a record in flight can only make produced larger, never smaller.
        (long Delivered, long Dropped, long Produced) scrape = default;
        long mine = 0;
        Eventually.True(() =>
        {
            var samples = metrics.Scrape();
            scrape = ((long)samples.Sum("socktrace_events_total"), (long)samples.Sum("socktrace_ringbuf_drops_total"), (long)samples.Sum("socktrace_records_produced_total"));
            mine = (long)samples.Sum("socktrace_accepts_total", ("port", port));
            Assert.True(scrape.Produced >= scrape.Delivered + scrape.Dropped, $"produced {scrape.Produced} < delivered {scrape.Delivered} + dropped {scrape.Dropped}");
            return scrape.Produced == scrape.Delivered + scrape.Dropped;
        }, "produced = delivered + dropped");

        Assert.True(scrape.Dropped > 0, "a one-page ring held by its reader dropped nothing");
        // Each connection's ESTABLISHED record and its accept record.
        Assert.True(scrape.Produced >= 2 * connections, $"produced {scrape.Produced} < {2 * connections} records of {connections} connections");
        // Most of this test's own accept records were among those lost.
        Assert.InRange(mine, 0, connections / 2);
        Assert.Equal(0, pipeline.Decoder.Invalid);
        // No ring buffer stood between the failed calls and their count.
        Assert.Equal(eagainBurst, metrics.Scrape().Sum("socktrace_accept_errors_total", ("port", port), ("errno", "eagain")));

        // The exported drop count is the kernel's per-CPU counter, read again now.
        Eventually.True(() => (ulong)metrics.Scrape().Sum("socktrace_ringbuf_drops_total") == source.RecordsDropped,
            "socktrace_ringbuf_drops_total equal to the kernel counter");
        output.WriteLine($"overload: {eagainBurst} failed accept4() calls counted; {connections} connections: produced {scrape.Produced}, delivered {scrape.Delivered}, dropped {scrape.Dropped}; this port's accepts decoded {mine}");
    }
}
