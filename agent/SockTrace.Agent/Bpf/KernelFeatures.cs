using SockTrace.Agent.Events;
using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Bpf;

/// <summary>Whether something works on this kernel, and the evidence either way.</summary>
public readonly record struct Support(bool Available, string Detail);

/// <summary>
/// What the running kernel allows, measured rather than guessed from its version: the
/// kprobe PMU and kprobe_events are looked up, each kernel function is looked up in
/// kallsyms, each tracepoint in tracefs, and fentry is tried by loading the programs.
/// </summary>
public sealed partial class KernelFeatures
{
    private const string KprobePmu = "/sys/bus/event_source/devices/kprobe";
    private const int Eperm = 1;
    private readonly Dictionary<(Hook, AttachMode), Support> _cache = [];
    private readonly Dictionary<(Hook, AttachMode), Support> _loaded = [];
    private readonly HashSet<string> _kernelFunctions;
    /// <summary>Set when the kernel refused a tracing program with EPERM: lockdown or an LSM
    /// refuses the program type, for every hook alike, so the other hooks are not loaded to
    /// hear it again (each load parses the kernel's BTF: tens of milliseconds of start-up).</summary>
    private Support? _tracingRefused;

    private const uint MapTypeTaskStorage = 29;    // BPF_MAP_TYPE_TASK_STORAGE
    private const uint ProgTypeTracepoint = 5;     // BPF_PROG_TYPE_TRACEPOINT
    private const uint HelperTaskPtRegs = 175;     // BPF_FUNC_task_pt_regs
    private const string CastKfunc = "bpf_rdonly_cast";
    // The BPF memory allocator (kernel/bpf/memalloc.c, 6.1), with which the verifier stopped
    // warning (WARN_ONCE, a tainted kernel) about tracing programs using hash maps that are
    // not preallocated, and stopped refusing them on PREEMPT_RT.
    private const string MemAllocFunction = "bpf_mem_alloc_init";

    private KernelFeatures(string tracefs)
    {
        Tracefs = tracefs;
        Release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        KprobeEvents = Path.Combine(tracefs, "kprobe_events");
        bool pmu = Directory.Exists(KprobePmu);
        bool events = File.Exists(KprobeEvents);
        Kprobes = pmu || events
            ? new(true, pmu ? $"kprobe PMU at {KprobePmu}" : $"{KprobeEvents} (no kprobe PMU)")
            : new(false, $"no kprobe PMU ({KprobePmu}) and no {KprobeEvents}: the kernel is built without CONFIG_KPROBES");
        _kernelFunctions = KernelFunctionsOf(Hooks.All, CastKfunc, MemAllocFunction);
        Casts = _kernelFunctions.Contains(CastKfunc);
        RunTimeAllocatedMaps = _kernelFunctions.Contains(MemAllocFunction);
        unsafe
        {
            LocalStorage = Interop.Libbpf.libbpf_probe_bpf_map_type(MapTypeTaskStorage, null) == 1;
            TaskPtRegs = Interop.Libbpf.libbpf_probe_bpf_helper(ProgTypeTracepoint, HelperTaskPtRegs, null) == 1;
        }
    }

    /// <summary>bpf_rdonly_cast() (6.2): the programs read kernel memory by plain loads.</summary>
    public bool Casts { get; }

    /// <summary>Task and socket storage for tracing programs (5.11).</summary>
    public bool LocalStorage { get; }

    /// <summary>bpf_task_pt_regs() (5.15) for tracepoint programs.</summary>
    public bool TaskPtRegs { get; }

    /// <summary>Tracing programs may use hash maps allocated as keys arrive (6.1): before, the
    /// failed-accept counts are preallocated.</summary>
    public bool RunTimeAllocatedMaps { get; }

    /// <summary>What the programs are told of this kernel (st_config.flags).</summary>
    public BpfConfigFlags Flags => (Casts ? BpfConfigFlags.Casts : 0) | (LocalStorage ? BpfConfigFlags.TaskStorage : 0);

    /// <summary>The flags that say what the kernel offers (the others say what is attached).</summary>
    public const BpfConfigFlags KernelFlags = BpfConfigFlags.Casts | BpfConfigFlags.TaskStorage;

    private const uint MapTypeArray = 2;          // BPF_MAP_TYPE_ARRAY
    private static readonly string[] TaskStorageMaps = ["st_accept_threads", "st_close_tables"];
    private const string AcceptCallsMap = "st_accept_calls";
    private const string AcceptErrorsMap = "st_accept_errors";

    /// <summary>
    /// Configures an opened object for this kernel before it is loaded: the programs learn
    /// what it offers (<paramref name="config"/>'s flags gain <see cref="Flags"/>), a kernel
    /// without task storage gets a one-slot array in place of each task storage map (its
    /// programs never reach them), and one with it a one-slot in-flight hash, which only
    /// older kernels use; before 6.1 the failed-accept counts are preallocated.
    /// </summary>
    /// <param name="features">The kernel features the programs may use (all that it has, unless
    /// a test takes the older kernels' paths here).</param>
    internal void Prepare(BpfObject obj, BpfConfig config, BpfConfigFlags features = KernelFlags)
    {
        config.Flags |= Flags & features;
        obj.SetConfig(config);
        if (!RunTimeAllocatedMaps)
            obj.SetMapFlags(AcceptErrorsMap, 0);
        if (config.Flags.HasFlag(BpfConfigFlags.TaskStorage))
        {
            obj.SetMaxEntries(AcceptCallsMap, 1);
            return;
        }
        foreach (string map in TaskStorageMaps)
            obj.ReplaceMap(map, MapTypeArray, 1);
    }

    public string Release { get; }
    public string Tracefs { get; }
    public string KprobeEvents { get; }
    public Support Kprobes { get; }

    /// <summary>Probes the kernel; <see cref="KernelPreflight.Run"/> must have passed.</summary>
    public static KernelFeatures Probe() => new(KernelPreflight.TracefsRoot());

    public Support Fentry => Supports(Hooks.Accept, AttachMode.Fentry);

    /// <summary>Marks a mode of a hook unusable (it attached, but did not fire): planned again,
    /// the hook takes the next one.</summary>
    public void Exclude(Hook hook, AttachMode mode, string why)
    {
        lock (_cache)
            _cache[(hook, mode)] = new(false, why);
    }

    public Support Supports(Hook hook, AttachMode mode)
    {
        lock (_cache)
        {
            if (!_cache.TryGetValue((hook, mode), out var support))
                _cache[(hook, mode)] = support = Measure(hook, mode);
            return support;
        }
    }

    /// <summary>The programs of <paramref name="hook"/> in <paramref name="mode"/> that this
    /// kernel can take: all but the optional ones whose function it does not have.</summary>
    public HookProgram[] ProgramsFor(Hook hook, AttachMode mode) =>
        hook.Programs.TryGetValue(mode, out var programs)
            ? [.. programs.Where(p => (!p.Optional || (p.KernelFunction is { } f ? _kernelFunctions.Contains(f) : Directory.Exists(Path.Combine(Tracefs, "events", p.Tracepoint!))))
                && (p.When is null || _kernelFunctions.Contains(p.When)) && (p.Unless is null || !_kernelFunctions.Contains(p.Unless)))]
            : [];

    /// <summary>Whether the kernel has this function (in /proc/kallsyms).</summary>
    public bool HasFunction(string name) => _kernelFunctions.Contains(name);

    private Support Measure(Hook hook, AttachMode mode)
    {
        if (!hook.Programs.ContainsKey(mode))
            return new(false, $"hook {hook.Name} has no {mode.Name()} programs");
        var programs = ProgramsFor(hook, mode);
        var needs = programs.Aggregate(KernelNeeds.None, (all, p) => all | p.Needs);
        if (needs.HasFlag(KernelNeeds.LocalStorage) && !LocalStorage)
            return new(false, $"{mode.Name()} programs need BPF task and socket storage (Linux 5.11)");
        if (needs.HasFlag(KernelNeeds.TaskPtRegs) && !TaskPtRegs)
            return new(false, $"{mode.Name()} programs need bpf_task_pt_regs() (Linux 5.15)");
        if (mode == AttachMode.Tracepoint)
        {
            var missing = programs.Select(p => p.Tracepoint!).Where(tp => !Directory.Exists(Path.Combine(Tracefs, "events", tp))).ToList();
            if (missing.Count > 0)
                return new(false, $"no tracepoint {string.Join(", ", missing)} in {Tracefs}/events");
            var found = new Support(true, string.Join(", ", programs.Select(p => p.Tracepoint).Distinct()));
            if (!hook.LoadProbe)
                return found;
            var loaded = Loaded(hook, mode, programs);
            return loaded.Available ? found : loaded;
        }
        var absent = programs.Select(p => p.KernelFunction!).Distinct().Where(f => !_kernelFunctions.Contains(f)).ToList();
        if (programs.Length == 0)
            absent = [.. hook.Programs[mode].Select(p => p.KernelFunction!).Distinct()];
        if (absent.Count > 0)
            return new(false, $"kernel function {string.Join(", ", absent)} not found in /proc/kallsyms (inlined or renamed in {Release})");
        if (mode == AttachMode.Kprobe)
            return Kprobes.Available ? new(true, Kprobes.Detail) : Kprobes;
        if (_tracingRefused is { } refused)
            return refused;
        return Loaded(hook, mode, programs);
    }

    /// <summary>
    /// Whether the programs load, for every hook of the agent at once: the first hook asked
    /// about a mode loads all hooks' candidates for it in one object (each load parses the
    /// kernel's BTF, tens of milliseconds), and a program that fails takes its hook out and the
    /// rest load again. EPERM for a tracing program is lockdown or an LSM refusing the type, for
    /// every hook alike. A hook that is not one of the agent's (a test's) is loaded alone.
    /// </summary>
    private Support Loaded(Hook hook, AttachMode mode, HookProgram[] programs)
    {
        if (_loaded.TryGetValue((hook, mode), out var known))
            return known;
        if (!Hooks.All.Contains(hook))
            return LibbpfLog.Probing(() => TryLoad([(hook, programs)], mode, out _, out _));
        var pending = Hooks.All.Where(h => h.Programs.ContainsKey(mode) && (mode != AttachMode.Tracepoint || h.LoadProbe))
            .Select(h => (Hook: h, Programs: ProgramsFor(h, mode)))
            .Where(c => c.Programs.Length > 0 && c.Programs.All(p => p.KernelFunction is null || _kernelFunctions.Contains(p.KernelFunction))
                && (mode != AttachMode.Tracepoint || c.Programs.All(p => Directory.Exists(Path.Combine(Tracefs, "events", p.Tracepoint!)))))
            .ToList();
        if (!pending.Any(c => c.Hook == hook))
            pending.Add((hook, programs));
        while (pending.Count > 0)
        {
            int errno = 0;
            string? failed = null;
            var support = LibbpfLog.Probing(() => TryLoad(pending, mode, out errno, out failed));
            if (support.Available || errno == Eperm || pending.Count == 1)
            {
                foreach (var c in pending)
                    _loaded[(c.Hook, mode)] = support;
                if (errno == Eperm && mode == AttachMode.Fentry)
                    _tracingRefused = support;
                break;
            }
            // The program libbpf named, or, unnamed, the first hook's: it is tried alone next.
            var culprit = pending.FirstOrDefault(c => c.Programs.Any(p => p.Name == failed));
            if (culprit.Hook is null)
                culprit = pending[0];
            _loaded[(culprit.Hook, mode)] = LibbpfLog.Probing(() => TryLoad([culprit], mode, out _, out _));
            pending.Remove(culprit);
        }
        return _loaded.TryGetValue((hook, mode), out var result) ? result : new(false, $"loading {mode.Name()} programs failed");
    }

    /// <summary>fentry needs BTF, a JIT with trampolines, and no lockdown or LSM refusing
    /// them, and a <see cref="Hook.LoadProbe"/> hook's tracepoint programs need what their
    /// kernel's BTF has: the only reliable test is to load the programs.</summary>
    private Support TryLoad(IEnumerable<(Hook Hook, HookProgram[] Programs)> hooks, AttachMode mode, out int errno, out string? failed)
    {
        errno = 0;
        failed = null;
        using var obj = BpfObject.OpenEmbedded(BpfObject.Name);
        Prepare(obj, default);
        obj.ShrinkMapsForProbe();
        var wanted = hooks.SelectMany(h => h.Programs).Select(p => p.Name).ToHashSet();
        foreach (string program in obj.ProgramNames)
            obj.SetAutoload(program, wanted.Contains(program));
        try
        {
            obj.Load();
            return new(true, $"{mode.Name()} programs load");
        }
        catch (BpfException ex)
        {
            errno = ex.Errno;
            failed = FailedProgram().Match(ex.LibbpfLog ?? "") is { Success: true } m ? m.Groups[1].Value : null;
            string hint = ex.Errno == Eperm ? " (kernel lockdown or a BPF LSM refuses tracing programs)"
                : mode == AttachMode.Tracepoint ? " (this kernel's tracepoint arguments or drop reasons differ)" : "";
            return new(false, $"loading {mode.Name()} programs failed: {ErrnoNames.Describe(ex.Errno)}{hint}");
        }
    }

    private static HashSet<string> KernelFunctionsOf(IEnumerable<Hook> hooks, params string[] more)
    {
        var programs = hooks.SelectMany(h => h.Programs.Values).SelectMany(p => p).ToList();
        var wanted = programs.Select(p => p.KernelFunction).Concat(programs.Select(p => p.When)).Concat(programs.Select(p => p.Unless))
            .OfType<string>().Concat(more).ToHashSet();
        var lookup = wanted.GetAlternateLookup<ReadOnlySpan<char>>();
        var found = new HashSet<string>();
        // One large read at a time: the kernel formats /proc/kallsyms (over 100,000 lines) per
        // read call, and in 4 KiB reads that took 300 ms of the agent's start-up.
        using var file = new FileStream("/proc/kallsyms", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1 << 20);
        using var reader = new StreamReader(file, System.Text.Encoding.ASCII, false, 1 << 20);
        var buffer = new char[1 << 20];
        int kept = 0, read;
        while ((read = reader.Read(buffer, kept, buffer.Length - kept)) > 0)
        {
            var text = buffer.AsSpan(0, kept + read);
            int end;
            while ((end = text.IndexOf('\n')) >= 0)
            {
                // "ffffffff81e80410 T __sys_accept4": text symbols are T (global) or t (static).
                var line = text[..end];
                text = text[(end + 1)..];
                int second = line.IndexOf(' ');
                if (second < 0 || second + 3 >= line.Length || (line[second + 1] | 0x20) != 't')
                    continue;
                var name = line[(second + 3)..];
                // Module symbols end in "\t[module]".
                int tab = name.IndexOf('\t');
                if (tab >= 0)
                    name = name[..tab];
                if (lookup.TryGetValue(name, out string? match))
                    found.Add(match);
            }
            text.CopyTo(buffer);
            kept = text.Length;
        }
        return found;
    }

    /// <summary>libbpf's line for the program that failed ("prog 'NAME': BPF program load failed: ..."
    /// or "... failed to load: ..."), from its log.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"prog '(\w+)': (?:BPF program load failed|failed to load|relo #\d+: )")]
    private static partial System.Text.RegularExpressions.Regex FailedProgram();
}
