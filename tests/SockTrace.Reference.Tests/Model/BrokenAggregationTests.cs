using SockTrace.Agent.Events;
using SockTrace.Reference.Tests.Support;

namespace SockTrace.Reference.Tests.Model;

/// <summary>The comparison the differential tests rest on: it passes two aggregations that
/// agree, and names exactly the series of one that lost records (a double that drops one
/// record type), or whose count or sum is off.</summary>
public sealed class BrokenAggregationTests
{
    [Theory]
    [InlineData("dup2-busy", RecordTypes.FdRace, new[]
    {
        "socktrace_fd_races_total{comm=st-scenario,kind=dup2_busy}: only in the model (1)",
    })]
    [InlineData("accept-queue-wait", RecordTypes.Accept, new[]
    {
        "socktrace_accept_duration_seconds{comm=st-scenario,port=l}: only in the model (1)",
        "socktrace_accept_queue_wait_seconds{comm=st-scenario,port=l}: only in the model (1)",
        "socktrace_accepts_total{comm=st-scenario,peer=loopback,port=l}: only in the model (1)",
    })]
    public void DroppingOneRecordTypeIsAMismatchOfExactlyItsSeries(string name, uint dropped, string[] expected)
    {
        var run = ModelRun.Execute(Scenarios.Load(name));
        var ports = run.Ports.ToDictionary(p => p.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), p => p.Key);
        using var good = new Aggregation();
        using var again = new Aggregation();
        using var broken = new Aggregation(decoder => new DroppingSink(decoder, dropped));
        good.Feed(run.Records);
        again.Feed(run.Records);
        broken.Feed(run.Records);

        // Two aggregations of the same records, each with its own meters, agree.
        Assert.NotEmpty(good.Summary(ports).All);
        Assert.Empty(MetricSummary.Compare(good.Summary(ports), again.Summary(ports), TimeSpan.Zero));
        Assert.Equal(expected, MetricSummary.Compare(good.Summary(ports), broken.Summary(ports), TimeSpan.FromMilliseconds(5)));
    }

    [Fact]
    public void ACountOrASumOutsideTheToleranceIsAMismatch()
    {
        var ports = new Dictionary<string, string> { ["8080"] = "l" };
        var tags = new Dictionary<string, object?> { ["port"] = "8080" };
        var model = new MetricSummary();
        var kernel = new MetricSummary();
        model.Add("a", tags, ports, 2, 0);
        kernel.Add("a", tags, ports, 1, 0);
        // 2 measurements: 2 x 1 ms + 10 % of the larger sum allowed (0.0131 s for d, 0.01335 s for w).
        model.Add("d", tags, ports, 2, 0.100);
        kernel.Add("d", tags, ports, 2, 0.111);
        model.Add("w", tags, ports, 2, 0.100);
        kernel.Add("w", tags, ports, 2, 0.1135);

        Assert.Equal(
            ["a{port=l}: model counts 2, kernel 1", "w{port=l}: model sums 0.100000 s, kernel 0.113500 s (tolerance 0.013350 s)"],
            MetricSummary.Compare(model, kernel, TimeSpan.FromMilliseconds(1)));
    }
}
