using SockTrace.Agent.Bpf;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>What the planner picks on the kernel under test, in the mode under test.</summary>
[Trait("Category", "Kernel")]
public sealed class AttachPlanTests
{
    /// <summary>
    /// Enabling any syscalls: tracepoint puts every syscall of every task on the node on the
    /// slow path (BENCHMARKS.md measures it), so a hook may use one only where this kernel
    /// offers it neither fentry nor kprobes, or tracepoints were asked for.
    /// </summary>
    [Fact]
    public void SyscallTracepointsOnlyWhereNothingElseAttaches()
    {
        var kernel = KernelPipeline.KernelUnderTest;
        var plans = KernelPipeline.AttachModeUnderTest == "tracepoint" ? [] : KernelPipeline.PlanUnderTest();
        foreach (var plan in plans.Where(p => p.Programs.Any(program => program.Tracepoint?.StartsWith("syscalls/", StringComparison.Ordinal) == true)))
        {
            foreach (var mode in new[] { AttachMode.Fentry, AttachMode.Kprobe }.Where(plan.Hook.Programs.ContainsKey))
                Assert.False(kernel.Supports(plan.Hook, mode).Available,
                    $"hook {plan.Hook.Name} uses syscall tracepoints on {kernel.Release} although {mode.Name()} is available");
        }
        // Every hook that enables syscall tracepoints has another mode to prefer where the kernel allows.
        Assert.All(Hooks.All.Where(h => h.Programs.TryGetValue(AttachMode.Tracepoint, out var programs) && programs.Any(p => p.Tracepoint!.StartsWith("syscalls/", StringComparison.Ordinal))),
            h => Assert.True(h.Programs.ContainsKey(AttachMode.Kprobe) && h.Programs.ContainsKey(AttachMode.Fentry), $"hook {h.Name} has syscall tracepoints only"));
    }
}
