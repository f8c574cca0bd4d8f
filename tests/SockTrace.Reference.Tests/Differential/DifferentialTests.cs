using SockTrace.Agent.Events;
using SockTrace.Reference.Tests.Support;
using Xunit.Abstractions;

namespace SockTrace.Reference.Tests.Differential;

/// <summary>
/// Each scenario on the model and on the kernel, compared: every step's result (fd numbers,
/// EBUSY, EAGAIN, EMFILE), and every metric series the agent derives from the records.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(KernelCollection.Name)]
public sealed class DifferentialTests(KernelObserver kernel, ITestOutputHelper output)
{
    public static TheoryData<string> Names => Scenarios.Names();

    [Theory]
    [MemberData(nameof(Names))]
    public void TheModelAndTheKernelAgree(string name)
    {
        var result = Support.Differential.Run(Scenarios.Load(name), kernel);
        output.WriteLine(result.ToString());
        Assert.True(result.Mismatches.Count == 0, result.ToString());
        Assert.Equal(result.ModelRecords, result.KernelRecords);
    }

    [Fact]
    public void EveryInterleavingOfAcceptAgainstCloseAndDup2AgreesOnTheKernel()
    {
        var orders = InterleavingExplorer.AcceptAgainstCloseAndDup2();
        var results = orders.Select(o => (o, r: Support.Differential.Run(o.Scenario, kernel))).ToList();
        foreach (var (o, r) in results)
            output.WriteLine($"{o} => {r}");

        Assert.All(results, x => Assert.True(x.r.Mismatches.Count == 0, x.r.ToString()));
        Assert.Equal(1, results.Sum(x => x.r.EbusyPredicted));
    }

    [Fact]
    public void ABrokenAggregationThatDropsFdRacesIsCaught()
    {
        var result = Support.Differential.Run(Scenarios.Load("dup2-busy"), kernel, decoder => new DroppingSink(decoder, RecordTypes.FdRace));
        output.WriteLine(result.ToString());

        Assert.Contains(result.Mismatches, m => m.StartsWith("socktrace_fd_races_total{comm=st-scenario,kind=dup2_busy}: only in the model", StringComparison.Ordinal));
    }
}
