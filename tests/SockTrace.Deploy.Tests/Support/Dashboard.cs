using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SockTrace.Deploy.Tests.Support;

/// <summary>The PromQL in dashboards/socktrace.json: every panel target, and the template
/// variables' label_values() queries rewritten as the PromQL Grafana runs for them.</summary>
internal static partial class Dashboard
{
    public static readonly string File = Repo.Path("dashboards", "socktrace.json");

    public static JsonNode Json => JsonNode.Parse(System.IO.File.ReadAllText(File))!;

    public sealed record Query(string Where, string Expr);

    public static IReadOnlyList<Query> Queries()
    {
        var json = Json;
        var queries = new List<Query>();
        foreach (var variable in json["templating"]!["list"]!.AsArray())
        {
            if ((string?)variable!["type"] != "query")
                continue;
            string definition = (string)variable["definition"]!;
            var match = LabelValues().Match(definition);
            Assert.True(match.Success, $"variable {variable["name"]}: expected label_values(metric, label), got {definition}");
            queries.Add(new($"variable ${variable["name"]}", $"group by ({match.Groups[2].Value}) ({match.Groups[1].Value})"));
        }
        foreach (var panel in Panels(json["panels"]!.AsArray()))
        {
            foreach (var target in panel["targets"]?.AsArray() ?? [])
                queries.Add(new($"panel \"{panel["title"]}\" {target!["refId"]}", (string)target["expr"]!));
        }
        return queries;
    }

    /// <summary>Every panel, rows' nested panels included.</summary>
    public static IEnumerable<JsonNode> Panels(JsonArray panels) =>
        panels.SelectMany(p => p!["panels"] is JsonArray nested ? nested.Select(n => n!).Prepend(p) : [p!]);

    /// <summary>Grafana's variables as a dashboard user would see them on this test's data.</summary>
    public static string Substitute(string expr, string node, int port)
    {
        string result = expr
            .Replace("$__rate_interval", "10s")
            .Replace("$__interval", "5s")
            .Replace("$__range", "1m")
            .Replace("$node", Regex.Escape(node).Replace(@"\", @"\\"))
            .Replace("$port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.DoesNotContain("$", result);
        return result;
    }

    /// <summary>The metric names an expression reads, histogram series folded to their family.</summary>
    public static IEnumerable<string> Metrics(string expr) =>
        MetricName().Matches(expr).Select(m => m.Value).Distinct();

    [GeneratedRegex(@"^label_values\((\w+(?:\{[^}]*\})?),\s*(\w+)\)$")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"\bsocktrace_\w+")]
    private static partial Regex MetricName();
}
