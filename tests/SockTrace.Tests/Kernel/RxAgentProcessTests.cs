using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>The rx metrics on the agent's /metrics, and --rx-metrics off.</summary>
[Trait("Category", "Agent")]
public sealed class RxAgentProcessTests
{
    [Fact]
    public void ServesRxBytesByPathAndDevice()
    {
        Requires.Bpf();
        using var agent = AgentProcess.StartObserving();

        // Scrapes themselves travel over lo.
        Eventually.True(() => agent.Scrape().Sum("socktrace_rx_bytes_total", ("path", "loopback"), ("device", "lo")) > 0, "lo bytes on /metrics");
        var samples = agent.Scrape();
        Assert.True(samples.Sum("socktrace_rx_packets_total", ("path", "loopback"), ("device", "lo")) > 0);
        Assert.Equal(1, samples.Sum("socktrace_probe_info", ("hook", "rx"), ("mode", KernelPipeline.ExpectedMode(Hooks.Rx))));
    }

    [Fact]
    public void RxMetricsOffLoadsNoRxProgram()
    {
        Requires.Bpf();
        using var agent = AgentProcess.StartObserving("--rx-metrics", "off");

        agent.Scrape();
        string text = agent.ScrapeText();
        Assert.DoesNotContain("socktrace_rx_", text);
        Assert.DoesNotContain("hook=\"rx\"", text);
        Assert.Contains("hook=\"accept\"", text);
        var names = ProgramNames(Bpftool.ProgramsOf(agent.Pid));
        Assert.Contains(names, n => n.Contains("accept", StringComparison.Ordinal));
        Assert.DoesNotContain(names, n => n.Contains("netif", StringComparison.Ordinal));
    }

    /// <summary>Kernel program names, cut to 15 bytes: st_tp_btf_netif, st_fe_netif_rec.</summary>
    private static List<string> ProgramNames(HashSet<int> ids)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("bpftool", "prog show --json") { RedirectStandardOutput = true })!;
        string json = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        return [.. doc.RootElement.EnumerateArray()
            .Where(e => ids.Contains(e.GetProperty("id").GetInt32()) && e.TryGetProperty("name", out _))
            .Select(e => e.GetProperty("name").GetString()!)];
    }
}
