using System.Diagnostics;
using SockTrace.Deploy.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Deploy.Tests;

/// <summary>
/// The built agent with exactly the capabilities the DaemonSet grants (read from the
/// manifest, so this proves the manifest): it observes, and without any one of them it
/// refuses to start and names what is missing.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class LeastPrivilegeTests(ITestOutputHelper output)
{
    private static IReadOnlyList<string> Granted =>
        [.. Manifests.DaemonSet.Spec.Template.Spec.Containers.Single().SecurityContext.Capabilities.Add];

    private static bool NoNewPrivileges =>
        Manifests.DaemonSet.Spec.Template.Spec.Containers.Single().SecurityContext.AllowPrivilegeEscalation == false;

    public static TheoryData<string> EachCapability => [.. Granted];

    [Fact]
    public void CountsEveryAcceptWithOnlyTheGrantedCapabilities()
    {
        const int n = 12;
        Host.RequireRoot("setpriv grants capabilities from root's own");
        Host.EnsureTracefs();
        var clock = Stopwatch.StartNew();
        using var agent = AgentProcess.Start(Granted, NoNewPrivileges);
        agent.WaitHealthy();
        output.WriteLine($"agent healthy with {string.Join(", ", Granted)} after {clock.Elapsed.TotalSeconds:0.0} s");

        using var workload = new Workload();
        workload.Accept(n);
        string port = $"port=\"{workload.Port}\"";

        double seen = 0;
        Host.WaitUntil(() => (seen = AgentProcess.Sum(agent.Scrape(), "socktrace_accepts_total", port)) >= n,
            $"{n} accepts on port {workload.Port} in /metrics", TimeSpan.FromSeconds(15));
        // Any surplus would arrive within a few poll intervals.
        Thread.Sleep(500);
        string metrics = agent.Scrape();
        seen = AgentProcess.Sum(metrics, "socktrace_accepts_total", port);
        output.WriteLine($"socktrace_accepts_total{{{port}}} = {seen} (expected {n}) after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(n, seen);
        Assert.Equal(n, AgentProcess.Sum(metrics, "socktrace_accepts_total", port, "peer=\"loopback\""));

        // Attached, it holds nothing in any thread; the bounding set stays what the runtime
        // gave (dropping from it needs CAP_SETPCAP, which the pod does not have), and
        // no_new_privs keeps an execve() from using it.
        foreach (string task in Directory.GetDirectories($"/proc/{agent.Pid}/task"))
        {
            string status = File.ReadAllText(Path.Combine(task, "status"));
            Assert.Contains("CapEff:\t0000000000000000", status);
            Assert.Contains("CapPrm:\t0000000000000000", status);
            Assert.Contains("CapInh:\t0000000000000000", status);
            Assert.Contains("NoNewPrivs:\t1", status);
        }
    }

    /// <summary>The init container as the DaemonSet runs it: its args, its capabilities,
    /// and the agent's settings but attribution (no API server here). Exit 0: it would let the
    /// agent start on this node.</summary>
    [Fact]
    public void InitContainersCheckPassesWithItsCapabilities()
    {
        Host.RequireRoot("setpriv grants capabilities from root's own");
        Host.EnsureTracefs();
        var init = Assert.Single(Manifests.DaemonSet.Spec.Template.Spec.InitContainers);
        using var check = AgentProcess.Start([.. init.SecurityContext.Capabilities.Add], init.SecurityContext.AllowPrivilegeEscalation == false, init.Args);
        int code = check.WaitForExit(TimeSpan.FromSeconds(60));
        output.WriteLine($"{string.Join(' ', init.Args)}: exit {code}\n{check.Output}");
        Assert.Equal(0, code);
        Assert.Contains("accept", check.Output);
    }

    [Theory]
    [MemberData(nameof(EachCapability))]
    public void RefusesToStartWithoutEachCapability(string missing)
    {
        Host.RequireRoot("setpriv grants capabilities from root's own");
        Host.EnsureTracefs();
        using var agent = AgentProcess.Start([.. Granted.Where(c => c != missing)], NoNewPrivileges);
        int code = agent.WaitForExit(TimeSpan.FromSeconds(30));
        output.WriteLine($"without {missing}: exit {code}\n{agent.Output}");
        // README.md's exit codes: 5 without CAP_BPF, 6 without CAP_PERFMON.
        Assert.Equal(missing switch { "BPF" => 5, "PERFMON" => 6, _ => -1 }, code);
        Assert.Contains($"CAP_{missing}", agent.Output);
    }
}
