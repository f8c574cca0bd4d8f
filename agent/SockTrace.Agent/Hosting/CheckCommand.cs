using System.Text;
using SockTrace.Agent.Bpf;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// `socktrace check`: the kernel features the agent depends on, the attach mode each hook
/// would use with the given settings, and with --attribution kubernetes what that needs.
/// Exits 0 only when the agent can run here, so it serves as an init container or a
/// pre-flight step in a node image build.
/// </summary>
public static class CheckCommand
{
    public static int Run(AgentOptions options, TextWriter output)
    {
        // Probes are expected to fail on some kernels; their libbpf chatter is not the answer.
        LibbpfLog.Install(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        KernelPreflight.Run();
        var kernel = KernelFeatures.Probe();
        var table = new StringBuilder();
        table.AppendLine($"kernel {kernel.Release}");
        table.AppendLine();
        Row(table, "FEATURE", "AVAILABLE", "DETAIL");
        Row(table, "btf", "yes", KernelPreflight.BtfPath);
        Row(table, "tracefs", "yes", kernel.Tracefs);
        Row(table, "memlock", "yes", MemlockLimit.Ensure());
        Row(table, "kprobe", YesNo(kernel.Kprobes.Available), kernel.Kprobes.Detail);
        bool maxActive = KprobeEvents.Writable(kernel.Tracefs);
        Row(table, "kretprobe maxactive", YesNo(maxActive), maxActive
            ? $"kprobe_events writable: kretprobes track {KprobeEvents.MaxActive} calls in flight"
            : "kprobe_events not writable: kretprobes get the kernel default, max(10, 2 * CPUs)");
        Row(table, "fentry", YesNo(kernel.Fentry.Available), kernel.Fentry.Detail);
        table.AppendLine();
        Row(table, "HOOK", "MODE", "WHY");
        int exitCode = ExitCodes.Ok;
        try
        {
            // Attached and self-tested as the agent would (a hook that attaches but does not
            // fire falls back), then detached.
            using var source = KernelAttach.Start(new Discard(), kernel, options.AttachMode, options.Hooks, options.KernelSource,
                Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            foreach (var hook in source.Plan)
                Row(table, hook.Hook.Name, hook.Mode?.Name() ?? "-", hook.Why);
            table.AppendLine();
            table.AppendLine("self-test: the accept, dup and close hooks saw the agent's own calls");
        }
        catch (StartupException ex)
        {
            table.AppendLine($"cannot run here: {ex.Message}");
            exitCode = ex.ExitCode;
        }
        if (options.Attribution == AgentOptions.AttributionKubernetes)
        {
            table.AppendLine();
            Row(table, "ATTRIBUTION", "OK", "DETAIL");
            var results = Attribution.AttributionCheck.Run(Attribution.PodAttributionService.CgroupMount, Environment.GetEnvironmentVariable("NODE_NAME"),
                () => new KubernetesApi(KubernetesConfig.Load()), TimeSpan.FromSeconds(10));
            foreach (var result in results)
                Row(table, result.Name, YesNo(result.Ok), result.Detail);
            if (exitCode == ExitCodes.Ok && results.FirstOrDefault(r => !r.Ok) is { } failed)
                exitCode = failed.ExitCode;
        }
        output.Write(table.ToString());
        return exitCode;
    }

    private static string YesNo(bool value) => value ? "yes" : "no";

    private sealed class Discard : Events.IRecordSink
    {
        public void OnRecord(ReadOnlySpan<byte> record)
        {
        }
    }

    private static void Row(StringBuilder table, string a, string b, string c) => table.AppendLine($"{a,-20} {b,-11} {c}");
}
