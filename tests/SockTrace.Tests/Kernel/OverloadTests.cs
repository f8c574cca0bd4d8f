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

    [Fact]
    public void ProducedEqualsDecodedPlusDroppedAndDropsAreExported()
    {
        Requires.Bpf();
        const int burst = 50_000;
        using var metrics = new MetricsHost();
        var decoder = new RecordDecoder(metrics.Accepts, metrics.Races);
        var agent = new AgentMetrics(metrics.Meters);
        var gate = new GatedSink(decoder);
        var kernel = KernelFeatures.Probe();
        // The smallest ring the kernel allows (one page, about 39 accept records). The gate,
        // not the poll interval, keeps the reader behind; a short interval drains other
        // processes' records soon after, so the moment the counts add up comes quickly.
        var options = new KernelSourceOptions(4096, TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(1));
        using var source = new KernelEventSource(gate, AttachPlan.For(kernel, KernelPipeline.AttachModeUnderTest), kernel, options, NullLogger.Instance);
        agent.Observe(source, decoder);
        source.Start();

        using var listener = Loopback.Listen();
        listener.Blocking = false;
        string port = listener.Port().ToString(CultureInfo.InvariantCulture);
        int eagain = 0;
        try
        {
            // Raw accept4(): a managed Accept() would throw per call and slow the burst to
            // a rate the reader could keep up with were it not held.
            nint fd = listener.SafeHandle.DangerousGetHandle();
            for (int i = 0; i < burst; i++)
            {
                if (Accept4(fd, 0, 0, 0) == -1 && Marshal.GetLastPInvokeError() == 11)
                    eagain++;
            }
        }
        finally
        {
            gate.Open.Set();
        }
        Assert.Equal(burst, eagain);

        // Every other process's accepts are traced too, so the ring is drained when, read
        // in the order a scrape reads them (delivered, dropped, produced: AgentMetrics), the
        // three add up: a record in flight can only make produced larger, never smaller.
        (long Delivered, long Dropped, long Produced) scrape = default;
        long mine = 0;
        Eventually.True(() =>
        {
            var samples = metrics.Scrape();
            scrape = ((long)samples.Sum("socktrace_events_total"), (long)samples.Sum("socktrace_ringbuf_drops_total"), (long)samples.Sum("socktrace_records_produced_total"));
            mine = (long)samples.Sum("socktrace_accept_errors_total", ("port", port));
            Assert.True(scrape.Produced >= scrape.Delivered + scrape.Dropped, $"produced {scrape.Produced} < delivered {scrape.Delivered} + dropped {scrape.Dropped}");
            return scrape.Produced == scrape.Delivered + scrape.Dropped;
        }, "produced = delivered + dropped");

        Assert.True(scrape.Dropped > 0, "a one-page ring held by its reader dropped nothing");
        Assert.True(scrape.Produced >= burst, $"produced {scrape.Produced} < {burst} accept4() calls");
        Assert.Equal(decoder.Invalid + Enumerable.Range(1, RecordTypes.Count - 1).Sum(t => decoder.Decoded((uint)t)), scrape.Delivered);
        // Most of this test's own records were among those lost (how many of them got in
        // depends on what else the host was accepting at the time).
        Assert.InRange(mine, 0, burst / 2);
        Assert.Equal(0, decoder.Invalid);

        // The exported drop count is the kernel's per-CPU counter, read again now.
        Eventually.True(() => (ulong)metrics.Scrape().Sum("socktrace_ringbuf_drops_total") == source.RecordsDropped,
            "socktrace_ringbuf_drops_total equal to the kernel counter");
        output.WriteLine($"overload: {burst} accept4() calls; produced {scrape.Produced}, delivered {scrape.Delivered}, dropped {scrape.Dropped}; this port's errors decoded {mine}");
    }
}
