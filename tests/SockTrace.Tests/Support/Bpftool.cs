using System.Diagnostics;
using System.Text.Json;

namespace SockTrace.Tests.Support;

internal static class Bpftool
{
    /// <summary>Ids of the BPF programs that process <paramref name="pid"/> holds through its
    /// program and link fds (their /proc fdinfo carries prog_id).</summary>
    public static HashSet<int> ProgramsOf(int pid)
    {
        var ids = new HashSet<int>();
        foreach (string info in Directory.EnumerateFiles($"/proc/{pid}/fdinfo"))
        {
            try
            {
                foreach (string line in File.ReadLines(info))
                {
                    if (line.StartsWith("prog_id:", StringComparison.Ordinal))
                        ids.Add(int.Parse(line.AsSpan(8).Trim(), System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
                // The fd was closed while we looked.
            }
        }
        return ids;
    }

    /// <summary>Ids of all loaded BPF programs, per `bpftool prog show`.</summary>
    public static HashSet<int> ProgramIds()
    {
        using var p = Process.Start(new ProcessStartInfo("bpftool", "prog show --json") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string json = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, "bpftool prog show failed: " + p.StandardError.ReadToEnd());
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateArray().Select(e => e.GetProperty("id").GetInt32()).ToHashSet();
    }
}
