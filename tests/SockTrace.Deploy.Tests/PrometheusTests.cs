using System.Diagnostics;
using System.Globalization;
using SockTrace.Deploy.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Deploy.Tests;

/// <summary>
/// The whole chain as deployed: the agent with the DaemonSet's capabilities, scraped by a real
/// Prometheus with the node label the ServiceMonitor adds, and every dashboard query run there.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class PrometheusTests(ITestOutputHelper output)
{
    /// <summary>Metrics other parts of the agent will export; until they appear in /metrics, their
    /// queries need only be valid PromQL. Empty: every metric the dashboard shows is exported.</summary>
    private static readonly string[] ComingSoon = [];

    [Fact]
    public void ExpositionLintsCleanAndEveryDashboardQueryHasData()
    {
        Host.RequireRoot("the agent loads BPF programs");
        Host.EnsureTracefs();
        string promtool = PrometheusServer.Install("promtool");
        var clock = Stopwatch.StartNew();
        var container = Manifests.DaemonSet.Spec.Template.Spec.Containers.Single();
        using var agent = AgentProcess.Start([.. container.SecurityContext.Capabilities.Add], noNewPrivileges: true);
        agent.WaitHealthy();
        string node = Environment.MachineName;
        using var prometheus = new PrometheusServer(agent.Port, node);
        output.WriteLine($"agent and prometheus up after {clock.Elapsed.TotalSeconds:0.0} s");

        // Spread over several scrapes, each round seen by Prometheus before the next, so every
        // counter has samples before and after it moved and rate() and increase() see it move
        // however late a loaded machine scrapes (a counter first seen at its final value has
        // increase() 0).
        using var workload = new Workload();
        string fdrace = Workload.BuildFdRace();
        string port = workload.Port.ToString(CultureInfo.InvariantCulture);
        int accepts = 0, errors = 0, races = 0;
        for (int round = 0; round < 4; round++)
        {
            workload.Accept(5, queued: TimeSpan.FromMilliseconds(2));
            workload.AcceptWouldBlock(2);
            Workload.Dup2OntoReservedFd(fdrace, 2);
            accepts += 5;
            errors += 2;
            races += 2;
            Host.WaitUntil(() => Value(prometheus, $"sum(socktrace_accepts_total{{port=\"{port}\"}})") == accepts
                    && Value(prometheus, $"sum(socktrace_fd_races_total{{kind=\"dup2_busy\",comm=\"{Workload.FdRaceComm}\"}})") == races,
                $"prometheus to see {accepts} accepts on port {port} and {races} dup2_busy races", TimeSpan.FromSeconds(20));
        }
        Assert.Equal(1, Value(prometheus, "count(up)"));
        // A few more scrapes with the final values, so every rate() window holds two samples.
        Thread.Sleep(3000);
        output.WriteLine($"workload: {accepts} accepts, {errors} EAGAIN, {races} dup2_busy races on port {port}; scraped by {clock.Elapsed.TotalSeconds:0.0} s");

        string metrics = agent.Scrape();
        var (lintCode, lint) = Host.Run(promtool, ["check", "metrics"], stdin: metrics);
        output.WriteLine($"promtool check metrics: exit {lintCode}, output '{lint.Trim()}'");
        Assert.True(lintCode == 0 && lint.Trim().Length == 0, $"promtool check metrics ({lintCode}):\n{lint}");

        var withData = new List<string>();
        var pending = new List<string>();
        var failures = new List<string>();
        foreach (var query in Dashboard.Queries())
        {
            string expr = Dashboard.Substitute(query.Expr, node, workload.Port);
            var answer = prometheus.Query(expr);
            if ((string?)answer["status"] != "success")
            {
                failures.Add($"{query.Where}: {answer["error"]}\n  {expr}");
                continue;
            }
            bool hasData = PrometheusServer.Result(answer).Count > 0;
            var absent = Dashboard.Metrics(expr).Where(m => ComingSoon.Any(m.StartsWith) && !Exported(metrics, m)).ToList();
            if (hasData)
                withData.Add(query.Where);
            else if (absent.Count > 0)
                pending.Add($"{query.Where} ({string.Join(", ", absent)} not exported yet)");
            else
                failures.Add($"{query.Where}: no data\n  {expr}");
        }
        output.WriteLine($"{withData.Count} dashboard queries returned data; {pending.Count} valid but waiting for metrics not exported yet:");
        pending.ForEach(p => output.WriteLine("  " + p));
        output.WriteLine($"done after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.NotEmpty(withData);

        CheckAlerts(promtool, prometheus, metrics);
    }

    /// <summary>
    /// deploy/prometheusrule.yaml with promtool: `check rules` on its groups, then each alert's
    /// expression by `query instant` against this Prometheus, which holds the live agent's
    /// exposition. What fires is what this run caused: the workload's dup2 races, and the
    /// optional hooks this kernel cannot attach; nothing was lost, so the loss alerts stay
    /// quiet while the counters they read are there.
    /// </summary>
    private void CheckAlerts(string promtool, PrometheusServer prometheus, string metrics)
    {
        var groups = Manifests.PrometheusRule.Spec.Groups;
        string rules = Path.Combine(Path.GetTempPath(), $"socktrace-rules-{Environment.ProcessId}.yaml");
        File.WriteAllText(rules, new YamlDotNet.Serialization.SerializerBuilder()
            .WithNamingConvention(YamlDotNet.Serialization.NamingConventions.CamelCaseNamingConvention.Instance)
            .ConfigureDefaultValuesHandling(YamlDotNet.Serialization.DefaultValuesHandling.OmitNull)
            .Build().Serialize(new { groups }));
        try
        {
            var (code, check) = Host.Run(promtool, ["check", "rules", rules]);
            output.WriteLine($"promtool check rules: exit {code}: {check.Trim()}");
            Assert.True(code == 0, $"promtool check rules ({code}):\n{check}");
            Assert.Contains("SUCCESS: 5 rules found", check);
        }
        finally
        {
            File.Delete(rules);
        }

        string[] optionalHooks = ["fd_install", "listen_overflow"];
        var unattached = optionalHooks.Where(h => !metrics.Contains($"hook=\"{h}\"", StringComparison.Ordinal)).Order().ToList();
        foreach (var alert in groups.SelectMany(g => g.Rules))
        {
            var firing = Query(promtool, prometheus, alert.Expr);
            output.WriteLine($"{alert.Alert}: {firing.Count} series: {string.Join("; ", firing.Select(s => s["metric"]!.ToJsonString()))}");
            Assert.All(firing, s => Assert.Equal(Environment.MachineName, (string?)s["metric"]!["node"]));
            switch (alert.Alert)
            {
                case "SockTraceFdRaces":
                    Assert.Contains(firing, s => (string?)s["metric"]!["kind"] == "dup2_busy" && (string?)s["metric"]!["comm"] == Workload.FdRaceComm);
                    break;
                case "SockTraceHookNotAttached":
                    Assert.Equal(unattached, firing.Select(s => (string)s["metric"]!["hook"]!).Order());
                    break;
                default:
                    Assert.Empty(firing);
                    // Quiet because nothing happened, not because the series are missing.
                    string inner = alert.Expr[..alert.Expr.LastIndexOf(" > 0", StringComparison.Ordinal)];
                    bool exported = !alert.Alert.Contains("ListenOverflows", StringComparison.Ordinal) || !unattached.Contains("listen_overflow");
                    Assert.Equal(exported, Query(promtool, prometheus, inner).Count > 0);
                    break;
            }
        }
    }

    private static List<System.Text.Json.Nodes.JsonNode> Query(string promtool, PrometheusServer prometheus, string expr)
    {
        var (code, answer) = Host.Run(promtool, ["query", "instant", "-o", "json", prometheus.Url, expr]);
        Assert.True(code == 0, $"promtool query instant ({code}) {expr}:\n{answer}");
        return [.. System.Text.Json.Nodes.JsonNode.Parse(answer)!.AsArray().Select(n => n!)];
    }

    private static double Value(PrometheusServer prometheus, string promql)
    {
        var result = PrometheusServer.Result(prometheus.Query(promql));
        return result.Count == 0 ? -1 : double.Parse((string)result[0]!["value"]![1]!, CultureInfo.InvariantCulture);
    }

    private static bool Exported(string exposition, string metric) =>
        exposition.Split('\n').Any(l => l.StartsWith(metric + "{", StringComparison.Ordinal) || l.StartsWith(metric + " ", StringComparison.Ordinal));
}
