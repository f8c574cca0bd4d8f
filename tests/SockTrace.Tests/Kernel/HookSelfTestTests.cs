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

    /// <summary>The dup hook with the programs of one mode attached where they never fire:
    /// tracepoints on pivot_root's return, which nothing calls, kprobes on the IPv6 handshake's
    /// last step, which no test makes meanwhile (a function the agent looks up anyway).</summary>
    private static Hook Misplaced(AttachMode mode) => Hooks.Dup with
    {
        Programs = new Dictionary<AttachMode, HookProgram[]>(Hooks.Dup.Programs)
        {
            [mode] = [.. Hooks.Dup.Programs[mode].Select(p => mode == AttachMode.Tracepoint
                ? p with { Tracepoint = "syscalls/sys_exit_pivot_root", Optional = false }
                : p with { KernelFunction = "tcp_v6_syn_recv_sock" })],
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

    /// <summary>kprobes misplaced where the kernel has them (the guests), else tracepoints (this
    /// machine); fentry, which cannot be put elsewhere, not offered. The misplaced mode is found
    /// out and dropped, and the dup hook falls back to tracepoints where they are left (6.x
    /// guests); where nothing is left (this machine; 5.10, without bpf_task_pt_regs), start-up
    /// stops and says why.</summary>
    [Fact]
    public void AHookThatNeverFiresIsReportedAndPlannedAgainWithoutThatMode()
    {
        Requires.Bpf();
        var kernel = KernelFeatures.Probe();
        var mode = kernel.Kprobes.Available ? AttachMode.Kprobe : AttachMode.Tracepoint;
        var dup = Misplaced(mode);
        kernel.Exclude(dup, AttachMode.Fentry, "not under test");
        using (var source = new KernelEventSource(new Discard(), AttachPlan.For(kernel, mode.Name(), [Hooks.Accept, dup, Hooks.Close]), kernel, Options, NullLogger.Instance))
        {
            var (missed, _) = HookSelfTest.Run(source);

            var (hook, detail) = Assert.Single(missed);
            Assert.Equal(("dup", "attached, but saw 0 of the agent's own dup2() and dup3() calls"), (hook.Name, detail));
        }

        string reported = $"{mode.Name()}: attached, but saw 0 of the agent's own dup2() and dup3() calls";
        KernelEventSource Start() => KernelAttach.Start(new Discard(), kernel, "auto", [Hooks.Accept, dup, Hooks.Close], Options, NullLogger.Instance);
        if (mode == AttachMode.Kprobe && kernel.Supports(dup, AttachMode.Tracepoint).Available)
        {
            using var source = Start();
            var planned = source.Plan.Single(p => p.Hook.Name == "dup");
            Assert.Equal(AttachMode.Tracepoint, planned.Mode);
            Assert.Contains(reported, planned.Why, StringComparison.Ordinal);
            Assert.Empty(HookSelfTest.Run(source).Missed);
        }
        else
        {
            var ex = Assert.Throws<StartupException>(Start);
            Assert.Contains("hook dup", ex.Message, StringComparison.Ordinal);
            Assert.Contains(reported, ex.Message, StringComparison.Ordinal);
        }
    }
}
