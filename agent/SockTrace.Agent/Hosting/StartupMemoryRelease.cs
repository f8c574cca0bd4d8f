using SockTrace.Agent.Bpf;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// Once everything has started (the last hosted service: programs attached, the port bound,
/// the capabilities dropped), gives back what start-up used and the steady state does not:
/// the managed heap holds megabytes of start-up garbage (libbpf's log lines, the host's
/// configuration, the BPF objects read from the assembly), which no collection would ever
/// reclaim, as the agent allocates little after start-up; and glibc keeps the pages libbpf
/// freed after parsing the kernel's BTF (megabytes, once per object) for a reuse that never
/// comes. One aggressive collection (decommitting the freed regions) and malloc_trim(3), a
/// few milliseconds once.
/// </summary>
public sealed class StartupMemoryRelease : IHostedLifecycleService
{
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Interop.Libc.malloc_trim(0);
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
