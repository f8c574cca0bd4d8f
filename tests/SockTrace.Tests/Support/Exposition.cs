using System.Text;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Support;

/// <summary>What <see cref="AcceptMetrics"/> and <see cref="FdRaceMetrics"/> write into /metrics.</summary>
internal static class Exposition
{
    public static string Text(AcceptMetrics metrics, bool openMetrics = false) => Write(metrics.WriteTo, openMetrics);

    public static List<Sample> Of(AcceptMetrics metrics) => PrometheusText.Parse(Text(metrics));

    public static List<Sample> Of(FdRaceMetrics metrics) => PrometheusText.Parse(Write(metrics.WriteTo, openMetrics: false));

    private static string Write(Action<ExpositionWriter> write, bool openMetrics)
    {
        var text = new StringBuilder();
        write(new ExpositionWriter(text, openMetrics));
        return text.ToString();
    }
}
