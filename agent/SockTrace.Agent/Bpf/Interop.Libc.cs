using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

internal static unsafe partial class Interop
{
    internal static partial class Libc
    {
        private const string Library = "libc";

        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int mount(string source, string target, string fstype, nuint flags, nint data);

        /// <summary>vsnprintf(3): formats libbpf's printf-style log lines. On x86-64 and arm64
        /// a va_list parameter is passed as a pointer, so it can be handed on as received.</summary>
        [LibraryImport(Library)]
        internal static partial int vsnprintf(byte* buffer, nuint size, byte* format, nint args);

        [LibraryImport(Library)]
        internal static partial uint geteuid();

        /// <summary>malloc_trim(3): hands the C heap's free pages back to the kernel.</summary>
        [LibraryImport(Library)]
        internal static partial int malloc_trim(nuint pad);

        internal const int M_MMAP_THRESHOLD = -3; // mallopt(3), malloc.h

        /// <summary>mallopt(3): returns 1 on success.</summary>
        [LibraryImport(Library)]
        internal static partial int mallopt(int param, int value);

        [LibraryImport(Library, SetLastError = true)]
        internal static partial int close(int fd);

        /// <summary>perf_event_open(2) has no libc wrapper; syscall(2) with integer arguments only.</summary>
        [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
        internal static partial int perf_event_open(nint number, PerfEventAttr* attr, nint pid, nint cpu, nint groupFd, nint flags);

        internal static nint PerfEventOpenNumber => System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture switch
        {
            System.Runtime.InteropServices.Architecture.X64 => 298,
            System.Runtime.InteropServices.Architecture.Arm64 => 241,
            var other => throw new PlatformNotSupportedException($"perf_event_open syscall number for {other}"),
        };

        /// <summary>The leading fields of struct perf_event_attr (PERF_ATTR_SIZE_VER7 = 128 bytes).</summary>
        [StructLayout(LayoutKind.Explicit, Size = 128)]
        internal struct PerfEventAttr
        {
            [FieldOffset(0)] public uint Type;
            [FieldOffset(4)] public uint Size;
            [FieldOffset(8)] public ulong Config;
            [FieldOffset(16)] public ulong SamplePeriod;
            [FieldOffset(48)] public uint WakeupEvents;
        }

        internal const uint PerfTypeTracepoint = 2;
        internal const nint PerfFlagFdCloexec = 8;
    }
}
