using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace SockTrace.Tests.Support;

/// <summary>An HTTPS server on 127.0.0.1 with a certificate of a <see cref="TestCa"/>: every
/// request gets <see cref="Body"/> as JSON; it records each request's Authorization header and
/// the subject of the client certificate presented (it asks for one, requires none).</summary>
internal sealed class TlsApiServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly X509Certificate2 _certificate;
    private readonly Task _serving;
    private readonly List<(string? Authorization, string? ClientSubject)> _requests = [];

    public TlsApiServer(TestCa ca, string body)
    {
        string cert = Path.Combine(ca.Directory, "api.crt"), key = Path.Combine(ca.Directory, "api.key");
        ca.Issue("api-server", cert, key);
        _certificate = X509Certificate2.CreateFromPemFile(cert, key);
        Body = body;
        _listener.Start();
        Url = $"https://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _serving = Task.Run(ServeAsync);
    }

    public string Url { get; }

    public string Body { get; }

    public IReadOnlyList<(string? Authorization, string? ClientSubject)> Requests
    {
        get { lock (_requests) return [.. _requests]; }
    }

    private async Task ServeAsync()
    {
        while (true)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => Handle(client));
        }
    }

    private async Task Handle(TcpClient client)
    {
        using var _ = client;
        try
        {
            await using var tls = new SslStream(client.GetStream(), false, static (_, _, _, _) => true);
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = _certificate,
                ClientCertificateRequired = true,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            });
            using var reader = new StreamReader(tls, Encoding.ASCII, leaveOpen: true);
            while (await reader.ReadLineAsync() is { Length: > 0 } requestLine)
            {
                string? authorization = null;
                while (await reader.ReadLineAsync() is { Length: > 0 } header)
                {
                    if (header.StartsWith("Authorization:", StringComparison.OrdinalIgnoreCase))
                        authorization = header["Authorization:".Length..].Trim();
                }
                lock (_requests)
                    _requests.Add((authorization, tls.RemoteCertificate?.Subject));
                byte[] body = Encoding.UTF8.GetBytes(Body);
                await tls.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n"));
                await tls.WriteAsync(body);
                await tls.FlushAsync();
            }
        }
        catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
        {
            // The client refused the certificate, or went away.
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _serving.Wait(TimeSpan.FromSeconds(5));
        _certificate.Dispose();
    }
}
