using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>Counts fd races by kind and process, keeps the recent ones, and logs them (rate-limited).</summary>
public sealed class FdRaceMetrics : IFdRaceHandler, IDisposable
{
    /// <summary>The instrument the SDK must not export: <see cref="WriteTo"/> writes its family.</summary>
    public const string Instrument = "socktrace.fd_races";

    private readonly PodCounter _races;
    // Labels in name order, as the exporter writes the families it serializes.
    private readonly Dictionary<(uint Kind, ulong Comm0, ulong Comm1), KeyValuePair<string, object?>[]> _labels = [];
    private readonly RaceLog _log;
    private readonly SeriesLimit _limit;
    // Past the cap, races of one kind share this set: kind is bounded, comm is not.
    private readonly Dictionary<uint, KeyValuePair<string, object?>[]> _folded = [];

    public FdRaceMetrics(IMeterFactory meterFactory, RecentRaces recent, ILogger<FdRaceMetrics> logger, SeriesLimit? limit = null, Attribution.PodAttribution? attribution = null, RaceLog? log = null)
    {
        Recent = recent;
        _log = log ?? new RaceLog(logger);
        _limit = limit ?? new SeriesLimit(meterFactory);
        _races = new PodCounter(meterFactory.Create(SockTraceMeter.Name), Instrument, "socktrace_fd_races_total",
            "fd races: dup2_busy (dup2/dup3 onto an fd accept reserved: EBUSY), double_close (close() failing with EBADF just after another thread of the process closed the same fd), install_overwrite (fd_install onto an occupied slot: 0 on a correct kernel).", attribution);
    }

    public RecentRaces Recent { get; }

    public void OnFdRace(in FdRaceRecord r)
    {
        ReadOnlySpan<byte> comm = r.Comm;
        // Kinds no kernel sends share the label "unknown", so they share one key too.
        uint kind = RaceKinds.Label(r.Kind) == "unknown" ? 0 : r.Kind;
        var key = (kind, System.Runtime.InteropServices.MemoryMarshal.Read<ulong>(comm), System.Runtime.InteropServices.MemoryMarshal.Read<ulong>(comm[8..]));
        bool folded = false;
        if (!_labels.TryGetValue(key, out var tags))
        {
            if (_labels.Count < _limit.MaxPerMetric)
            {
                _labels[key] = tags = [new("comm", CommLabel.Text(comm)), new("kind", RaceKinds.Label(kind))];
            }
            else
            {
                folded = true;
                if (!_folded.TryGetValue(kind, out tags))
                    _folded[kind] = tags = [new("comm", SeriesLimit.Other), new("kind", RaceKinds.Label(kind))];
            }
        }
        _races.Add(tags, r.CgroupId);
        if (folded)
            _limit.Folded(SeriesLimit.FdRaces);

        // Races are rare and each one is worth a record a person can act on.
        bool doubleClose = r.Kind == RaceKinds.DoubleClose;
        // /races names the real process even when the metric folded it into "other".
        string commText = folded ? CommLabel.Text(comm) : (string)tags[0].Value!;
        var race = new FdRace(MonotonicClock.ToUtc(r.TimestampNs), (string)tags[1].Value!, r.Pid, r.Tid, commText, r.Fd,
            doubleClose ? r.OtherTid : null, doubleClose ? r.GapNs / 1e9 : null);
        Recent.Add(race);
        _log.Report(race);
    }

    /// <summary>Writes socktrace_fd_races_total.</summary>
    internal void WriteTo(ExpositionWriter writer) => _races.WriteTo(writer);

    public void Dispose() => _log.Dispose();
}
