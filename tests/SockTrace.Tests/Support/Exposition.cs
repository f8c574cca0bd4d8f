using System.Text;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Support;

/// <summary>What <see cref="AcceptMetrics"/> and <see cref="FdRaceMetrics"/> write into /metrics.</summary>
internal static class Exposition
{
    public static string Text(AcceptMetrics metrics, bool openMetrics = false)
    {
        var text = new StringBuilder();
        metrics.WriteTo(new ExpositionWriter(text, openMetrics));
        return text.ToString();
    }

    public static List<Sample> Of(AcceptMetrics metrics) => PrometheusText.Parse(Text(metrics));

    public static List<Sample> Of(FdRaceMetrics metrics)
    {
        var text = new StringBuilder();
        metrics.WriteTo(new ExpositionWriter(text, openMetrics: false));
        return PrometheusText.Parse(text.ToString());
    }
}
