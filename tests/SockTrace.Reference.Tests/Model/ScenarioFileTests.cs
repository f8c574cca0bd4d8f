using SockTrace.Agent.Events;
using SockTrace.Reference.Tests.Support;

namespace SockTrace.Reference.Tests.Model;

/// <summary>Every scenario file runs on the model and meets its own expectations.</summary>
public sealed class ScenarioFileTests
{
    public static TheoryData<string> Names => Scenarios.Names();

    [Fact]
    public void ThereAreAtLeastTwentyScenarios() => Assert.True(Names.Count >= 20, $"{Names.Count} scenarios");

    [Theory]
    [MemberData(nameof(Names))]
    public void RunsOnTheModelAsItExpects(string name)
    {
        var scenario = Scenarios.Load(name);
        var run = ModelRun.Execute(scenario);

        Assert.All(run.Outcomes, o => Assert.NotNull(o.Ret));
        using var aggregation = new Aggregation();
        aggregation.Feed(run.Records);
        Assert.Equal(0, aggregation.Decoder.Invalid);
        Assert.Equal(run.Records.Count, aggregation.Decoder.Decoded(RecordTypes.Accept) + aggregation.Decoder.Decoded(RecordTypes.FdRace));
    }
}
