namespace SockTrace.Tests.Support;

/// <summary>
/// The built agent, and files it is given, copied where an unprivileged user can read them.
/// A clone may sit where only root can enter (under /root, mode 0700): run from there as
/// nobody, the agent could not even start (dotnet's realpath() of socktrace.dll fails with
/// EACCES). A copy in a fresh directory under the temporary directory (world-traversable)
/// runs the same build output; the test then drops privileges for real.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class ReadableAgentCopy : IDisposable
{
    private const UnixFileMode ReadableDirectory = (UnixFileMode)0b111_101_101; // 0755
    private const UnixFileMode ReadableFile = (UnixFileMode)0b110_100_100;      // 0644

    private readonly DirectoryInfo _root;

    private ReadableAgentCopy(DirectoryInfo root, string dll)
    {
        _root = root;
        Dll = dll;
    }

    /// <summary>socktrace.dll in the copy.</summary>
    public string Dll { get; }

    /// <summary>Copies the directory that holds <paramref name="agentDll"/> (the whole build output).</summary>
    public static ReadableAgentCopy Of(string agentDll)
    {
        var root = Directory.CreateTempSubdirectory("socktrace-agent-");
        try
        {
            File.SetUnixFileMode(root.FullName, ReadableDirectory);
            RequireTraversableByOthers(root.FullName);
            string bin = Path.Combine(root.FullName, "bin");
            Copy(Path.GetDirectoryName(agentDll)!, bin);
            return new ReadableAgentCopy(root, Path.Combine(bin, Path.GetFileName(agentDll)));
        }
        catch
        {
            root.Delete(recursive: true);
            throw;
        }
    }

    /// <summary>Copies one more file (a scenario, a config) next to the agent; returns its path in the copy.</summary>
    public string Add(string file)
    {
        string target = Path.Combine(_root.FullName, Path.GetFileName(file));
        File.Copy(file, target, overwrite: true);
        File.SetUnixFileMode(target, ReadableFile);
        return target;
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        File.SetUnixFileMode(to, ReadableDirectory);
        foreach (string file in Directory.EnumerateFiles(from))
        {
            string target = Path.Combine(to, Path.GetFileName(file));
            File.Copy(file, target);
            // Keep the apphost (socktrace) executable; make everything readable.
            bool executable = (File.GetUnixFileMode(file) & UnixFileMode.UserExecute) != 0;
            File.SetUnixFileMode(target, executable ? ReadableDirectory : ReadableFile);
        }
        foreach (string dir in Directory.EnumerateDirectories(from))
            Copy(dir, Path.Combine(to, Path.GetFileName(dir)));
    }

    /// <summary>Fails, saying which, when a directory above the copy is closed to other users
    /// (a TMPDIR under /root): the copy would not help, and the test would fail for the wrong reason.</summary>
    private static void RequireTraversableByOthers(string path)
    {
        for (var dir = new DirectoryInfo(path).Parent; dir is not null; dir = dir.Parent)
            if ((File.GetUnixFileMode(dir.FullName) & UnixFileMode.OtherExecute) == 0)
                Assert.Fail($"{dir.FullName} is closed to other users (mode {Convert.ToString((int)File.GetUnixFileMode(dir.FullName), 8)}): set TMPDIR to a directory everyone can traverse, such as /tmp");
    }

    public void Dispose() => _root.Delete(recursive: true);
}
