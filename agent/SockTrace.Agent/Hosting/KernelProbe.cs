using SockTrace.Agent.Bpf;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// The kernel's preflight and feature probe (the program loads that tell which attach modes
/// work), begun before the web host is built and taken by <see cref="AgentService"/> when it
/// starts: neither needs the other, and each is tens of milliseconds before the first scrape
/// (BENCHMARKS.md, "Footprint"). Nothing is attached here. A failure (not root, no BTF) is
/// thrown when the result is taken, so it stops start-up where it did before, after the
/// services that start first (pod attribution's checks) have had their say.
/// </summary>
public sealed class KernelProbe
{
    private Task<KernelFeatures>? _probe;

    /// <summary>Begins the probe on a pool thread, for <paramref name="hooks"/>.</summary>
    public void Begin(IEnumerable<Hook> hooks)
    {
        LibbpfLog.Route();
        var planned = hooks.ToList();
        _probe = Task.Run(() =>
        {
            KernelPreflight.Run();
            var kernel = KernelFeatures.Probe();
            kernel.LoadSideBySide(planned);
            return kernel;
        });
    }

    /// <summary>The probed kernel (probed now if <see cref="Begin"/> was not called).</summary>
    public KernelFeatures Result()
    {
        if (_probe is null)
        {
            KernelPreflight.Run();
            return KernelFeatures.Probe();
        }
        return _probe.GetAwaiter().GetResult();
    }
}
