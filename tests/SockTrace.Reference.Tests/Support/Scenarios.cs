namespace SockTrace.Reference.Tests.Support;

/// <summary>The scenario files of tests/scenarios, copied next to the tests.</summary>
internal static class Scenarios
{
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "scenarios");

    public static TheoryData<string> Names()
    {
        var names = new TheoryData<string>();
        foreach (string file in System.IO.Directory.GetFiles(Directory, "*.json").Order(StringComparer.Ordinal))
            names.Add(Path.GetFileNameWithoutExtension(file));
        return names;
    }

    public static Scenario Load(string name) => Scenario.Load(Path.Combine(Directory, name + ".json"));
}
