using System.Runtime.InteropServices;
using SockTrace.Agent.Events;
using SockTrace.Agent.Hosting;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// Which of some kernel functions the running kernel has, asked where each attach mode looks
/// them up. fentry programs attach by the function's BTF id, and kfuncs are resolved by BTF:
/// for them the kernel's BTF is the answer, parsed in a few milliseconds. A kprobe attaches by
/// symbol, and /proc/kallsyms has every text symbol, static functions and compiler clones that
/// BTF may leave out; but the kernel formats its 100,000-odd lines on every read (about 50 ms of
/// start-up), so it is read only for the kprobe mode.
/// </summary>
internal static class KernelFunctions
{
    private const uint BtfKindFunc = 12; // BTF_KIND_FUNC (include/uapi/linux/btf.h)

    /// <summary>Those of <paramref name="names"/> that the kernel's BTF has as functions.</summary>
    public static unsafe HashSet<string> InBtf(IEnumerable<string> names)
    {
        nint btf = Interop.Libbpf.btf__parse(KernelPreflight.BtfPath, null);
        if (btf == 0)
            throw new StartupException(ExitCodes.NoBtf,
                $"cannot read the kernel's BTF {KernelPreflight.BtfPath}: {ErrnoNames.Describe(Marshal.GetLastPInvokeError())}");
        try
        {
            return names.Where(name => Interop.Libbpf.btf__find_by_name_kind(btf, name, BtfKindFunc) > 0).ToHashSet();
        }
        finally
        {
            Interop.Libbpf.btf__free(btf);
        }
    }

    /// <summary>Those of <paramref name="names"/> that /proc/kallsyms has as text symbols.</summary>
    public static HashSet<string> InKallsyms(IEnumerable<string> names)
    {
        var lookup = names.ToHashSet().GetAlternateLookup<ReadOnlySpan<char>>();
        var found = new HashSet<string>();
        // One large read at a time: the kernel formats /proc/kallsyms per read call, and in
        // 4 KiB reads that took 300 ms of the agent's start-up.
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
}
