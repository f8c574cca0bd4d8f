using System.Globalization;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Returns each kretprobe missed: a kretprobe tracks each call in flight in one of
/// maxactive instances, and a return whose call found none free runs no program at all
/// (weaveworks/tcptracer-bpf#34). The kernel counts those in the probe's nmissed, which
/// is the only place they show. A probe made through tracefs kprobe_events reports it in
/// kprobe_profile (probes_profile_seq_show(), kernel/trace/trace_kprobe.c: name, hits,
/// misses); one made through the kprobe PMU reports it in its BPF link's info
/// (bpf_link_info.perf_event.kprobe.missed, 6.7 and later: bpf_perf_link_fill_kprobe(),
/// kernel/bpf/syscall.c). Older kernels give no count for the latter: no series then.
/// </summary>
internal sealed unsafe class KretprobeMisses
{
    /// <summary>kretprobe programs are named st_krp_* (bpf/*.bpf.c).</summary>
    public const string ProgramPrefix = "st_krp_";

    // struct bpf_link_info (include/uapi/linux/bpf.h): type, id, prog_id, then the union at
    // offset 16; perf_event: type, a hole, then kprobe { func_name, name_len, offset, addr,
    // missed }. The build machine's <linux/bpf.h> (6.1) predates the perf_event member, so
    // no layout test can compile against it: the offsets are spelled out from 6.7's header.
    private const int LinkInfoSize = 128;
    private const uint LinkTypePerfEvent = 7;       // BPF_LINK_TYPE_PERF_EVENT
    private const int PerfEventTypeOffset = 16;
    private const uint PerfEventKprobe = 1;         // BPF_PERF_EVENT_KPROBE
    private const uint PerfEventKretprobe = 2;      // BPF_PERF_EVENT_KRETPROBE
    private const int KprobeMissedOffset = 48;

    private readonly string _profile;
    private readonly List<(string Program, string Event)> _events = [];
    private readonly List<(string Program, BpfLinkHandle Link)> _links = [];

    public KretprobeMisses(string tracefs) => _profile = Path.Combine(tracefs, "kprobe_profile");

    public static bool IsKretprobe(string program) => program.StartsWith(ProgramPrefix, StringComparison.Ordinal);

    /// <summary>A kretprobe created through kprobe_events as <paramref name="eventName"/>.</summary>
    public void AddEvent(string program, string eventName) => _events.Add((program, eventName));

    /// <summary>A kretprobe that libbpf created through the kprobe PMU.</summary>
    public void AddLink(string program, BpfLinkHandle link) => _links.Add((program, link));

    /// <summary>Misses per kretprobe program, where the kernel counts them.</summary>
    public IReadOnlyList<(string Program, ulong Missed)> Read()
    {
        var misses = new List<(string, ulong)>();
        if (_events.Count > 0)
        {
            var profile = ReadProfile();
            foreach (var (program, name) in _events)
                if (profile.TryGetValue(name, out ulong missed))
                    misses.Add((program, missed));
        }
        foreach (var (program, link) in _links)
            if (LinkMissed(link) is { } missed)
                misses.Add((program, missed));
        return misses;
    }

    private Dictionary<string, ulong> ReadProfile()
    {
        var byName = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (string line in File.ReadLines(_profile))
        {
            // "  socktrace_4242_1_st_krp_sys_accept4     1200     3"
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 3 && ulong.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out ulong missed))
                byName[fields[0]] = missed;
        }
        return byName;
    }

    private static ulong? LinkMissed(BpfLinkHandle link)
    {
        bool added = false;
        try
        {
            link.DangerousAddRef(ref added);
            int fd = Interop.Libbpf.bpf_link__fd(link.DangerousGetHandle());
            if (fd < 0)
                return null;
            byte* info = stackalloc byte[LinkInfoSize];
            new Span<byte>(info, LinkInfoSize).Clear();
            uint len = LinkInfoSize;
            // Fails where the link is a bare perf event fd (kernels without BPF perf links).
            if (Interop.Libbpf.bpf_obj_get_info_by_fd(fd, info, &len) < 0 || *(uint*)info != LinkTypePerfEvent)
                return null;
            uint type = *(uint*)(info + PerfEventTypeOffset);
            return type is PerfEventKprobe or PerfEventKretprobe ? *(ulong*)(info + KprobeMissedOffset) : null;
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
        finally
        {
            if (added)
                link.DangerousRelease();
        }
    }
}
