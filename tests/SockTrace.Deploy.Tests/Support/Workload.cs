using System.Net;
using System.Net.Sockets;

namespace SockTrace.Deploy.Tests.Support;

/// <summary>Real accept() traffic on a listener of the test's own, on 127.0.0.1.</summary>
internal sealed class Workload : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public Workload()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(128);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    /// <summary>Connects and accepts <paramref name="n"/> times; each connection waits
    /// <paramref name="queued"/> in the accept queue before accept() takes it.</summary>
    public void Accept(int n, TimeSpan queued = default)
    {
        for (int i = 0; i < n; i++)
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(new IPEndPoint(IPAddress.Loopback, Port));
            if (queued > TimeSpan.Zero)
                Thread.Sleep(queued);
            using var accepted = _listener.Accept();
        }
    }

    /// <summary>accept() on the empty listener in non-blocking mode: <paramref name="n"/> EAGAIN errors.</summary>
    public void AcceptWouldBlock(int n)
    {
        _listener.Blocking = false;
        for (int i = 0; i < n; i++)
        {
            var error = Assert.Throws<SocketException>(() => _listener.Accept());
            Assert.Equal(SocketError.WouldBlock, error.SocketErrorCode);
        }
        _listener.Blocking = true;
    }

    public void Dispose() => _listener.Dispose();
}
