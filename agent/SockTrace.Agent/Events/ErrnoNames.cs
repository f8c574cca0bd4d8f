using System.Runtime.InteropServices;

namespace SockTrace.Agent.Events;

/// <summary>Linux errno numbers as lower-case names, the form the `errno` metric label takes.</summary>
public static class ErrnoNames
{
    // x86-64 and arm64 share the generic errno numbering (include/uapi/asm-generic/errno*.h).
    private static readonly string[] Names = BuildNames();

    private static string[] BuildNames()
    {
        var names = new string[530];
        void Set(int n, string s) => names[n] = s;
        Set(1, "eperm"); Set(2, "enoent"); Set(3, "esrch"); Set(4, "eintr"); Set(5, "eio");
        Set(9, "ebadf"); Set(11, "eagain"); Set(12, "enomem"); Set(13, "eacces");
        Set(14, "efault"); Set(16, "ebusy"); Set(17, "eexist"); Set(22, "einval");
        Set(23, "enfile"); Set(24, "emfile"); Set(28, "enospc"); Set(71, "eproto");
        Set(88, "enotsock"); Set(95, "eopnotsupp"); Set(103, "econnaborted");
        Set(105, "enobufs"); Set(110, "etimedout"); Set(125, "ecanceled"); Set(524, "enotsupp");
        // Kernel-internal restart codes: user space never sees them, but a syscall-exit
        // hook does when a signal interrupts a blocking accept (include/linux/errno.h).
        Set(512, "erestartsys"); Set(513, "erestartnointr"); Set(514, "erestartnohand");
        Set(516, "erestart_restartblock");
        for (int i = 0; i < names.Length; i++)
            names[i] ??= "errno_" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return names;
    }

    /// <summary>Name for a positive errno; values outside the kernel's range fold into one label.</summary>
    public static string Name(int errno) =>
        (uint)errno < (uint)Names.Length ? Names[errno] : "errno_other";

    /// <summary>"EPERM (Operation not permitted)", for error messages.</summary>
    public static string Describe(int errno) =>
        $"{Name(errno).ToUpperInvariant()} ({Marshal.GetPInvokeErrorMessage(errno)})";
}
