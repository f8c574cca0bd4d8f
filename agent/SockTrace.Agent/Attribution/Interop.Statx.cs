using System.Runtime.InteropServices;

namespace SockTrace.Agent.Attribution;

internal static unsafe partial class Interop
{
    internal static partial class Libc
    {
        private const string Library = "libc";

        internal const uint StatxIno = 0x100;
        internal const int AtSymlinkNoFollow = 0x100;
        private const int AtFdCwd = -100;

        /// <summary>statx(2), glibc 2.28 and later. .NET exposes no inode number.</summary>
        [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int statx(int dirfd, string path, int flags, uint mask, Statx* buffer);

        /// <summary>The inode number of <paramref name="path"/>, or null when it is gone.</summary>
        internal static ulong? Inode(string path)
        {
            Statx buffer;
            if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxIno, &buffer) != 0 || (buffer.Mask & StatxIno) == 0)
                return null;
            return buffer.Ino;
        }

        /// <summary>The leading fields of struct statx (include/uapi/linux/stat.h); 256 bytes in all.</summary>
        [StructLayout(LayoutKind.Explicit, Size = 256)]
        private struct Statx
        {
            [FieldOffset(0)] public uint Mask;
            [FieldOffset(32)] public ulong Ino;
        }
    }
}
