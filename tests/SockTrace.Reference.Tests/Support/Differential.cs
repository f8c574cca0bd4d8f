using System.Globalization;
using System.Net;
using SockTrace.Agent.Events;

namespace SockTrace.Reference.Tests.Support;

/// <summary>One scenario on the model and on the kernel, and every way the two disagreed.</summary>
internal sealed record DifferentialResult(string Scenario, IReadOnlyList<string> Mismatches, int StepsCompared, int FdsPredicted, int EbusyPredicted, int SeriesCompared, int ModelRecords, int KernelRecords)
{
    public override string ToString() => Mismatches.Count == 0
        ? $"{Scenario}: agree ({StepsCompared} steps, {FdsPredicted} fds, {EbusyPredicted} EBUSY, {SeriesCompared} series, {ModelRecords} records)"
        : $"{Scenario}: {Mismatches.Count} mismatches\n  " + string.Join("\n  ", Mismatches);
}

/// <summary>
/// Runs a scenario on the model, then its syscalls on the kernel while the agent's BPF
/// programs watch, then replays the model on the times the kernel run's steps started at;
/// aggregates both record streams through the agent's decoder and metrics,
/// and compares: every step's result exactly (so every fd number and EBUSY), every series'
/// count exactly, and sums of seconds within a tolerance.
/// </summary>
internal static class Differential
{
    /// <summary>Per measurement. The replayed model starts each step when the kernel run did,
    /// so what is left is one hand-off: a worker thread waking to make its syscall. Well
    /// under a millisecond on an idle host; on a loaded one (a parallel build) a thread can
    /// wait tens of milliseconds for a CPU. An emulated guest with one CPU shared with the
    /// test host has seen a 200 ms wait: tests/vm/matrix.sh sets SOCKTRACE_DIFFERENTIAL_SLACK_MS
    /// there. Counts are compared exactly everywhere.</summary>
    private static readonly TimeSpan Tolerance = TimeSpan.FromMilliseconds(
        int.TryParse(Environment.GetEnvironmentVariable("SOCKTRACE_DIFFERENTIAL_SLACK_MS"), out int ms) && ms > 0 ? ms : 50);

    public static DifferentialResult Run(Scenario scenario, KernelObserver kernel, Func<IRecordSink, IRecordSink>? brokenKernelAggregation = null)
    {
        kernel.Require();
        string nic = ScenarioChild.NicAddress();
        var options = new ModelOptions { Comm = ScenarioChild.Comm, DoubleCloseWindow = KernelObserver.DoubleCloseWindow, NicAddress = IPAddress.Parse(nic).GetAddressBytes() };
        var script = KernelScript.For(ModelRun.Execute(scenario, options), scenario);
        var failedBefore = kernel.FailedAccepts();
        var run = ScenarioChild.Run(script, nic);
        // The model again, on the kernel run's clock: only times can differ from the first
        // run, and with them the model's durations carry the host's scheduling delays too.
        var model = ModelRun.Execute(scenario, options with { StepTimesNs = run.StepTimesNs });
        // Failed accepts make no record in the kernel: they are counted there (st_accept_errors).
        var records = kernel.Capture.Take(run.Pid, model.Records.Count(r => !IsFailedAccept(r)));
        var failed = kernel.FailedAccepts()
            .Where(f => f.Value > failedBefore.GetValueOrDefault(f.Key))
            .Select(f => (Key: ErrorKey(f.Key.Port, f.Key.Errno, f.Key.Cgroup), Count: f.Value - failedBefore.GetValueOrDefault(f.Key)))
            .ToList();

        var mismatches = new List<string>();
        int fds = 0, ebusy = 0;
        foreach (var o in model.Outcomes)
        {
            int predicted = o.Ret!.Value;
            if (!run.Results.TryGetValue(o.Step.Index, out int actual))
            {
                mismatches.Add($"step {o.Step.Index} ({o.Step.Op}): no result from the kernel");
                continue;
            }
            if (actual != predicted)
                mismatches.Add($"step {o.Step.Index} ({o.Step.Op} on {o.Step.Thread}): model {ModelRun.Describe(predicted)}, kernel {ModelRun.Describe(actual)}");
            else if (predicted == -Errno.EBUSY)
                ebusy++;
            else if (predicted >= 0 && o.Step.Op is StepOp.Listen or StepOp.Connect or StepOp.Accept or StepOp.Dup2 or StepOp.Dup3)
                fds++;
        }

        var modelPorts = model.Ports.ToDictionary(p => p.Value.ToString(CultureInfo.InvariantCulture), p => p.Key);
        var kernelPorts = run.Ports.ToDictionary(p => p.Value.ToString(CultureInfo.InvariantCulture),
            p => scenario.Steps[p.Key].Name!);
        using var modelAggregation = new Aggregation();
        using var kernelAggregation = new Aggregation(brokenKernelAggregation);
        modelAggregation.Feed(model.Records);
        kernelAggregation.Feed(records);
        kernelAggregation.KernelErrors(failed);
        var modelSummary = modelAggregation.Summary(modelPorts);
        var kernelSummary = kernelAggregation.Summary(kernelPorts);
        mismatches.AddRange(MetricSummary.Compare(modelSummary, kernelSummary, Tolerance));
        if (kernelAggregation.Decoder.Invalid != 0)
            mismatches.Add($"the decoder rejected {kernelAggregation.Decoder.Invalid} kernel records");

        return new DifferentialResult(scenario.Name, mismatches, model.Outcomes.Count, fds, ebusy,
            modelSummary.All.Keys.Union(kernelSummary.All.Keys).Count(), model.Records.Count(r => !IsFailedAccept(r)), RecordCapture.OfProcesses(records));
    }

    private static bool IsFailedAccept(byte[] record) =>
        BitConverter.ToUInt32(record) == RecordTypes.Accept && BitConverter.ToInt32(record, 16) < 0;

    private static AcceptErrorKey ErrorKey(ushort port, ushort errno, ulong cgroup)
    {
        var key = new AcceptErrorKey { ListenPort = port, Errno = errno, CgroupId = cgroup };
        System.Text.Encoding.ASCII.GetBytes(ScenarioChild.Comm).CopyTo(key.Comm);
        return key;
    }
}
