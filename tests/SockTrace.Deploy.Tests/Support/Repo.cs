using System.Reflection;

namespace SockTrace.Deploy.Tests.Support;

/// <summary>Paths in the repository this test assembly was built from.</summary>
internal static class Repo
{
    public static readonly string Root = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    /// <summary>The agent built in the same configuration as these tests.</summary>
    public static string AgentDll
    {
        get
        {
            string configuration = typeof(Repo).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
            string dll = Path("agent", "SockTrace.Agent", "bin", configuration, "net10.0", "socktrace.dll");
            Assert.True(File.Exists(dll), $"the agent is not built at {dll}: run dotnet build SockTrace.sln -c {configuration}");
            return dll;
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "SockTrace.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no SockTrace.sln above {AppContext.BaseDirectory}");
    }
}
