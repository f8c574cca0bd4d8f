using System.Net;
using SockTrace.Agent.Events;

namespace SockTrace.Tests.Events;

public sealed class PeerAddressTests
{
    [Theory]
    [InlineData("127.0.0.1", PeerClass.Loopback)]
    [InlineData("127.255.3.4", PeerClass.Loopback)]
    [InlineData("10.0.2.2", PeerClass.Remote)]
    [InlineData("::1", PeerClass.Loopback)]
    [InlineData("::ffff:127.0.0.1", PeerClass.Loopback)]
    [InlineData("::ffff:10.1.2.3", PeerClass.Remote)]
    [InlineData("fe80::1", PeerClass.Remote)]
    [InlineData("::2", PeerClass.Remote)]
    public void Classifies(string address, PeerClass expected)
    {
        var ip = IPAddress.Parse(address);
        var bytes = new byte[16];
        ip.GetAddressBytes().CopyTo(bytes, 0);
        ushort family = ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? (ushort)2 : (ushort)10;
        Assert.Equal(expected, PeerAddress.Classify(family, bytes));
    }

    [Theory]
    [InlineData("10.231.0.2", PeerClass.Local)]
    [InlineData("::ffff:10.1.2.3", PeerClass.Local)]
    [InlineData("fd00::5", PeerClass.Local)]
    [InlineData("127.0.0.1", PeerClass.Loopback)]
    [InlineData("::1", PeerClass.Loopback)]
    public void APeerWhoseSocketIsOnThisHostIsLocalUnlessLoopback(string address, PeerClass expected)
    {
        var ip = IPAddress.Parse(address);
        var bytes = new byte[16];
        ip.GetAddressBytes().CopyTo(bytes, 0);
        ushort family = ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? (ushort)2 : (ushort)10;
        Assert.Equal(expected, PeerAddress.Classify(family, bytes, onThisHost: true));
        Assert.Equal("local", PeerAddress.Label(PeerClass.Local));
    }
}
