using System.Diagnostics.Metrics;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// The most label sets a metric may have. Label values come from the traced processes
/// (ports they listen on, names they give themselves), so without a cap a host running
/// many short-lived listeners would grow the agent's memory and every scrape without
/// bound. Beyond the cap, a new label set folds into one whose port and comm are "other",
/// and each measurement folded so is counted in socktrace_series_overflow_total.
/// </summary>
public sealed class SeriesLimit
{
    public const int DefaultMaxPerMetric = 2000;
    public const string Other = "other";

    internal static readonly KeyValuePair<string, object?>[] Accepts = [new("metric", "socktrace_accepts_total")];
    internal static readonly KeyValuePair<string, object?>[] AcceptErrors = [new("metric", "socktrace_accept_errors_total")];
    internal static readonly KeyValuePair<string, object?>[] AcceptDuration = [new("metric", "socktrace_accept_duration_seconds")];
    internal static readonly KeyValuePair<string, object?>[] AcceptQueueWait = [new("metric", "socktrace_accept_queue_wait_seconds")];
    internal static readonly KeyValuePair<string, object?>[] FdRaces = [new("metric", "socktrace_fd_races_total")];
    internal static readonly KeyValuePair<string, object?>[] FdReuseGap = [new("metric", "socktrace_fd_reuse_gap_seconds")];

    private readonly Counter<long> _overflow;

    public SeriesLimit(IMeterFactory meterFactory, int maxPerMetric = DefaultMaxPerMetric)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPerMetric, 1);
        MaxPerMetric = maxPerMetric;
        _overflow = meterFactory.Create(SockTraceMeter.Name).CreateCounter<long>("socktrace.series.overflow",
            description: "Measurements recorded under port=\"other\", comm=\"other\" because their metric already had --max-series-per-metric label sets, by metric.");
        // Every metric's series exists from the start, at 0: an alert or a dashboard then
        // reads "no overflow" rather than "no data".
        foreach (var metric in new[] { Accepts, AcceptErrors, AcceptDuration, AcceptQueueWait, FdRaces, FdReuseGap })
            _overflow.Add(0, metric);
    }

    /// <summary>Label sets each metric may create before new ones fold into "other".</summary>
    public int MaxPerMetric { get; }

    internal void Folded(KeyValuePair<string, object?>[] metric) => _overflow.Add(1, metric);
}
