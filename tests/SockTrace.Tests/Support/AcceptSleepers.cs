using System.Globalization;
using System.Runtime.InteropServices;

namespace SockTrace.Tests.Support;

/// <summary>Threads inside accept() or accept4(), by tid, as /proc/PID/task/TID/syscall names
/// the call a thread that is not running is in.</summary>
internal static class AcceptSleepers
{
    private static readonly string[] Calls = RuntimeInformation.ProcessArchitecture == Architecture.Arm64
        ? ["202 ", "242 "]
        : ["43 ", "288 "];

    /// <summary>This process's.</summary>
    public static HashSet<int> OfThisProcess() => [.. Tasks("/proc/self").Where(InAccept).Select(Tid)];

    /// <summary>Every process's on the machine.</summary>
    public static HashSet<int> OnTheMachine() =>
        [.. Directory.EnumerateDirectories("/proc").Where(d => char.IsAsciiDigit(Path.GetFileName(d)[0]))
            .SelectMany(Tasks).Where(InAccept).Select(Tid)];

    private static IEnumerable<string> Tasks(string process)
    {
        try
        {
            return Directory.GetDirectories(process + "/task");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return []; // The process exited while the list was read.
        }
    }

    private static bool InAccept(string task)
    {
        try
        {
            string syscall = File.ReadAllText(task + "/syscall");
            return Calls.Any(c => syscall.StartsWith(c, StringComparison.Ordinal));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false; // The thread exited while it was read.
        }
    }

    private static int Tid(string task) => int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture);
}
