using System.Runtime.InteropServices;
using SockTrace.Agent.Events;
using SockTrace.Reference;
using SockTrace.Reference.Tests.Support;

namespace SockTrace.Reference.Tests.Model;

/// <summary>Every scenario file runs on the model and meets its own expectations, which are
/// real checks: each scenario expects something, and a wrong expectation fails its run.</summary>
public sealed class ScenarioFileTests
{
    public static TheoryData<string> Names => Scenarios.Names();

    [Theory]
    [MemberData(nameof(Names))]
    public void RunsOnTheModelAsItExpects(string name)
    {
        var scenario = Scenarios.Load(name);
        // A scenario that expects nothing would pass whatever the model did.
        Assert.Contains(scenario.Steps, s => s.Expect is not null);
        var run = ModelRun.Execute(scenario);

        Assert.All(run.Outcomes, o => Assert.NotNull(o.Ret));
        using var aggregation = new Aggregation();
        aggregation.Feed(run.Records);
        Assert.Equal(0, aggregation.Decoder.Invalid);
        Assert.Equal(run.Records.Count, aggregation.Decoder.Decoded(RecordTypes.Accept) + aggregation.Decoder.Decoded(RecordTypes.FdRace));
    }

    /// <summary>Each scenario's last expectation, made wrong, stops its run naming that step.</summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void AWrongExpectationFailsTheRun(string name)
    {
        var scenario = Scenarios.Load(name);
        var step = scenario.Steps.Last(s => s.Expect is not null);
        var wrong = step.Expect!.Value switch
        {
            { Errno: not null } => new Expectation(0, null), // it fails with an errno: 0 is wrong
            { Ret: { } ret } => new Expectation(ret + 1, null),
            _ => throw new InvalidOperationException("an expectation with neither ret nor errno"),
        };
        var mutated = scenario with { Steps = [.. scenario.Steps.Select(s => s == step ? s with { Expect = wrong } : s)] };

        var ex = Assert.Throws<ScenarioException>(() => ModelRun.Execute(mutated));
        Assert.StartsWith($"step {step.Index} ", ex.Message);
    }

    /// <summary>Together the scenarios make every record the kernel side reports from real
    /// syscalls: accepts that succeed and fail, and each race a program can see.</summary>
    [Fact]
    public void TheScenariosCoverEveryRecordAndError()
    {
        var types = new HashSet<uint>();
        var kinds = new HashSet<string>();
        var errnos = new HashSet<string>();
        foreach (string row in Names)
        {
            var run = ModelRun.Execute(Scenarios.Load(row));
            foreach (byte[] record in run.Records)
            {
                var header = MemoryMarshal.Read<RecordHeader>(record);
                types.Add(header.Type);
                if (header.Type == RecordTypes.FdRace)
                    kinds.Add(RaceKinds.Label(MemoryMarshal.Read<FdRaceRecord>(record).Kind));
            }
            foreach (var o in run.Outcomes.Where(o => o.Ret < 0))
                errnos.Add(ModelRun.Describe(o.Ret!.Value));
        }
        Assert.Equal([RecordTypes.Accept, RecordTypes.FdRace], types.Order());
        Assert.Contains("dup2_busy", kinds);
        Assert.Superset(new HashSet<string> { "eagain", "emfile", "ebusy" }, errnos);
    }
}
