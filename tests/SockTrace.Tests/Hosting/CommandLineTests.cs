using SockTrace.Agent.Hosting;

namespace SockTrace.Tests.Hosting;

public sealed class CommandLineTests
{
    [Fact]
    public void KnownFlagsBecomeConfigurationKeysInBothForms()
    {
        var cl = AgentCommandLine.Parse(["--urls", "http://127.0.0.1:1", "--attach-mode=tracepoint", "--config", "/etc/s.json"]);

        Assert.Equal(AgentCommand.Run, cl.Command);
        Assert.Equal("http://127.0.0.1:1", cl.Settings["urls"]);
        Assert.Equal("tracepoint", cl.Settings["SockTrace:AttachMode"]);
        Assert.Equal("/etc/s.json", cl.ConfigFile);
    }

    [Theory]
    [InlineData("--atach-mode", "kprobe", "unknown argument '--atach-mode' (see socktrace --help)")]
    [InlineData("extra", "x", "unknown argument 'extra' (see socktrace --help)")]
    public void UnknownArgumentsAreRejected(string flag, string value, string message)
    {
        var ex = Assert.Throws<StartupException>(() => AgentCommandLine.Parse([flag, value]));
        Assert.Equal(ExitCodes.Usage, ex.ExitCode);
        Assert.Equal(message, ex.Message);
    }

    [Theory]
    [InlineData("--bogus")]
    [InlineData("extra")]
    public void AnUnknownLastArgumentIsNamedAsUnknown(string arg)
    {
        var ex = Assert.Throws<StartupException>(() => AgentCommandLine.Parse(["--urls", "http://127.0.0.1:1", arg]));
        Assert.Equal($"unknown argument '{arg}' (see socktrace --help)", ex.Message);
    }

    [Fact]
    public void AFlagWithoutItsValueIsRejected()
    {
        var ex = Assert.Throws<StartupException>(() => AgentCommandLine.Parse(["--urls"]));
        Assert.Equal("--urls needs a value (see socktrace --help)", ex.Message);
    }

    [Fact]
    public void HelpListsEveryFlagAndItsEnvironmentVariable()
    {
        Assert.Equal(AgentCommand.Help, AgentCommandLine.Parse(["--help"]).Command);
        string help = AgentCommandLine.HelpText();
        Assert.All(AgentSettings.All, s =>
        {
            Assert.Contains(s.Flag, help);
            Assert.Contains(s.EnvironmentVariable, help);
        });
    }
}
