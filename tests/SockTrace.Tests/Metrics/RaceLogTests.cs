using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using SockTrace.Agent.Metrics;

namespace SockTrace.Tests.Metrics;

/// <summary>Races log at Warning: the first of each kind and process in full, then at most one
/// summary a minute of those suppressed.</summary>
public sealed class RaceLogTests
{
    private sealed class ManualTime : TimeProvider
    {
        public long Ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => Ticks;
        public void Advance(TimeSpan by) => Ticks += by.Ticks;
    }

    private static FdRace Race(string kind, uint pid, int fd = 5) =>
        new(DateTime.UnixEpoch, kind, pid, pid, "srv", fd, kind == "double_close" ? pid + 1 : null, kind == "double_close" ? 0.001 : null);

    /// <summary>Writes nothing until released: a console nobody reads (a full pipe).</summary>
    private sealed class StuckWriter : TextWriter
    {
        public ManualResetEventSlim Released { get; } = new(false);
        public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
        public override void Write(char value) => Released.Wait();
        public override void Write(string? value) => Released.Wait();
        public override void Write(char[] buffer, int index, int count) => Released.Wait();
    }

    /// <summary>The ring buffer's reader reports races: with the agent's console log set up as
    /// the agent sets it up, a console that takes nothing must not hold the reporter. The
    /// logger's queue fills and drops; every report returns.</summary>
    [Fact]
    public void AConsoleThatTakesNothingDoesNotHoldTheReporter()
    {
        var stuck = new StuckWriter();
        var console = Console.Out;
        Console.SetOut(stuck);
        try
        {
            using var factory = LoggerFactory.Create(SockTrace.Agent.Hosting.AgentHost.AddConsole);
            using var log = new RaceLog(factory.CreateLogger("SockTrace"), flushPeriodically: false);
            // Distinct processes, so that each race is logged, not summarised.
            var reporting = new Thread(() =>
            {
                for (uint pid = 1; pid <= RaceLog.MaxKeys; pid++)
                    log.Report(Race("dup2_busy", pid));
            });
            reporting.Start();
            Assert.True(reporting.Join(TimeSpan.FromSeconds(60)), "the reporter waited on the console");
        }
        finally
        {
            stuck.Released.Set();
            Console.SetOut(console);
        }
    }

    [Fact]
    public void TheFirstRaceOfEachKindAndProcessIsLoggedThenAMinutesSummary()
    {
        var logger = new FakeLogger();
        var time = new ManualTime();
        using var log = new RaceLog(logger, time, flushPeriodically: false);

        for (int i = 0; i < 1000; i++)
            log.Report(Race("double_close", 10, fd: i));
        log.Report(Race("dup2_busy", 10));
        log.Report(Race("double_close", 11));
        log.Flush(); // before the minute is up: nothing more

        var records = logger.Collector.GetSnapshot();
        Assert.Equal(3, records.Count);
        Assert.All(records, r => Assert.Equal(LogLevel.Warning, r.Level));
        Assert.Equal(300, records[0].Id.Id);
        Assert.Contains("double_close: process srv pid 10 tid 10 fd 0, closed first by tid 11;", records[0].Message);
        Assert.Contains("dup2_busy: process srv pid 10 tid 10 fd 5; further", records[1].Message);

        time.Advance(TimeSpan.FromSeconds(61));
        log.Flush();
        var summary = Assert.Single(logger.Collector.GetSnapshot().Skip(3));
        Assert.Equal(301, summary.Id.Id);
        Assert.Contains("double_close: process srv pid 10: 999 more in the last 61 s (last on fd 999)", summary.Message);

        // Quiet for a minute: forgotten, so the next race is logged in full again.
        time.Advance(TimeSpan.FromSeconds(61));
        log.Flush();
        log.Report(Race("double_close", 10, fd: 7));
        var again = logger.Collector.GetSnapshot()[^1];
        Assert.Equal(300, again.Id.Id);
        Assert.Equal(5, logger.Collector.Count);
    }

    [Fact]
    public void ProcessesBeyondTheKeyLimitAreSummedIntoOneLine()
    {
        var logger = new FakeLogger();
        var time = new ManualTime();
        using var log = new RaceLog(logger, time, flushPeriodically: false);

        for (uint pid = 1; pid <= RaceLog.MaxKeys + 5; pid++)
            log.Report(Race("dup2_busy", pid));
        Assert.Equal(RaceLog.MaxKeys, logger.Collector.Count);

        log.Flush();
        var overflow = logger.Collector.GetSnapshot()[^1];
        Assert.Equal(302, overflow.Id.Id);
        Assert.Contains("5 more from processes beyond the 1024", overflow.Message);
    }
}
