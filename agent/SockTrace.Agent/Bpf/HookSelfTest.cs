using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Whether the attached hooks fire: a hook can attach and never run (a function inlined or
/// split by the compiler, a syscall a distribution routes elsewhere). Once attached, the agent
/// makes calls of its own that each self-tested hook must see, and its programs count those of
/// the agent's pid (st_self_seen, bpf/common.bpf.h): one accept on loopback; dup2() and dup3()
/// onto a free fd, which reach do_dup2() (kprobe, fentry), and a dup2() of a bad fd (EBADF)
/// and a dup3() onto itself (EINVAL), which the tracepoint programs let by (they wait for
/// EBUSY); and the closes of those fds. The accept makes a record, which the agent drops
/// (<see cref="Events.AcceptJoin.Ignore"/>).
/// </summary>
internal static partial class HookSelfTest
{
    internal const uint SelfAccept = 0, SelfDup = 1, SelfClose = 2; // ST_SELF_* (bpf/socktrace.h, RecordLayoutTests)
    private const int OCloexec = 0x80000;

    /// <summary>The self-tested hooks that saw none of their calls, with why; and the
    /// listening port of the accept, whose record is not a metric's.</summary>
    public static (List<(Hook Hook, string Detail)> Missed, int Port) Run(KernelEventSource source)
    {
        ulong accepts = source.SelfSeen(SelfAccept), dups = source.SelfSeen(SelfDup), closes = source.SelfSeen(SelfClose);
        int port;
        using (var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            port = ((IPEndPoint)listener.LocalEndPoint!).Port;
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(listener.LocalEndPoint!);
            using var accepted = listener.Accept();
        }
        using (var file = File.OpenHandle("/dev/null"))
        {
            int fd = (int)file.DangerousGetHandle();
            int free = dup(fd);
            Interop.Libc.close(free);
            dup2(fd, free);
            dup3(fd, free, OCloexec);
            dup2(-1, free);
            dup3(fd, fd, 0);
            Interop.Libc.close(free);
        }

        var missed = new List<(Hook, string)>();
        void Expect(string hook, uint slot, ulong before, ulong least, string what)
        {
            var planned = source.Plan.SingleOrDefault(p => p.Hook.Name == hook && p.Mode is not null);
            if (planned is not null && source.SelfSeen(slot) - before < least)
                missed.Add((planned.Hook, $"attached, but saw {source.SelfSeen(slot) - before} of the agent's own {what}"));
        }
        Expect(Hooks.Accept.Name, SelfAccept, accepts, 1, "accept4() calls on loopback");
        // Two of the four dups reach each mode's programs (above); where the kernel has no
        // dup2 syscall (arm64: glibc's dup2() is dup3()) the tracepoint mode sees one.
        var dupPlan = source.Plan.SingleOrDefault(p => p.Hook.Name == Hooks.Dup.Name);
        bool oneTracepoint = dupPlan?.Mode == AttachMode.Tracepoint && dupPlan.Programs.Count == 1;
        Expect(Hooks.Dup.Name, SelfDup, dups, oneTracepoint ? 1UL : 2UL, "dup2() and dup3() calls");
        Expect(Hooks.Close.Name, SelfClose, closes, 1, "close() calls");
        return (missed, port);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int dup(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int dup2(int fd, int newfd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int dup3(int fd, int newfd, int flags);
}
