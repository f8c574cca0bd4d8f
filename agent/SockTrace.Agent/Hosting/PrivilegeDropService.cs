
namespace SockTrace.Agent.Hosting;

/// <summary>
/// Drops the capabilities once everything that needs them is done: programs attached and
/// maps and rings open (<see cref="AgentService"/>'s StartAsync) and the metrics port
/// bound (the server's StartAsync; a port below 1024 needs CAP_NET_BIND_SERVICE), hence
/// StartedAsync, which runs after every hosted service has started. A failure stops start-up.
/// </summary>
public sealed partial class PrivilegeDropService(AgentOptions options, ILogger<PrivilegeDropService> logger) : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        if (options.Source != AgentOptions.KernelSourceName)
            return Task.CompletedTask;
        if (options.KeepCapabilities)
        {
            LogKept();
            return Task.CompletedTask;
        }
        ulong keep = CapabilityDrop.KeptForMapReads(
            File.ReadAllText("/proc/sys/kernel/osrelease").Trim(),
            File.Exists("/proc/sys/kernel/unprivileged_bpf_disabled") ? File.ReadAllText("/proc/sys/kernel/unprivileged_bpf_disabled") : "0");
        var result = CapabilityDrop.Run(keep);
        if (keep == 0)
            LogDropped(result.Threads, result.BoundingDropped ? "bounding set emptied" : "bounding set kept: no CAP_SETPCAP to drop it");
        else
            LogDroppedAllButBpf(result.Threads);
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 1800, Level = LogLevel.Information, Message = "Dropped every capability in all {Threads} threads (effective, permitted, inheritable, ambient; {Bounding}); no_new_privs set")]
    private partial void LogDropped(int threads, string bounding);

    [LoggerMessage(EventId = 1801, Level = LogLevel.Warning, Message = "Dropped every capability but CAP_BPF in all {Threads} threads: before 5.19, with kernel.unprivileged_bpf_disabled set, reading the maps at scrape time needs it")]
    private partial void LogDroppedAllButBpf(int threads);

    [LoggerMessage(EventId = 1802, Level = LogLevel.Warning, Message = "Keeping capabilities (--keep-capabilities)")]
    private partial void LogKept();
}
