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
    }
}
