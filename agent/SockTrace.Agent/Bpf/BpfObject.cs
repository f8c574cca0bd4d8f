using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// One BPF object through its lifecycle: <see cref="Open"/> parses the ELF, the configure
/// calls (<see cref="SetConfig{T}"/>, <see cref="SetMaxEntries"/>, <see cref="SetAutoload"/>)
/// are valid until <see cref="Load"/>, and <see cref="Attach"/> is valid after it.
/// </summary>
internal sealed unsafe class BpfObject : IDisposable
{
    private readonly BpfObjectHandle _handle;
    private bool _loaded;

    private BpfObject(BpfObjectHandle handle, string name)
    {
        _handle = handle;
        ObjectName = name;
    }

    public string ObjectName { get; }

    /// <summary>The object every BPF feature file is linked into (bpf/Makefile).</summary>
    public const string Name = "socktrace";

    /// <summary>Opens an object embedded in this assembly as "bpf/NAME.bpf.o".</summary>
    public static BpfObject OpenEmbedded(string name)
    {
        string resource = $"bpf/{name}.bpf.o";
        // Embedded resources are mapped with the assembly image and never move, so
        // libbpf may parse the ELF in place for as long as the process lives.
        var stream = typeof(BpfObject).Assembly.GetManifestResourceStream(resource) as UnmanagedMemoryStream
            ?? throw new InvalidOperationException($"BPF object {resource} is not embedded in {typeof(BpfObject).Assembly.GetName().Name}");
        return Open(name, stream.PositionPointer, (nuint)stream.Length);
    }

    private static BpfObject Open(string name, byte* elf, nuint size)
    {
        byte[] objectName = [.. System.Text.Encoding.UTF8.GetBytes(name), 0];
        fixed (byte* namePtr = objectName)
        {
            var opts = (Interop.Libbpf.BpfObjectOpenOpts*)NativeMemory.AllocZeroed((nuint)sizeof(Interop.Libbpf.BpfObjectOpenOpts));
            opts->sz = (nuint)sizeof(Interop.Libbpf.BpfObjectOpenOpts);
            opts->object_name = namePtr;
            var handle = new BpfObjectHandle();
            nint obj = LibbpfLog.Capture(() => Interop.Libbpf.bpf_object__open_mem(elf, size, opts), out string log);
            NativeMemory.Free(opts);
            if (obj == 0)
                throw new BpfException("bpf_object__open_mem", Marshal.GetLastPInvokeError(), name, log);
            handle.Initialize(obj);
            return new BpfObject(handle, name);
        }
    }

    public IEnumerable<string> ProgramNames
    {
        get
        {
            var names = new List<string>();
            for (nint p = Interop.Libbpf.bpf_object__next_program(_handle, 0); p != 0; p = Interop.Libbpf.bpf_object__next_program(_handle, p))
                names.Add(Marshal.PtrToStringUTF8((nint)Interop.Libbpf.bpf_program__name(p))!);
            return names;
        }
    }

    /// <summary>Writes the object's read-only configuration: its only .rodata global, at offset 0
    /// (the static linker may leave room after it for the copies it merged).</summary>
    public void SetConfig<T>(in T config) where T : unmanaged
    {
        EnsureNotLoaded();
        nint map = FindMap(".rodata");
        nuint size;
        void* data = Interop.Libbpf.bpf_map__initial_value(map, &size);
        if (data == null || size < (nuint)sizeof(T))
            throw new InvalidOperationException($"{ObjectName}: .rodata is {size} bytes, too small for {typeof(T).Name} ({sizeof(T)} bytes)");
        Unsafe.Write(data, config);
    }

    public void SetMaxEntries(string mapName, uint maxEntries)
    {
        EnsureNotLoaded();
        int err = Interop.Libbpf.bpf_map__set_max_entries(FindMap(mapName), maxEntries);
        if (err < 0)
            throw new BpfException("bpf_map__set_max_entries", -err, $"{ObjectName}/{mapName} = {maxEntries}");
    }

    /// <summary>
    /// Sizes every hash, array and ring buffer map at its smallest, for a load that only asks
    /// whether the programs verify: the kernel allocates a map's entries when it is created
    /// (preallocated hashes, LRU free lists, per-CPU values, the ring's pages) and frees them
    /// after an RCU grace period, which is most of what a probe's load costs, and the verdict
    /// does not depend on the sizes. Global data (internal maps) and storage maps keep theirs.
    /// </summary>
    public void ShrinkMapsForProbe()
    {
        EnsureNotLoaded();
        for (nint map = Interop.Libbpf.bpf_object__next_map(_handle, 0); map != 0; map = Interop.Libbpf.bpf_object__next_map(_handle, map))
        {
            if (Interop.Libbpf.bpf_map__is_internal(map))
                continue;
            uint entries = Interop.Libbpf.bpf_map__type(map) switch
            {
                MapTypeHash or MapTypeArray or MapTypePerCpuHash or MapTypePerCpuArray or MapTypeLruHash or MapTypeLruPerCpuHash => 1u,
                MapTypeRingBuf => (uint)Environment.SystemPageSize,
                _ => 0u,
            };
            if (entries != 0)
                Interop.Libbpf.bpf_map__set_max_entries(map, entries);
        }
    }

    // enum bpf_map_type (include/uapi/linux/bpf.h)
    private const uint MapTypeHash = 1, MapTypeArray = 2, MapTypePerCpuHash = 5, MapTypePerCpuArray = 6,
        MapTypeLruHash = 9, MapTypeLruPerCpuHash = 10, MapTypeRingBuf = 27;

    public void SetMapFlags(string mapName, uint flags)
    {
        EnsureNotLoaded();
        int err = Interop.Libbpf.bpf_map__set_map_flags(FindMap(mapName), flags);
        if (err < 0)
            throw new BpfException("bpf_map__set_map_flags", -err, $"{ObjectName}/{mapName} = {flags}");
    }

    /// <summary>Makes a map one of another type before load: the one kernels without its own
    /// type (task storage before 5.11) create for programs whose use of it is never reached.</summary>
    public void ReplaceMap(string mapName, uint type, uint maxEntries)
    {
        EnsureNotLoaded();
        nint map = FindMap(mapName);
        int err = Interop.Libbpf.bpf_map__set_type(map, type);
        if (err == 0)
            err = Interop.Libbpf.bpf_map__set_map_flags(map, 0);
        if (err == 0)
            err = Interop.Libbpf.bpf_map__set_max_entries(map, maxEntries);
        if (err < 0)
            throw new BpfException("bpf_map__set_type", -err, $"{ObjectName}/{mapName}");
    }

    public void SetAutoload(string programName, bool autoload)
    {
        EnsureNotLoaded();
        int err = Interop.Libbpf.bpf_program__set_autoload(FindProgram(programName), autoload);
        if (err < 0)
            throw new BpfException("bpf_program__set_autoload", -err, $"{ObjectName}/{programName}");
    }

    /// <summary>Relocates, verifies and loads every autoload program and creates the maps.</summary>
    public void Load()
    {
        EnsureNotLoaded();
        int err = LibbpfLog.Capture(() => Interop.Libbpf.bpf_object__load(_handle), out string log);
        if (err < 0)
            throw new BpfException("bpf_object__load", -err, ObjectName, log);
        _loaded = true;
    }

    /// <summary>Attaches a program the way its SEC() name says (tracepoint, tp_btf, kprobe, fentry...).</summary>
    public BpfLinkHandle Attach(string programName)
    {
        if (!_loaded)
            throw new InvalidOperationException($"{ObjectName}: attach before load");
        nint prog = FindProgram(programName);
        nint link = LibbpfLog.Capture(() => Interop.Libbpf.bpf_program__attach(prog), out string log);
        if (link == 0)
            throw new BpfException("bpf_program__attach", Marshal.GetLastPInvokeError(), $"{ObjectName}/{programName}", log);
        return new BpfLinkHandle(link, _handle);
    }

    /// <summary>Attaches a tracepoint program to <paramref name="tracepoint"/> ("category/name"),
    /// whatever its SEC() name says, or a kprobe program to <paramref name="function"/>.</summary>
    public BpfLinkHandle AttachTo(string programName, string? tracepoint = null, string? function = null, bool retprobe = false)
    {
        if (!_loaded)
            throw new InvalidOperationException($"{ObjectName}: attach before load");
        nint prog = FindProgram(programName);
        string[] parts = tracepoint?.Split('/', 2) ?? [];
        nint link = LibbpfLog.Capture(() => tracepoint is not null
            ? Interop.Libbpf.bpf_program__attach_tracepoint(prog, parts[0], parts[1])
            : Interop.Libbpf.bpf_program__attach_kprobe(prog, retprobe, function!), out string log);
        if (link == 0)
            throw new BpfException(tracepoint is not null ? "bpf_program__attach_tracepoint" : "bpf_program__attach_kprobe", Marshal.GetLastPInvokeError(),
                $"{ObjectName}/{programName} on {tracepoint ?? function}", log);
        return new BpfLinkHandle(link, _handle);
    }

    /// <summary>Attaches a program to an open perf event; the link owns and closes <paramref name="perfEventFd"/>.</summary>
    public BpfLinkHandle AttachPerfEvent(string programName, int perfEventFd, Action? afterDetach = null)
    {
        if (!_loaded)
            throw new InvalidOperationException($"{ObjectName}: attach before load");
        nint prog = FindProgram(programName);
        nint link = LibbpfLog.Capture(() => Interop.Libbpf.bpf_program__attach_perf_event(prog, perfEventFd), out string log);
        if (link == 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Interop.Libc.close(perfEventFd);
            throw new BpfException("bpf_program__attach_perf_event", errno, $"{ObjectName}/{programName}", log);
        }
        return new BpfLinkHandle(link, _handle, afterDetach);
    }

    /// <summary>The map's fd, owned by this object.</summary>
    public int MapFd(string mapName)
    {
        int fd = Interop.Libbpf.bpf_map__fd(FindMap(mapName));
        if (fd < 0)
            throw new BpfException("bpf_map__fd", -fd, $"{ObjectName}/{mapName}");
        return fd;
    }

    /// <summary>
    /// How many times the kernel skipped the loaded program because a BPF program was already
    /// running on that CPU (bpf_prog_info.recursion_misses, 5.12 and later; include/uapi/linux/bpf.h).
    /// Trampoline programs (fentry, tp_btf) count every skip; whether a kprobe program's skips
    /// are counted depends on the kernel.
    /// </summary>
    public ulong RecursionMisses(string programName)
    {
        int fd = Interop.Libbpf.bpf_program__fd(FindProgram(programName));
        if (fd < 0)
            throw new BpfException("bpf_program__fd", -fd, $"{ObjectName}/{programName}");
        // struct bpf_prog_info as of 6.1: 232 bytes, recursion_misses at offset 208 (checked
        // against <linux/bpf.h> by RecordLayoutTests). A shorter kernel struct fills less.
        byte* info = stackalloc byte[BpfProgInfoSize];
        new Span<byte>(info, BpfProgInfoSize).Clear();
        uint len = BpfProgInfoSize;
        int err = Interop.Libbpf.bpf_obj_get_info_by_fd(fd, info, &len);
        if (err < 0)
            throw new BpfException("bpf_obj_get_info_by_fd", -err, $"{ObjectName}/{programName}");
        return len >= RecursionMissesOffset + sizeof(ulong) ? *(ulong*)(info + RecursionMissesOffset) : 0;
    }

    internal const int BpfProgInfoSize = 232;
    internal const int RecursionMissesOffset = 208;

    private nint FindMap(string mapName)
    {
        nint map = Interop.Libbpf.bpf_object__find_map_by_name(_handle, mapName);
        return map != 0 ? map : throw new InvalidOperationException($"{ObjectName}: no map named {mapName}");
    }

    private nint FindProgram(string programName)
    {
        nint prog = Interop.Libbpf.bpf_object__find_program_by_name(_handle, programName);
        return prog != 0 ? prog : throw new InvalidOperationException($"{ObjectName}: no program named {programName}");
    }

    private void EnsureNotLoaded()
    {
        if (_loaded)
            throw new InvalidOperationException($"{ObjectName}: already loaded");
    }

    /// <summary>Closes the object; links still alive keep it open until they are destroyed.</summary>
    public void Dispose() => _handle.Dispose();
}
