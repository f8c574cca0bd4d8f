using OpenTelemetry.Metrics;

namespace SockTrace.Agent.Metrics;

public static class SockTraceMeter
{
    /// <summary>Has the SDK export the SockTrace meter, less the instruments whose families
    /// the agent writes itself (<see cref="AcceptMetrics.ExportedHere"/>, <see cref="FdRaceMetrics.Instrument"/>).</summary>
    public static MeterProviderBuilder AddSockTraceMeter(this MeterProviderBuilder builder)
    {
        builder.AddMeter(Name);
        foreach (string name in AcceptMetrics.ExportedHere.Append(FdRaceMetrics.Instrument))
            builder.AddView(name, MetricStreamConfiguration.Drop);
        return builder;
    }

    /// <summary>The meter every SockTrace instrument belongs to.</summary>
    public const string Name = "SockTrace";

    /// <summary>
    /// Histogram boundaries in seconds, 1 us to 60 s: an accept on a hot listener takes
    /// microseconds, while a blocking accept or a backed-up queue waits for seconds.
    /// </summary>
    public static readonly IReadOnlyList<double> LatencyBuckets =
    [
        0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05,
        0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1, 2.5, 5, 10, 30, 60,
    ];
}
