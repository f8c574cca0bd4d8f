using System.Globalization;

namespace SockTrace.Reference.Tests.Support;

/// <summary>Per series (instrument and labels): how many measurements or how much counted, and their sum.</summary>
internal sealed class MetricSummary
{
    public readonly record struct Series(long Count, double Sum);

    public SortedDictionary<string, Series> All { get; } = new(StringComparer.Ordinal);

    public void Add(string instrument, IReadOnlyDictionary<string, object?> tags, IReadOnlyDictionary<string, string> portNames, long count, double sum)
    {
        var labels = tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t =>
        {
            string value = Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "";
            if (t.Key == "port")
                value = portNames.TryGetValue(value, out string? name) ? name : "unknown:" + value;
            return $"{t.Key}={value}";
        });
        string key = $"{instrument}{{{string.Join(",", labels)}}}";
        var old = All.GetValueOrDefault(key);
        All[key] = new Series(old.Count + count, old.Sum + sum);
    }

    /// <summary>
    /// Counts must be equal; sums of seconds may differ by <paramref name="perMeasurement"/>
    /// per measurement plus 10 %: the model's syscalls take no time and its waits are exact,
    /// the kernel's are neither.
    /// </summary>
    public static List<string> Compare(MetricSummary model, MetricSummary kernel, TimeSpan perMeasurement)
    {
        var mismatches = new List<string>();
        foreach (string key in model.All.Keys.Union(kernel.All.Keys).Order(StringComparer.Ordinal))
        {
            bool inModel = model.All.TryGetValue(key, out var m);
            bool inKernel = kernel.All.TryGetValue(key, out var k);
            if (!inModel || !inKernel)
            {
                mismatches.Add($"{key}: only in the {(inModel ? "model" : "kernel")} ({(inModel ? m : k).Count})");
                continue;
            }
            if (m.Count != k.Count)
                mismatches.Add($"{key}: model counts {m.Count}, kernel {k.Count}");
            double tolerance = perMeasurement.TotalSeconds * m.Count + 0.1 * Math.Max(m.Sum, k.Sum);
            if (Math.Abs(m.Sum - k.Sum) > tolerance)
                mismatches.Add($"{key}: model sums {m.Sum:F6} s, kernel {k.Sum:F6} s (tolerance {tolerance:F6} s)");
        }
        return mismatches;
    }
}
