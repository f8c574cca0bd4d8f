using SockTrace.Agent.Events;

namespace SockTrace.Agent.Metrics;

/// <summary>One fd race, with what a user needs to find the culprit. For a double_close,
/// <see cref="ClosedByTid"/> is the thread that closed the fd first and <see cref="GapSeconds"/>
/// the time since.</summary>
public sealed record FdRace(DateTime Time, string Kind, uint Pid, uint Tid, string Comm, int Fd, uint? ClosedByTid, double? GapSeconds);

/// <summary>The most recent fd races, bounded: served at GET /races.</summary>
public sealed class RecentRaces(int capacity = RecentRaces.DefaultCapacity)
{
    public const int DefaultCapacity = 256;
    private readonly Queue<FdRace> _races = new(capacity);

    public void Add(FdRace race)
    {
        lock (_races)
        {
            if (_races.Count == capacity)
                _races.Dequeue();
            _races.Enqueue(race);
        }
    }

    /// <summary>Oldest first.</summary>
    public FdRace[] Snapshot()
    {
        lock (_races)
            return [.. _races];
    }
}
