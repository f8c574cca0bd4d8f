using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>Counts fd races by kind and process, keeps the recent ones, and logs each.</summary>
public sealed partial class FdRaceMetrics : IFdRaceHandler
{
    private readonly Counter<long> _races;
    private readonly Dictionary<(uint Kind, ulong Comm0, ulong Comm1), KeyValuePair<string, object?>[]> _labels = [];
    private readonly ILogger _logger;

    public FdRaceMetrics(IMeterFactory meterFactory, RecentRaces recent, ILogger<FdRaceMetrics> logger)
    {
        Recent = recent;
        _logger = logger;
        _races = meterFactory.Create(SockTraceMeter.Name).CreateCounter<long>("socktrace.fd_races",
            description: "fd races: dup2_busy (dup2/dup3 onto an fd accept reserved: EBUSY), install_overwrite (fd_install onto an occupied slot), reuse_after_close (an fd closed by one thread and returned by accept to another soon after).");
    }

    public RecentRaces Recent { get; }

    public void OnFdRace(in FdRaceRecord r)
    {
        ReadOnlySpan<byte> comm = r.Comm;
        var key = (r.Kind, System.Runtime.InteropServices.MemoryMarshal.Read<ulong>(comm), System.Runtime.InteropServices.MemoryMarshal.Read<ulong>(comm[8..]));
        if (!_labels.TryGetValue(key, out var tags))
            _labels[key] = tags = [new("kind", RaceKinds.Label(r.Kind)), new("comm", AcceptLabels.CommText(comm))];
        _races.Add(1, tags);

        // Races are rare and each one is worth a record a person can act on.
        bool reuse = r.Kind == RaceKinds.ReuseAfterClose;
        var race = new FdRace(MonotonicClock.ToUtc(r.TimestampNs), (string)tags[0].Value!, r.Pid, r.Tid, (string)tags[1].Value!, r.Fd,
            reuse ? r.OtherTid : null, reuse ? r.GapNs / 1e9 : null);
        Recent.Add(race);
        LogRace(race.Kind, race.Comm, race.Pid, race.Tid, race.Fd, race.ClosedByTid);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "fd race {Kind}: process {Comm} pid {Pid} tid {Tid} fd {Fd} (closed by tid {ClosedByTid})")]
    private partial void LogRace(string kind, string comm, uint pid, uint tid, int fd, uint? closedByTid);
}
