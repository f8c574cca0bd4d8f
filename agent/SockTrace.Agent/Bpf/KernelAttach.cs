using Microsoft.Extensions.Logging;
using SockTrace.Agent.Events;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Plans, loads and attaches, then proves the hooks fire (<see cref="HookSelfTest"/>): a hook
/// that saw none of the agent's own calls is reported and planned again without that mode,
/// falling back to the next one, or stopping start-up with the reason when none is left.
/// </summary>
public static partial class KernelAttach
{
    public static KernelEventSource Start(IRecordSink sink, KernelFeatures kernel, string attachMode, IEnumerable<Hook> hooks,
        KernelSourceOptions options, ILogger logger, Action<int>? selfTestPort = null)
    {
        var wanted = hooks.ToList();
        while (true)
        {
            var plan = AttachPlan.For(kernel, attachMode, wanted);
            var source = new KernelEventSource(sink, plan, kernel, options, logger);
            List<(Hook Hook, string Detail)> missed;
            try
            {
                var (found, port) = HookSelfTest.Run(source);
                selfTestPort?.Invoke(port);
                missed = found;
            }
            catch
            {
                source.Dispose();
                throw;
            }
            if (missed.Count == 0)
                return source;
            source.Dispose();
            foreach (var (hook, detail) in missed)
            {
                var mode = plan.Single(p => p.Hook == hook).Mode!.Value;
                LogMissed(logger, hook.Name, mode.Name(), detail);
                kernel.Exclude(hook, mode, detail);
            }
        }
    }

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Hook {Hook} in {Mode} mode {Detail}: trying the next mode")]
    private static partial void LogMissed(ILogger logger, string hook, string mode, string detail);
}
