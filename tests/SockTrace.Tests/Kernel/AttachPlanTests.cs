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

    /// <summary>
    /// The agent looks functions up in the kernel's BTF for fentry and in /proc/kallsyms only
    /// for kprobes (KernelFunctions says why): on every kernel tested the two agree on every
    /// function the hooks name, so no plan differs for where it looked.
    /// </summary>
    [Fact]
    public void TheKernelsBtfHasTheFunctionsKallsymsHas()
    {
        var wanted = KernelFeatures.WantedFunctions;
        var inBtf = KernelFunctions.InBtf(wanted);
        var inKallsyms = KernelFunctions.InKallsyms(wanted);
        Assert.True(inKallsyms.Count > 0, "no function of the hooks found in /proc/kallsyms");
        Assert.True(inBtf.SetEquals(inKallsyms),
            $"on {KernelPipeline.KernelUnderTest.Release}: only in BTF: {string.Join(", ", inBtf.Except(inKallsyms))}; only in kallsyms: {string.Join(", ", inKallsyms.Except(inBtf))}");
    }

    /// <summary>/proc/kallsyms (about 50 ms of the kernel formatting it) is read for planning
    /// only where kprobes exist.</summary>
    [Fact]
    public void KallsymsIsReadOnlyWhereKprobesExist()
    {
        var kernel = KernelFeatures.Probe();
        var plan = AttachPlan.For(kernel, KernelPipeline.AttachModeUnderTest);
        Assert.Contains(plan, p => p.Mode is not null);
        Assert.Equal(kernel.Kprobes.Available, kernel.ReadKallsyms);
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
