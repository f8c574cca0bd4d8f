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

    /// <summary>Every hook the kernel can take is attached; one it cannot is left out with the
    /// reason, and io_uring's accepts are seen one way or the other: on Debian's 5.10 the
    /// delivery hook (socket storage in tracing programs is 5.11) is left out, saying so.</summary>
    [Fact]
    public void WhatTheKernelLacksIsLeftOutWithItsReason()
    {
        var kernel = KernelPipeline.KernelUnderTest;
        var plans = KernelPipeline.PlanUnderTest().ToDictionary(p => p.Hook.Name);
        var delivery = plans["delivery"];
        if (kernel.LocalStorage)
            Assert.NotNull(delivery.Mode);
        else
            Assert.Equal((null, true), (delivery.Mode, delivery.Why.Contains("need BPF task and socket storage (Linux 5.11)", StringComparison.Ordinal)));
        var uring = plans["accept_io_uring"];
        Assert.True(uring.Mode is not null || uring.Why.StartsWith("not needed", StringComparison.Ordinal), uring.Why);
        Assert.All(new[] { "accept", "sock_established", "dup", "close", "rx" }, name => Assert.NotNull(plans[name].Mode));
    }
}
