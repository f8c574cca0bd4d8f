using Microsoft.Extensions.Logging;

namespace SockTrace.Agent.Metrics;

/// <summary>
/// Logs fd races at Warning, rate-limited per (kind, process): the first race of a key in
/// full, then at most one summary a minute of the ones suppressed since. A process that
/// races in a loop costs one log line a minute, not one per race, and the ring buffer
/// reader that reports races never waits on the log (the console logger is set to drop, not
/// block, when its queue is full: AgentHost). At most <see cref="MaxKeys"/> keys are kept;
/// races of further keys are summed into one summary line.
/// </summary>
public sealed partial class RaceLog : IDisposable
{
    public const int MaxKeys = 1024;
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    private sealed class State(FdRace first, long sinceTimestamp)
    {
        public FdRace Last = first;
        public long Suppressed;
        public long SinceTimestamp = sinceTimestamp;
    }

    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<(string Kind, uint Pid), State> _states = [];
    private readonly ITimer? _timer;
    private long _overflow;

    /// <param name="flushPeriodically">False in tests, which call <see cref="Flush"/> themselves.</param>
    public RaceLog(ILogger logger, TimeProvider? time = null, bool flushPeriodically = true)
    {
        _logger = logger;
        _time = time ?? TimeProvider.System;
        if (flushPeriodically)
            _timer = _time.CreateTimer(_ => Flush(), null, Interval, Interval);
    }

    public void Report(FdRace race)
    {
        bool first = false;
        lock (_lock)
        {
            var key = (race.Kind, race.Pid);
            if (_states.TryGetValue(key, out var state))
            {
                state.Suppressed++;
                state.Last = race;
            }
            else if (_states.Count < MaxKeys)
            {
                _states[key] = new State(race, _time.GetTimestamp());
                first = true;
            }
            else
            {
                _overflow++;
            }
        }
        if (!first)
            return;
        if (race.ClosedByTid is { } closedBy)
            LogDoubleClose(race.Kind, race.Comm, race.Pid, race.Tid, race.Fd, closedBy);
        else
            LogRace(race.Kind, race.Comm, race.Pid, race.Tid, race.Fd);
    }

    /// <summary>Logs a summary for each key with suppressed races whose minute is up, and
    /// forgets keys that have been quiet for a minute, so their next race is logged in full.</summary>
    public void Flush()
    {
        var summaries = new List<(State State, long Count, double Seconds)>();
        long overflow;
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            foreach (var (key, state) in _states.ToList())
            {
                var elapsed = _time.GetElapsedTime(state.SinceTimestamp, now);
                if (elapsed < Interval)
                    continue;
                if (state.Suppressed == 0)
                {
                    _states.Remove(key);
                    continue;
                }
                summaries.Add((state, state.Suppressed, elapsed.TotalSeconds));
                state.Suppressed = 0;
                state.SinceTimestamp = now;
            }
            overflow = _overflow;
            _overflow = 0;
        }
        foreach (var (state, count, seconds) in summaries)
            LogSuppressed(state.Last.Kind, state.Last.Comm, state.Last.Pid, count, Math.Round(seconds), state.Last.Fd);
        if (overflow > 0)
            LogOverflow(overflow, MaxKeys);
    }

    public void Dispose() => _timer?.Dispose();

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "fd race {Kind}: process {Comm} pid {Pid} tid {Tid} fd {Fd}; further {Kind} races of this process are summarised once a minute")]
    private partial void LogRace(string kind, string comm, uint pid, uint tid, int fd);

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "fd race {Kind}: process {Comm} pid {Pid} tid {Tid} fd {Fd}, closed first by tid {ClosedByTid}; further {Kind} races of this process are summarised once a minute")]
    private partial void LogDoubleClose(string kind, string comm, uint pid, uint tid, int fd, uint closedByTid);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "fd race {Kind}: process {Comm} pid {Pid}: {Count} more in the last {Seconds} s (last on fd {Fd}); GET /races lists the recent ones")]
    private partial void LogSuppressed(string kind, string comm, uint pid, long count, double seconds, int fd);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "fd races: {Count} more from processes beyond the {Max} whose races are logged separately")]
    private partial void LogOverflow(long count, int max);
}
