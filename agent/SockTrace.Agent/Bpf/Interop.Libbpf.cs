using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

/// <summary>libbpf's C API, declared as libbpf.h declares it (libbpf 1.x semantics:
/// pointer-returning calls return NULL and set errno, int-returning calls return -errno).</summary>
internal static unsafe partial class Interop
{
    internal static partial class Libbpf
    {
        internal const string Library = "libbpf.so.1";

        /// <summary>struct bpf_object_open_opts (libbpf.h); sz must hold the size we pass.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfObjectOpenOpts
        {
            public nuint sz;
            public byte* object_name;
            public byte relaxed_maps;
            public byte* pin_root_path;
            public uint attach_prog_fd_removed;
            public byte* kconfig;
            public byte* btf_custom_path;
            public byte* kernel_log_buf;
            public nuint kernel_log_size;
            public uint kernel_log_level;
        }

        [LibraryImport(Library, SetLastError = true)]
        internal static partial nint bpf_object__open_mem(void* objBuf, nuint objBufSize, BpfObjectOpenOpts* opts);

        [LibraryImport(Library)]
        internal static partial int bpf_object__load(BpfObjectHandle obj);

        [LibraryImport(Library)]
        internal static partial void bpf_object__close(nint obj);

        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial nint bpf_object__find_program_by_name(BpfObjectHandle obj, string name);

        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial nint bpf_object__find_map_by_name(BpfObjectHandle obj, string name);

        [LibraryImport(Library)]
        internal static partial nint bpf_object__next_program(BpfObjectHandle obj, nint prev);

        [LibraryImport(Library)]
        internal static partial byte* bpf_program__name(nint prog);

        [LibraryImport(Library)]
        internal static partial int bpf_program__set_autoload(nint prog, [MarshalAs(UnmanagedType.U1)] bool autoload);

        [LibraryImport(Library, SetLastError = true)]
        internal static partial nint bpf_program__attach(nint prog);

        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial nint bpf_program__attach_tracepoint(nint prog, string category, string name);

        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial nint bpf_program__attach_kprobe(nint prog, [MarshalAs(UnmanagedType.U1)] bool retprobe, string function);

        [LibraryImport(Library, SetLastError = true)]
        internal static partial nint bpf_program__attach_perf_event(nint prog, int pfd);

        [LibraryImport(Library)]
        internal static partial int bpf_link__destroy(nint link);

        [LibraryImport(Library)]
        internal static partial int bpf_link__fd(nint link);

        [LibraryImport(Library)]
        internal static partial int bpf_map__fd(nint map);

        [LibraryImport(Library)]
        internal static partial int bpf_program__fd(nint prog);

        /// <summary>libbpf 1.1 (Debian 12) has this, not bpf_prog_get_info_by_fd().</summary>
        [LibraryImport(Library)]
        internal static partial int bpf_obj_get_info_by_fd(int fd, void* info, uint* infoLen);

        [LibraryImport(Library)]
        internal static partial int bpf_map__set_max_entries(nint map, uint maxEntries);

        [LibraryImport(Library)]
        internal static partial nint bpf_object__next_map(BpfObjectHandle obj, nint prev);

        [LibraryImport(Library)]
        internal static partial uint bpf_map__type(nint map);

        [LibraryImport(Library)]
        [return: MarshalAs(UnmanagedType.U1)]
        internal static partial bool bpf_map__is_internal(nint map);

        [LibraryImport(Library)]
        internal static partial void* bpf_map__initial_value(nint map, nuint* size);

        [LibraryImport(Library)]
        internal static partial int bpf_map__set_type(nint map, uint type);

        [LibraryImport(Library)]
        internal static partial int bpf_map__set_map_flags(nint map, uint flags);

        /// <summary>1 when the kernel supports the map type, 0 when not, a negative errno on failure.</summary>
        [LibraryImport(Library)]
        internal static partial int libbpf_probe_bpf_map_type(uint mapType, void* opts);

        /// <summary>1 when programs of the type may call the helper, 0 when not, a negative errno on failure.</summary>
        [LibraryImport(Library)]
        internal static partial int libbpf_probe_bpf_helper(uint progType, uint helperId, void* opts);

        [LibraryImport(Library)]
        internal static partial int bpf_map_lookup_elem(int fd, void* key, void* value);

        [LibraryImport(Library)]
        internal static partial int bpf_map_delete_elem(int fd, void* key);

        /// <summary>The key after <paramref name="key"/> (the first when it is null); -ENOENT after the last.</summary>
        [LibraryImport(Library)]
        internal static partial int bpf_map_get_next_key(int fd, void* key, void* nextKey);

        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial nint btf__parse(string path, nint* btfExt);

        /// <summary>The id of the type of that name and kind; a negative errno (-ENOENT) when there is none.</summary>
        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int btf__find_by_name_kind(nint btf, string name, uint kind);

        [LibraryImport(Library)]
        internal static partial void btf__free(nint btf);

        [LibraryImport(Library)]
        internal static partial int libbpf_num_possible_cpus();

        [LibraryImport(Library)]
        internal static partial nint libbpf_set_print(delegate* unmanaged<int, byte*, nint, int> fn);

        [LibraryImport(Library, SetLastError = true)]
        internal static partial nint ring_buffer__new(int mapFd, delegate* unmanaged<nint, void*, nuint, int> sampleCb, nint ctx, nint opts);

        [LibraryImport(Library)]
        internal static partial int ring_buffer__poll(RingBufferHandle rb, int timeoutMs);

        [LibraryImport(Library)]
        internal static partial int ring_buffer__consume(RingBufferHandle rb);

        [LibraryImport(Library)]
        internal static partial void ring_buffer__free(nint rb);
    }
}
