using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// The serving certificate from --tls-cert-file and --tls-key-file (PEM), handed to Kestrel
/// per handshake and loaded again when either file changes. A pair that does not load (the
/// certificate written, the key not yet) leaves the previous one serving until it does.
/// </summary>
internal sealed partial class TlsCertificate
{
    private readonly WatchedFile _cert;
    private readonly WatchedFile _key;
    private byte[] _certPem;
    private byte[] _keyPem;
    private readonly Lock _reload = new();
    private volatile X509Certificate2 _current;

    /// <summary>Set once the host's logging exists (the files are checked before, at build).</summary>
    public ILogger Logger { private get; set; } = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public TlsCertificate(string certFile, string keyFile)
    {
        _cert = new WatchedFile(certFile);
        _key = new WatchedFile(keyFile);
        _certPem = _cert.ReadOrFail("TLS certificate file");
        _keyPem = _key.ReadOrFail("TLS key file");
        try
        {
            _current = Load(_certPem, _keyPem);
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new StartupException(ExitCodes.SecurityFile,
                $"TLS certificate file {certFile} and key file {keyFile} are not a PEM certificate and its private key: {ex.Message}");
        }
    }

    public X509Certificate2 Current
    {
        get
        {
            byte[]? cert = _cert.Changed();
            byte[]? key = _key.Changed();
            if (cert is null && key is null)
                return _current;
            lock (_reload)
            {
                _certPem = cert ?? _certPem;
                _keyPem = key ?? _keyPem;
                try
                {
                    _current = Load(_certPem, _keyPem);
                    LogReloaded(Logger, _current.Subject, _current.NotAfter);
                }
                catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or ArgumentException)
                {
                    LogReloadFailed(Logger, ex.Message);
                }
                return _current;
            }
        }
    }

    private static X509Certificate2 Load(byte[] cert, byte[] key)
    {
        using var pem = X509Certificate2.CreateFromPem(Encoding.UTF8.GetString(cert), Encoding.UTF8.GetString(key));
        // An ephemeral key cannot be used by SslStream on every platform; exporting to
        // PKCS#12 and loading back gives a key the TLS stack can hold.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    [LoggerMessage(EventId = 1810, Level = LogLevel.Information, Message = "TLS certificate loaded again: {Subject}, valid until {NotAfter:o}")]
    private static partial void LogReloaded(ILogger logger, string subject, DateTime notAfter);

    [LoggerMessage(EventId = 1811, Level = LogLevel.Warning, Message = "TLS certificate or key changed but does not load, still serving the previous one: {Reason}")]
    private static partial void LogReloadFailed(ILogger logger, string reason);
}
