using Microsoft.Extensions.Configuration;
using SockTrace.Agent.Hosting;

namespace SockTrace.Tests.Hosting;

public sealed class AttributionOptionsTests
{
    private static AgentOptions From(params (string Key, string Value)[] settings) =>
        AgentOptions.From(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build());

    [Fact]
    public void OffUnlessAskedFor()
    {
        Assert.Equal("off", From().Attribution);
    }

    [Theory]
    [InlineData("kubernetes", "kubernetes")]
    [InlineData("Kubernetes", "kubernetes")]
    [InlineData("OFF", "off")]
    public void TakesOffOrKubernetes(string value, string expected)
    {
        Assert.Equal(expected, From(("SockTrace:Attribution", value)).Attribution);
    }

    [Fact]
    public void ABadValueNamesTheSettingAndTheRule()
    {
        var ex = Assert.Throws<StartupException>(() => From(("SockTrace:Attribution", "docker")));
        Assert.Equal(ExitCodes.Usage, ex.ExitCode);
        Assert.Equal("invalid --attribution (SOCKTRACE_ATTRIBUTION, SockTrace:Attribution) value 'docker': must be off or kubernetes", ex.Message);
    }

    [Fact]
    public void TheFlagAndTheEnvironmentVariableReachTheSetting()
    {
        Assert.Contains(AgentSettings.All, s => s is { Flag: "--attribution", EnvironmentVariable: "SOCKTRACE_ATTRIBUTION", ConfigKey: "SockTrace:Attribution" });
    }
}
