using System.Net;
using System.Net.Sockets;

namespace SockTrace.Tests.Support;

/// <summary>Real TCP listeners and connections on 127.0.0.1, driven through the real syscalls.</summary>
internal static class Loopback
{
    public static Socket Listen(int backlog = 128, IPAddress? address = null)
    {
        var listener = new Socket((address ?? IPAddress.Loopback).AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(address ?? IPAddress.Loopback, 0));
        listener.Listen(backlog);
        return listener;
    }

    public static int Port(this Socket listener) => ((IPEndPoint)listener.LocalEndPoint!).Port;

    public static Socket Connect(int port, IPAddress? address = null)
    {
        var client = new Socket((address ?? IPAddress.Loopback).AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(new IPEndPoint(address ?? IPAddress.Loopback, port));
        return client;
    }

    /// <summary>
    /// N connections, each left established in the accept queue for <paramref name="wait"/>
    /// before a blocking accept4() takes it. Returns how long each really waited, at most:
    /// from before connect() to after accept4() returned, which holds the kernel's queue
    /// wait (from the handshake inside connect() to accept4()) however late either thread ran.
    /// </summary>
    public static List<TimeSpan> ConnectAndAcceptAfter(Socket listener, int n, TimeSpan wait)
    {
        var waited = new List<TimeSpan>();
        for (int i = 0; i < n; i++)
        {
            long connected = System.Diagnostics.Stopwatch.GetTimestamp();
            using var client = Connect(listener.Port());
            Thread.Sleep(wait);
            using var accepted = listener.Accept();
            waited.Add(System.Diagnostics.Stopwatch.GetElapsedTime(connected));
        }
        return waited;
    }

    /// <summary>accept4() on an empty non-blocking listener, which fails with EAGAIN.</summary>
    public static void AcceptWouldBlock(Socket listener, int times)
    {
        listener.Blocking = false;
        for (int i = 0; i < times; i++)
        {
            var ex = Assert.Throws<SocketException>(() => listener.Accept());
            Assert.Equal(SocketError.WouldBlock, ex.SocketErrorCode);
        }
        listener.Blocking = true;
    }
}
