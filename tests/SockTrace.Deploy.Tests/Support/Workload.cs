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

    /// <summary>Runs the kernel tests' fd race workload (tests/SockTrace.Tests/Workloads/fdrace.c):
    /// <paramref name="rounds"/> dup2() calls onto an fd a blocked accept4() has reserved, each EBUSY.</summary>
    public static void Dup2OntoReservedFd(string fdrace, int rounds)
    {
        var (code, output) = Host.Run(fdrace, ["dup2-busy", rounds.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.True(code == 0 && output.Contains($"busy {rounds}", StringComparison.Ordinal), "fdrace failed: " + output);
    }

    /// <summary>The fd race workload's process name here: the kernel tests, which may run at
    /// the same time, run the same workload as "fdrace", and the agent counts the whole node.</summary>
    public const string FdRaceComm = "deploy-fdrace";

    /// <summary>Compiles the fd race workload once; returns the binary's path.</summary>
    public static string BuildFdRace()
    {
        string binary = System.IO.Path.Combine(Directory.CreateTempSubdirectory("socktrace-fdrace").FullName, FdRaceComm);
        var (code, output) = Host.Run("clang", ["-O2", "-pthread", "-o", binary, Repo.Path("tests", "SockTrace.Tests", "Workloads", "fdrace.c")]);
        Assert.True(code == 0, "building fdrace.c failed: " + output);
        return binary;
    }

    public void Dispose() => _listener.Dispose();
}
