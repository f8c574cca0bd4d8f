using System.Diagnostics;

namespace SockTrace.Tests.Support;

/// <summary>Runs a command the test needs an answer from (ip, ss, stat, python3).</summary>
internal static class Command
{
    /// <summary>The command's standard output; it must exit 0.</summary>
    public static string Output(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} failed: {stderr.Result}");
        return stdout;
    }
}
