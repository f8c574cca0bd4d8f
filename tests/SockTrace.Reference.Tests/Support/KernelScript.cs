using System.Globalization;
using System.Text;

namespace SockTrace.Reference.Tests.Support;

/// <summary>
/// A scenario as the line commands Workloads/scenario.c runs. fd names are resolved to the
/// numbers the model chose: if the model is wrong about a number, the kernel run does
/// something else (a dup2 that does not hit the reserved fd, a close of the wrong socket),
/// and the comparison of results says so.
/// </summary>
internal static class KernelScript
{
    public static string For(ModelRun run, Scenario scenario)
    {
        var threads = scenario.Threads.Select((name, i) => (name, i)).ToDictionary(t => t.name, t => t.i);
        var text = new StringBuilder();
        if (scenario.Nofile is { } nofile)
            text.AppendLine(CultureInfo.InvariantCulture, $"nofile {nofile}");
        text.AppendLine(CultureInfo.InvariantCulture, $"threads {threads.Count}");
        foreach (var o in run.Outcomes)
        {
            var s = o.Step;
            string head = s.Op == StepOp.Wait ? $"wait {s.Index}" : $"{s.Op.ToString().ToLowerInvariant()} {s.Index} {threads[s.Thread]}";
            string tail = s.Op switch
            {
                StepOp.Listen => $"{Where(s.Address)} {s.Backlog} {(s.Blocking ? 0 : 1)}",
                StepOp.Connect => $"{scenario.Steps.Single(l => l.Op == StepOp.Listen && l.Name == s.To).Index} {Where(s.Via)} {o.Woke}",
                StepOp.Accept or StepOp.Close => $"{o.Fd}",
                StepOp.Dup2 or StepOp.Dup3 => $"{o.Fd} {o.NewFd}",
                StepOp.Send or StepOp.Recv => $"{o.Fd} {s.Bytes}",
                StepOp.Wait => $"{(long)s.Wait.TotalMilliseconds}",
                _ => throw new ArgumentOutOfRangeException(nameof(run)),
            };
            text.AppendLine(CultureInfo.InvariantCulture, $"{head} {tail}");
        }
        return text.ToString();
    }

    private static string Where(string address) => address switch
    {
        "loopback" => "lo",
        "loopback6" => "lo6",
        _ => address,
    };
}
