using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Bpf;

/// <summary>The mode a hook attaches with (null: left out), why the better modes were not used,
/// and the programs of that mode this kernel takes (<see cref="KernelFeatures.ProgramsFor"/>).</summary>
public sealed record HookPlan(Hook Hook, AttachMode? Mode, string Why, IReadOnlyList<HookProgram> Programs);

public static class AttachPlan
{
    /// <summary>
    /// Picks each hook's mode: with "auto" the first of fentry, kprobe, tracepoint that the
    /// kernel supports; with a forced mode that one, or a start-up error saying why not.
    /// A hook with no program for the forced mode (close has only tracepoints), or an optional
    /// hook whose forced mode this kernel lacks, picks as auto.
    /// Only <paramref name="hooks"/> are planned (default every hook); the others are not loaded.
    /// </summary>
    public static IReadOnlyList<HookPlan> For(KernelFeatures kernel, string requested, IEnumerable<Hook>? hooks = null)
    {
        var planned = (hooks ?? Hooks.All).ToList();
        kernel.LoadSideBySide(planned);
        var plan = new List<HookPlan>();
        foreach (var hook in planned)
        {
            if (hook == Hooks.AcceptIoUring && plan.Any(p => p.Hook == Hooks.Accept && p.Programs.Any(q => q.Unless == Hooks.DoAccept)))
            {
                plan.Add(new HookPlan(hook, null, "not needed: io_uring accepts through __sys_accept4_file(), which the accept hook's programs are on", []));
                continue;
            }
            var forced = AttachModes.Preference.SingleOrDefault(m => m.Name() == requested);
            var rejected = new List<string>();
            if (requested != "auto" && hook.Programs.ContainsKey(forced))
            {
                var support = kernel.Supports(hook, forced);
                if (support.Available)
                {
                    plan.Add(new HookPlan(hook, forced, "forced by --attach-mode", kernel.ProgramsFor(hook, forced)));
                    continue;
                }
                // An optional hook that lacks the forced mode here picks as auto, as one
                // without programs for it does, rather than stop the agent.
                if (hook.Required)
                    throw new StartupException(ExitCodes.KernelUnsupported,
                        $"--attach-mode {requested} is not available for hook {hook.Name} on kernel {kernel.Release}: {support.Detail}");
                rejected.Add($"forced {forced.Name()}: {support.Detail}");
            }
            HookPlan? chosen = null;
            foreach (var mode in AttachModes.Preference.Where(hook.Programs.ContainsKey))
            {
                var support = kernel.Supports(hook, mode);
                if (support.Available)
                {
                    chosen = new HookPlan(hook, mode, rejected.Count == 0 ? "preferred" : string.Join("; ", rejected), kernel.ProgramsFor(hook, mode));
                    break;
                }
                rejected.Add($"{mode.Name()}: {support.Detail}");
            }
            if (chosen is null && !hook.Required)
                chosen = new HookPlan(hook, null, "left out: " + string.Join("; ", rejected), []);
            plan.Add(chosen ?? throw new StartupException(ExitCodes.KernelUnsupported,
                $"no attach mode works for hook {hook.Name} on kernel {kernel.Release}: {string.Join("; ", rejected)}"));
        }
        return plan;
    }
}
