using System.Text;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Support;

/// <summary>What <see cref="AcceptMetrics"/> writes into /metrics, parsed.</summary>
internal static class Exposition
{
    public static List<Sample> Of(AcceptMetrics metrics, bool openMetrics = false)
    {
        var text = new StringBuilder();
        metrics.WriteTo(new ExpositionWriter(text, openMetrics));
        return PrometheusText.Parse(text.ToString());
    }
}
