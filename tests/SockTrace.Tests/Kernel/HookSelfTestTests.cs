using Microsoft.Extensions.Logging.Abstractions;
using SockTrace.Agent.Bpf;
using SockTrace.Agent.Events;
using SockTrace.Agent.Hosting;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// The start-up self-test (Bpf/HookSelfTest.cs) on the real kernel: every hook the agent
/// attaches sees the agent's own calls, and one that attaches where it never fires (here the
/// dup hook's tracepoint programs put on pivot_root's return, which nothing calls) is found
/// out, reported, and planned again without that mode.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed class HookSelfTestTests
{
    private sealed class Discard : IRecordSink
    {
        public void OnRecord(ReadOnlySpan<byte> record)
        {
        }
    }

    private static readonly KernelSourceOptions Options = new(1 << 20, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(1));

    /// <summary>The dup hook, its tracepoint programs attached where they never fire.</summary>
    private static readonly Hook MisplacedDup = Hooks.Dup with
    {
        Programs = new Dictionary<AttachMode, HookProgram[]>(Hooks.Dup.Programs)
        {
            [AttachMode.Tracepoint] = [.. Hooks.Dup.Programs[AttachMode.Tracepoint].Select(p => p with { Tracepoint = "syscalls/sys_exit_pivot_root", Optional = false })],
        },
    };

    [Fact]
    public void EveryAttachedHookSeesTheAgentsOwnCalls()
    {
        Requires.Bpf();
        var kernel = KernelFeatures.Probe();
        using var source = new KernelEventSource(new Discard(), KernelPipeline.PlanUnderTest(), kernel, Options, NullLogger.Instance);

        var (missed, port) = HookSelfTest.Run(source);

        Assert.Empty(missed);
        Assert.InRange(port, 1, 65535);
    }

    [Fact]
    public void AHookThatNeverFiresIsReportedAndPlannedAgainWithoutThatMode()
    {
        Requires.Bpf();
        var kernel = KernelFeatures.Probe();
        var hooks = new[] { Hooks.Accept, MisplacedDup, Hooks.Close };
        using (var source = new KernelEventSource(new Discard(), AttachPlan.For(kernel, "tracepoint", hooks), kernel, Options, NullLogger.Instance))
        {
            var (missed, _) = HookSelfTest.Run(source);

            var (hook, detail) = Assert.Single(missed);
            Assert.Equal(("dup", "attached, but saw 0 of the agent's own dup2() and dup3() calls"), (hook.Name, detail));
        }

        // Through the attach loop: the mode is dropped, and the next one the kernel has is
        // taken; where none is left (this machine: no kprobes, fentry refused), start-up says why.
        bool other = kernel.Supports(MisplacedDup, AttachMode.Fentry).Available || kernel.Supports(MisplacedDup, AttachMode.Kprobe).Available;
        KernelEventSource Start() => KernelAttach.Start(new Discard(), kernel, "auto", [Hooks.Accept, MisplacedDup, Hooks.Close], Options, NullLogger.Instance);
        if (other)
        {
            using var source = Start();
            var dup = source.Plan.Single(p => p.Hook.Name == "dup");
            Assert.NotEqual(AttachMode.Tracepoint, dup.Mode);
            Assert.Empty(HookSelfTest.Run(source).Missed);
        }
        else
        {
            var ex = Assert.Throws<StartupException>(Start);
            Assert.Contains("hook dup", ex.Message, StringComparison.Ordinal);
            Assert.Contains("tracepoint: attached, but saw 0 of the agent's own dup2() and dup3() calls", ex.Message, StringComparison.Ordinal);
        }
    }
}
