using SockTrace.Agent.Events;
using SockTrace.Reference.Tests.Support;

namespace SockTrace.Reference.Tests.Model;

/// <summary>The comparison catches an aggregation that loses records: the model against itself,
/// once through a double that drops one record type.</summary>
public sealed class BrokenAggregationTests
{
    [Theory]
    [InlineData("dup2-busy", RecordTypes.FdRace, "socktrace.fd_races{comm=st-scenario,kind=dup2_busy}")]
    [InlineData("accept-queue-wait", RecordTypes.Accept, "socktrace.accepts{comm=st-scenario,peer=loopback,port=l}")]
    public void DroppingOneRecordTypeIsAMismatch(string name, uint dropped, string series)
    {
        var run = ModelRun.Execute(Scenarios.Load(name));
        var ports = run.Ports.ToDictionary(p => p.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), p => p.Key);
        using var good = new Aggregation();
        using var broken = new Aggregation(decoder => new DroppingSink(decoder, dropped));
        good.Feed(run.Records);
        broken.Feed(run.Records);

        Assert.Empty(MetricSummary.Compare(good.Summary(ports), good.Summary(ports), TimeSpan.Zero));
        var mismatches = MetricSummary.Compare(good.Summary(ports), broken.Summary(ports), TimeSpan.FromMilliseconds(5));
        Assert.Contains(mismatches, m => m.StartsWith(series + ": only in the model", StringComparison.Ordinal));
    }
}
