using System.Text;

namespace SockTrace.Agent.Hosting;

public enum AgentCommand
{
    Run,
    Check,
    Help,
}

/// <summary>
/// Parses the command line strictly: an unknown flag is an error, not silently ignored
/// (a typo in a DaemonSet's args must not run the agent with defaults).
/// </summary>
public sealed record AgentCommandLine(AgentCommand Command, IReadOnlyDictionary<string, string?> Settings, string? ConfigFile)
{
    public static AgentCommandLine Parse(IReadOnlyList<string> args)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        string? configFile = null;
        var command = AgentCommand.Run;
        int first = 0;
        if (args.Count > 0 && args[0] == "check")
        {
            command = AgentCommand.Check;
            first = 1;
        }
        for (int i = first; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg is "-h" or "--help" or "help")
                return new AgentCommandLine(AgentCommand.Help, settings, null);
            int eq = arg.IndexOf('=');
            string name = eq > 0 ? arg[..eq] : arg;
            // The name first: an unknown flag is named as such, with or without a value.
            var setting = AgentSettings.All.FirstOrDefault(s => s.Flag == name)
                ?? throw Usage($"unknown argument '{name}'");
            string value;
            if (eq > 0)
                value = arg[(eq + 1)..];
            else if (setting.IsSwitch)
                value = "true";
            else if (i + 1 < args.Count)
                value = args[++i];
            else
                throw Usage($"{arg} needs a value");
            if (setting == AgentSettings.ConfigFile)
                configFile = value;
            else
                settings[setting.ConfigKey] = value;
        }
        return new AgentCommandLine(command, settings, configFile);
    }

    /// <summary>The SOCKTRACE_* variables of the environment, as configuration keys.</summary>
    public static Dictionary<string, string?> FromEnvironment(out string? configFile)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        configFile = Environment.GetEnvironmentVariable(AgentSettings.ConfigFile.EnvironmentVariable);
        foreach (var setting in AgentSettings.All)
        {
            if (setting != AgentSettings.ConfigFile && Environment.GetEnvironmentVariable(setting.EnvironmentVariable) is { } value)
                settings[setting.ConfigKey] = value;
        }
        return settings;
    }

    public static string HelpText()
    {
        var text = new StringBuilder();
        text.AppendLine("socktrace: accept latency, fd races and receive paths from eBPF, as Prometheus metrics.");
        text.AppendLine();
        text.AppendLine("usage: socktrace [--flag value]...        run the agent");
        text.AppendLine("       socktrace check [--flag value]...  show what this kernel supports and the mode each hook");
        text.AppendLine("                                          would use; exits non-zero when the agent cannot run here");
        text.AppendLine();
        foreach (var s in AgentSettings.All)
            text.AppendLine($"  {s.Flag,-22}{s.Help}\n  {"",-22}env {s.EnvironmentVariable}");
        text.AppendLine();
        text.Append("Precedence: flags, then environment, then --config file, then appsettings.json.");
        return text.ToString();
    }

    private static StartupException Usage(string message) => new(ExitCodes.Usage, message + " (see socktrace --help)");
}
