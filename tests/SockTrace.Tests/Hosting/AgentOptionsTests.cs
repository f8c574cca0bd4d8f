using Microsoft.Extensions.Configuration;
using SockTrace.Agent.Hosting;

namespace SockTrace.Tests.Hosting;

public sealed class AgentOptionsTests
{
    private static AgentOptions From(params (string Key, string Value)[] settings) =>
        AgentOptions.From(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build());

    [Fact]
    public void DefaultsAreSane()
    {
        var options = From();
        Assert.Equal("auto", options.AttachMode);
        Assert.Equal(4u << 20, options.RingBufferBytes);
        Assert.Equal(TimeSpan.FromMilliseconds(100), options.PollInterval);
        Assert.True(options.RxMetrics);
        Assert.Contains(SockTrace.Agent.Bpf.Hooks.Rx, options.Hooks);
        Assert.Equal(TimeSpan.FromMinutes(10), options.SeriesIdle);
        Assert.Equal(TimeSpan.Zero, From(("SockTrace:SeriesIdleSeconds", "0")).SeriesIdle);
    }

    [Theory]
    [InlineData("on", true)]
    [InlineData("OFF", false)]
    public void RxMetricsTurnsTheRxHookOnAndOff(string value, bool on)
    {
        var options = From(("SockTrace:RxMetrics", value));
        Assert.Equal(on, options.RxMetrics);
        Assert.Equal(on, options.Hooks.Contains(SockTrace.Agent.Bpf.Hooks.Rx));
        Assert.Equal(on, options.Hooks.Contains(SockTrace.Agent.Bpf.Hooks.Delivery));
        Assert.Equal(SockTrace.Agent.Bpf.Hooks.All.Count - (on ? 0 : 2), options.Hooks.Count());
    }

    [Theory]
    [InlineData("SockTrace:RingBufferBytes", "3000", "invalid --ring-buffer-bytes (SOCKTRACE_RING_BUFFER_BYTES, SockTrace:RingBufferBytes) value '3000': must be a power of two from 4096 to 1073741824")]
    [InlineData("SockTrace:RingBufferBytes", "12288", "invalid --ring-buffer-bytes (SOCKTRACE_RING_BUFFER_BYTES, SockTrace:RingBufferBytes) value '12288': must be a power of two from 4096 to 1073741824")]
    [InlineData("SockTrace:RingBufferBytes", "4MB", "invalid --ring-buffer-bytes (SOCKTRACE_RING_BUFFER_BYTES, SockTrace:RingBufferBytes) value '4MB': must be a whole number")]
    [InlineData("SockTrace:PollIntervalMs", "0", "invalid --poll-interval-ms (SOCKTRACE_POLL_INTERVAL_MS, SockTrace:PollIntervalMs) value '0': must be from 1 to 10000")]
    [InlineData("SockTrace:PollIntervalMs", "-5", "invalid --poll-interval-ms (SOCKTRACE_POLL_INTERVAL_MS, SockTrace:PollIntervalMs) value '-5': must be a whole number")]
    [InlineData("SockTrace:SeriesIdleSeconds", "2592001", "invalid --series-idle-seconds (SOCKTRACE_SERIES_IDLE_SECONDS, SockTrace:SeriesIdleSeconds) value '2592001': must be from 0 (never) to 2592000 (30 days)")]
    [InlineData("SockTrace:SeriesIdleSeconds", "10m", "invalid --series-idle-seconds (SOCKTRACE_SERIES_IDLE_SECONDS, SockTrace:SeriesIdleSeconds) value '10m': must be a whole number")]
    [InlineData("SockTrace:RxMetrics", "yes", "invalid --rx-metrics (SOCKTRACE_RX_METRICS, SockTrace:RxMetrics) value 'yes': must be on or off")]
    [InlineData("SockTrace:AttachMode", "uprobe", "invalid --attach-mode (SOCKTRACE_ATTACH_MODE, SockTrace:AttachMode) value 'uprobe': must be one of auto, fentry, kprobe, tracepoint")]
    public void BadValuesNameTheSettingAndTheRule(string key, string value, string message)
    {
        var ex = Assert.Throws<StartupException>(() => From((key, value)));
        Assert.Equal(ExitCodes.Usage, ex.ExitCode);
        Assert.Equal(message, ex.Message);
    }
}
