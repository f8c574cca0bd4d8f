using SockTrace.Agent.Events;
using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Bpf;

/// <summary>Whether something works on this kernel, and the evidence either way.</summary>
public readonly record struct Support(bool Available, string Detail);

/// <summary>
/// What the running kernel allows, measured rather than guessed from its version: the
/// kprobe PMU and kprobe_events are looked up, each kernel function where its mode looks it
/// up (<see cref="KernelFunctions"/>), each tracepoint in tracefs, and fentry is tried by
/// loading the programs.
/// </summary>
public sealed partial class KernelFeatures
{
    private const string KprobePmu = "/sys/bus/event_source/devices/kprobe";
    private const int Eperm = 1;
    private readonly Dictionary<(Hook, AttachMode), Support> _cache = [];
    private readonly Dictionary<(Hook, AttachMode), Support> _loaded = [];
    private readonly HashSet<string> _btfFunctions;
    private readonly Lazy<HashSet<string>> _kallsymsFunctions;
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
        var wanted = WantedFunctions;
        _btfFunctions = KernelFunctions.InBtf(wanted);
        _kallsymsFunctions = new(() => KernelFunctions.InKallsyms(wanted));
        Casts = _btfFunctions.Contains(CastKfunc);
        RunTimeAllocatedMaps = _btfFunctions.Contains(MemAllocFunction);
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

    /// <summary>Not measured under the lock: <see cref="LoadSideBySide"/> loads two modes at once.</summary>
    public Support Supports(Hook hook, AttachMode mode)
    {
        lock (_cache)
        {
            if (_cache.TryGetValue((hook, mode), out var known))
                return known;
        }
        var support = Measure(hook, mode);
        lock (_cache)
            return _cache.TryAdd((hook, mode), support) ? support : _cache[(hook, mode)];
    }

    /// <summary>
    /// Loads, side by side, the objects that planning <paramref name="hooks"/> will load one
    /// after the other: all hooks' fentry programs, and the tracepoint programs that must be
    /// loaded to be known. Neither depends on the other, and each is tens of milliseconds
    /// before the first scrape (BENCHMARKS.md, "Footprint"). Where kprobes exist, kallsyms is
    /// read beside them.
    /// </summary>
    public void LoadSideBySide(IEnumerable<Hook> hooks)
    {
        var work = new List<Action>();
        foreach (var mode in new[] { AttachMode.Fentry, AttachMode.Tracepoint })
        {
            if (hooks.FirstOrDefault(h => IsLoadCandidate(h, mode)) is { } hook)
                work.Add(() => Loaded(hook, mode, ProgramsFor(hook, mode)));
        }
        if (Kprobes.Available && hooks.Any(h => h.Programs.ContainsKey(AttachMode.Kprobe)))
            work.Add(() => _ = _kallsymsFunctions.Value);
        if (work.Count < 2)
            return;
        var others = work.Skip(1).Select(Task.Run).ToArray();
        work[0]();
        Task.WaitAll(others);
    }

    /// <summary>Whether /proc/kallsyms was read (only where kprobes exist).</summary>
    internal bool ReadKallsyms => _kallsymsFunctions.IsValueCreated;

    /// <summary>Every kernel function the hooks name, and the kfuncs and functions that tell
    /// this kernel's features.</summary>
    internal static IReadOnlySet<string> WantedFunctions => FunctionsOf(Hooks.All, CastKfunc, MemAllocFunction);

    private HashSet<string> Functions(AttachMode mode) => mode == AttachMode.Kprobe ? _kallsymsFunctions.Value : _btfFunctions;

    /// <summary>Whether <paramref name="hook"/>'s programs of <paramref name="mode"/> go into the
    /// one object that tells, for every hook, whether they load (<see cref="Loaded"/>).</summary>
    private bool IsLoadCandidate(Hook hook, AttachMode mode)
    {
        if (!hook.Programs.ContainsKey(mode) || (mode == AttachMode.Tracepoint && !hook.LoadProbe) || !Hooks.All.Contains(hook))
            return false;
        var programs = ProgramsFor(hook, mode);
        return programs.Length > 0 && programs.All(p => p.KernelFunction is null || Functions(mode).Contains(p.KernelFunction))
            && (mode != AttachMode.Tracepoint || programs.All(p => Directory.Exists(Path.Combine(Tracefs, "events", p.Tracepoint!))));
    }

    /// <summary>The programs of <paramref name="hook"/> in <paramref name="mode"/> that this
    /// kernel can take: all but the optional ones whose function it does not have.</summary>
    public HookProgram[] ProgramsFor(Hook hook, AttachMode mode)
    {
        if (!hook.Programs.TryGetValue(mode, out var programs))
            return [];
        var functions = Functions(mode);
        return [.. programs.Where(p => (!p.Optional || (p.KernelFunction is { } f ? functions.Contains(f) : Directory.Exists(Path.Combine(Tracefs, "events", p.Tracepoint!))))
            && (p.When is null || functions.Contains(p.When)) && (p.Unless is null || !functions.Contains(p.Unless)))];
    }

    private Support Measure(Hook hook, AttachMode mode)
    {
        if (!hook.Programs.ContainsKey(mode))
            return new(false, $"hook {hook.Name} has no {mode.Name()} programs");
        // Before the functions are looked up: without kprobes, /proc/kallsyms is never read.
        if (mode == AttachMode.Kprobe && !Kprobes.Available)
            return Kprobes;
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
        var absent = programs.Select(p => p.KernelFunction!).Distinct().Where(f => !Functions(mode).Contains(f)).ToList();
        if (programs.Length == 0)
            absent = [.. hook.Programs[mode].Select(p => p.KernelFunction!).Distinct()];
        if (absent.Count > 0)
            return new(false, $"kernel function {string.Join(", ", absent)} not found in {(mode == AttachMode.Kprobe ? "/proc/kallsyms" : "the kernel's BTF")} (inlined or renamed in {Release})");
        if (mode == AttachMode.Kprobe)
            return new(true, Kprobes.Detail);
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
        lock (_loaded)
        {
            if (_loaded.TryGetValue((hook, mode), out var known))
                return known;
        }
        if (!Hooks.All.Contains(hook))
            return LibbpfLog.Probing(() => TryLoad([(hook, programs)], mode, out _, out _));
        var verdicts = new Dictionary<Hook, Support>();
        var pending = Hooks.All.Where(h => IsLoadCandidate(h, mode)).Select(h => (Hook: h, Programs: ProgramsFor(h, mode))).ToList();
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
                    verdicts[c.Hook] = support;
                if (errno == Eperm && mode == AttachMode.Fentry)
                    _tracingRefused = support;
                break;
            }
            // The program libbpf named, or, unnamed, the first hook's: it is tried alone next.
            var culprit = pending.FirstOrDefault(c => c.Programs.Any(p => p.Name == failed));
            if (culprit.Hook is null)
                culprit = pending[0];
            verdicts[culprit.Hook] = LibbpfLog.Probing(() => TryLoad([culprit], mode, out _, out _));
            pending.Remove(culprit);
        }
        lock (_loaded)
        {
            foreach (var (h, verdict) in verdicts)
                _loaded[(h, mode)] = verdict;
        }
        return verdicts.TryGetValue(hook, out var result) ? result : new(false, $"loading {mode.Name()} programs failed");
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

    private static HashSet<string> FunctionsOf(IEnumerable<Hook> hooks, params string[] more)
    {
        var programs = hooks.SelectMany(h => h.Programs.Values).SelectMany(p => p).ToList();
        return programs.Select(p => p.KernelFunction).Concat(programs.Select(p => p.When)).Concat(programs.Select(p => p.Unless))
            .OfType<string>().Concat(more).ToHashSet();
    }

    /// <summary>libbpf's line for the program that failed ("prog 'NAME': BPF program load failed: ..."
    /// or "... failed to load: ..."), from its log.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"prog '(\w+)': (?:BPF program load failed|failed to load|relo #\d+: )")]
    private static partial System.Text.RegularExpressions.Regex FailedProgram();
}
