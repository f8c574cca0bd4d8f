using System.Globalization;
using System.Text;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Writes metric families in the Prometheus text format (0.0.4) or OpenMetrics 1.0, in the
/// shape the OpenTelemetry exporter gives the rest of /metrics: each sample carries
/// otel_scope_name first, and a counter family is named without _total in OpenMetrics.
/// </summary>
internal sealed class ExpositionWriter(StringBuilder output, bool openMetrics)
{
    private static readonly string ScopeLabel = $"otel_scope_name=\"{SockTraceMeter.Name}\"";

    /// <param name="name">The family's sample name: ends in _total for a counter, in the unit for a histogram.</param>
    public void Family(string name, string type, string help, string? unit = null)
    {
        string family = openMetrics && type == "counter" && name.EndsWith("_total", StringComparison.Ordinal) ? name[..^"_total".Length] : name;
        output.Append("# TYPE ").Append(family).Append(' ').Append(type).Append('\n');
        if (openMetrics && unit is not null)
            output.Append("# UNIT ").Append(family).Append(' ').Append(unit).Append('\n');
        output.Append("# HELP ").Append(family).Append(' ').Append(help).Append('\n');
    }

    public void Sample(string name, KeyValuePair<string, object?>[] labels, long value, string? le = null)
    {
        Labels(name, labels, le);
        output.Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    public void Sample(string name, KeyValuePair<string, object?>[] labels, double value)
    {
        Labels(name, labels, null);
        output.Append(Number(value)).Append('\n');
    }

    /// <summary>Shortest round-trip form, lower-case exponent (Go's ParseFloat and OpenMetrics both read it).</summary>
    public static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : value.ToString("R", CultureInfo.InvariantCulture).Replace('E', 'e');

    private void Labels(string name, KeyValuePair<string, object?>[] labels, string? le)
    {
        output.Append(name).Append('{').Append(ScopeLabel);
        foreach (var label in labels)
            Label(label.Key, (string?)label.Value ?? "");
        if (le is not null)
            Label("le", le);
        output.Append("} ");
    }

    private void Label(string key, string value)
    {
        output.Append(',').Append(key).Append("=\"");
        // Label values come from the traced processes (comm may hold any bytes): escape what
        // both formats reserve in a quoted value.
        foreach (char c in value)
        {
            switch (c)
            {
                case '\\': output.Append(@"\\"); break;
                case '"': output.Append("\\\""); break;
                case '\n': output.Append(@"\n"); break;
                default: output.Append(c); break;
            }
        }
        output.Append('"');
    }
}
