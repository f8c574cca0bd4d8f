using System.Globalization;
using System.Text.RegularExpressions;

namespace SockTrace.Tests.Support;

/// <summary>One sample of the Prometheus text exposition format.</summary>
internal sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

internal static partial class PrometheusText
{
    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})?\s+(?<value>\S+)""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""(?<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?<v>(?:[^"\\]|\\.)*)",?""")]
    private static partial Regex Label();

    public static List<Sample> Parse(string text)
    {
        var samples = new List<Sample>();
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
                continue;
            var m = SampleLine().Match(line);
            if (!m.Success)
                throw new FormatException("not a sample line: " + line);
            var labels = Label().Matches(m.Groups["labels"].Value).ToDictionary(l => l.Groups["k"].Value, l => l.Groups["v"].Value);
            samples.Add(new Sample(m.Groups["name"].Value, labels, double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture)));
        }
        return samples;
    }

    /// <summary>Sum of the samples of <paramref name="name"/> whose labels include all of <paramref name="match"/>.</summary>
    public static double Sum(this IEnumerable<Sample> samples, string name, params (string Key, string Value)[] match) =>
        samples.Where(s => s.Name == name && match.All(kv => s.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value)).Sum(s => s.Value);
}
