using System.Globalization;
using System.Runtime.InteropServices;

namespace SockTrace.Agent.Bpf;

/// <summary>
/// kretprobes through tracefs kprobe_events, so that maxactive can be set. A kretprobe
/// tracks each call in flight in one of maxactive instances, and a return whose call found
/// none free is silently missed; the kprobe PMU (perf_event_open type "kprobe") always
/// uses the default, max(10, 2 * CPUs) (register_kretprobe(), kernel/kprobes.c), which a
/// server with more threads blocked in accept() than that exceeds at once.
/// </summary>
internal static unsafe partial class KprobeEvents
{
    /// <summary>Calls in flight per kretprobe. Costs about 64 bytes each in the kernel; the
    /// kernel's ceiling is KRETPROBE_MAXACTIVE_MAX (4096).</summary>
    public const int MaxActive = 1024;

    private const string Group = "socktrace";
    private static int s_attachments;

    public static bool Writable(string tracefs)
    {
        string path = Path.Combine(tracefs, "kprobe_events");
        return File.Exists(path) && access(path, 2) == 0;
    }

    /// <param name="eventName">The kprobe event made for it (its line in kprobe_profile).</param>
    public static BpfLinkHandle AttachKretprobe(BpfObject obj, string program, string function, string tracefs, out string eventName)
    {
        string eventsFile = Path.Combine(tracefs, "kprobe_events");
        // Unique per attachment: one process may hold several objects (tests do), and
        // creating an event name that exists fails with EEXIST.
        string name = $"{Group}_{Environment.ProcessId}_{Interlocked.Increment(ref s_attachments)}_{program}";
        eventName = name;
        RemoveStale(eventsFile);
        Append(eventsFile, $"r{MaxActive}:{Group}/{name} {function}");
        try
        {
            ulong id = ulong.Parse(File.ReadAllText(Path.Combine(tracefs, "events", Group, name, "id")).Trim(), CultureInfo.InvariantCulture);
            var attr = new Interop.Libc.PerfEventAttr
            {
                Type = Interop.Libc.PerfTypeTracepoint,
                Size = (uint)sizeof(Interop.Libc.PerfEventAttr),
                Config = id,
                SamplePeriod = 1,
                WakeupEvents = 1,
            };
            // pid -1, cpu 0: a trace event's BPF program runs on every CPU whichever perf
            // event attached it (libbpf's legacy kprobe path does the same).
            int pfd = Interop.Libc.perf_event_open(Interop.Libc.PerfEventOpenNumber, &attr, -1, 0, -1, Interop.Libc.PerfFlagFdCloexec);
            if (pfd < 0)
                throw new BpfException("perf_event_open", Marshal.GetLastPInvokeError(), $"kretprobe {function}");
            return obj.AttachPerfEvent(program, pfd, () => Remove(eventsFile, name));
        }
        catch
        {
            Remove(eventsFile, name);
            throw;
        }
    }

    /// <summary>Events left by an agent that was killed (its perf fds closed with it).</summary>
    private static void RemoveStale(string eventsFile)
    {
        foreach (string line in File.ReadAllLines(eventsFile))
        {
            // "r1024:socktrace/socktrace_4242_1_st_krp_sys_accept4 __sys_accept4"
            int slash = line.IndexOf($":{Group}/", StringComparison.Ordinal);
            if (slash < 0)
                continue;
            string name = line[(slash + Group.Length + 2)..].Split(' ')[0];
            string[] parts = name.Split('_', 3);
            if (parts.Length == 3 && int.TryParse(parts[1], CultureInfo.InvariantCulture, out int pid) && !Directory.Exists($"/proc/{pid}"))
                Remove(eventsFile, name);
        }
    }

    private static void Remove(string eventsFile, string name)
    {
        try
        {
            Append(eventsFile, $"-:{Group}/{name}");
        }
        catch (IOException)
        {
            // Still in use or already gone: nothing more to do from here.
        }
    }

    /// <summary>Appends one command. Never opened with O_TRUNC: truncating kprobe_events
    /// deletes every kprobe event on the machine, other tools' included.</summary>
    private static void Append(string eventsFile, string command)
    {
        using var stream = new FileStream(eventsFile, FileMode.Append, FileAccess.Write);
        byte[] bytes = System.Text.Encoding.ASCII.GetBytes(command + "\n");
        stream.Write(bytes);
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int access(string path, int mode);
}
