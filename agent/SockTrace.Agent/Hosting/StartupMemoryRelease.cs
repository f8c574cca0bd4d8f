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
    /// <summary>
    /// Called before anything loads: a fixed mmap threshold of 128 KiB. glibc raises the
    /// threshold to the size of each mapped block freed, and its trim threshold to twice that
    /// (malloc/malloc.c, "Update in free() for dynamic thresholds"), so after libbpf frees a
    /// parse of the kernel's BTF (megabytes) every arena keeps that much at its top. The probe
    /// loads on pool threads, whose arenas malloc_trim(3) does not shrink from the top (only
    /// the main arena's, mtrim()): 2 x 12 MiB stayed resident. Fixed, big blocks are mapped
    /// and unmapped, and each free keeps at most 128 KiB at the top of an arena.
    /// </summary>
    public static void FixMallocThresholds() => Interop.Libc.mallopt(Interop.Libc.M_MMAP_THRESHOLD, 128 * 1024);

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
