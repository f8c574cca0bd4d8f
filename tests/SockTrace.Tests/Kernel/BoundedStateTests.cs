using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Kernel;

/// <summary>
/// The maps that hold calls in flight (an accept entered, not yet returned; a close seen,
/// its fd not yet reused) lose an entry whenever a return is missed: a kretprobe past its
/// maxactive, a program detached mid-call. They must be LRU, so the kernel evicts the
/// oldest instead of refusing new calls once they fill; and a killed process must not
/// leave entries behind in the first place.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(MetricsCollection.Name)]
public sealed class BoundedStateTests
{
    private const int BpfMapTypeHash = 1;
    private const int BpfMapTypePercpuHash = 5;
    private const int BpfMapTypeLruHash = 9;
    private const int BpfMapTypeLruPercpuHash = 10;

    private const int BpfMapTypeTaskStorage = 29;

    /// <summary>Names as the kernel keeps them: at most 15 characters.</summary>
    private static readonly string[] InFlight = ["st_accept_calls", "st_dup_calls", "st_closes"];

    /// <summary>Task storage, where the kernel has it: an entry goes with its thread or process.</summary>
    private static readonly string[] PerTask = ["st_accept_threa", "st_close_tables"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryInFlightMapIsLruOrTaskStorageAndBounded(bool olderKernelPaths)
    {
        using var pipeline = new KernelPipeline(olderKernelPaths: olderKernelPaths);

        var maps = LoadedMaps();
        foreach (string name in InFlight)
        {
            Assert.True(maps.TryGetValue(name, out var map), $"{name} is not loaded (loaded: {string.Join(", ", maps.Keys)})");
            Assert.Equal(BpfMapTypeLruHash, map.Type);
            Assert.InRange(map.MaxEntries, 1, 65536);
        }
        bool taskStorage = !olderKernelPaths && KernelPipeline.KernelUnderTest.LocalStorage;
        Assert.All(PerTask, name => Assert.Equal(taskStorage, maps[name].Type == BpfMapTypeTaskStorage));
        // One plain hash map: the failed accepts' counts, which must not be evicted; a key
        // that does not fit is counted (errors_lost), and the agent deletes idle ones.
        Assert.Equal(["st_accept_error"], maps.Where(m => m.Value.Type is BpfMapTypeHash or BpfMapTypePercpuHash).Select(m => m.Key));
        Assert.All(maps.Values.Where(m => m.Type is BpfMapTypeLruHash or BpfMapTypeLruPercpuHash), m => Assert.InRange(m.MaxEntries, 1, 65536));
    }

    /// <summary>
    /// Processes killed while their threads sleep in accept4(), round after round, where the
    /// calls in flight are in a hash map (kernels without task storage, whose entries go with
    /// their threads): each thread's in-flight entry is there while it waits, and gone once
    /// its process is reaped (the killed call still returns, -ERESTARTSYS, through every attach
    /// mode's exit hook), so killing leaves nothing behind for the LRU to clean up.
    /// </summary>
    [Fact]
    public void ProcessesKilledMidAcceptLeaveNoEntries()
    {
        const int rounds = 20, threads = 4;
        using var pipeline = new KernelPipeline(olderKernelPaths: true);
        int calls = pipeline.Source.MapFd("st_accept_calls");
        for (int round = 0; round < rounds; round++)
        {
            using var blocked = FdRaceWorkload.StartBlocked(threads);
            var keys = blocked.Tids.Select(tid => ((ulong)(uint)blocked.Pid << 32) | (uint)tid).ToList();
            Assert.Equal(threads, keys.Count(key => IsInFlight(calls, key)));
            blocked.Kill();
            Assert.Equal(0, keys.Count(key => IsInFlight(calls, key)));
        }
    }

    /// <summary>Whether st_accept_calls holds an entry for this pid_tgid.</summary>
    private static unsafe bool IsInFlight(int mapFd, ulong pidTgid)
    {
        byte* value = stackalloc byte[64];
        int err = SockTrace.Agent.Bpf.Interop.Libbpf.bpf_map_lookup_elem(mapFd, &pidTgid, value);
        Assert.True(err is 0 or -2, $"bpf_map_lookup_elem: {err}");
        return err == 0;
    }

    /// <summary>The maps this process holds fds of, by name: type and max_entries from
    /// /proc/self/fdinfo, the name from bpftool.</summary>
    private static Dictionary<string, (int Type, int MaxEntries)> LoadedMaps()
    {
        var maps = new Dictionary<string, (int, int)>();
        foreach (string info in Directory.EnumerateFiles("/proc/self/fdinfo"))
        {
            Dictionary<string, string> fields;
            try
            {
                fields = File.ReadLines(info).Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
                    .GroupBy(p => p[0].Trim()).ToDictionary(g => g.Key, g => g.First()[1].Trim());
            }
            catch (IOException)
            {
                continue;
            }
            if (!fields.TryGetValue("map_id", out string? id) || !fields.TryGetValue("map_type", out string? type))
                continue;
            string? name = MapName(id);
            if (name is not null && name.StartsWith("st_", StringComparison.Ordinal))
                maps[name] = (int.Parse(type, CultureInfo.InvariantCulture), int.Parse(fields["max_entries"], CultureInfo.InvariantCulture));
        }
        return maps;
    }

    private static string? MapName(string id)
    {
        using var p = Process.Start(new ProcessStartInfo("bpftool", $"map show id {id} --json") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string json = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            return null;
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("name", out var name) ? name.GetString() : null;
    }
}
