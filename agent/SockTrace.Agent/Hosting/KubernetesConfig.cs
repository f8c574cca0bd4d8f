using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// How the agent reaches the API server, for pod attribution and for reviews of scrapers
/// alike: the server's address, whom to trust for its certificate, and the agent's own
/// credentials (a bearer token, a client certificate, or both). <see cref="Load"/> reads
/// $KUBECONFIG when set (an agent outside the cluster, the tests, the soak), else the pod's
/// service account.
/// </summary>
public sealed class KubernetesConfig(Uri server)
{
    public const string ServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount";

    public Uri Server { get; } = server;

    /// <summary>The certificates that may root the server's chain; null trusts the system's store.</summary>
    public X509Certificate2Collection? CertificateAuthority { get; init; }

    /// <summary>Any server certificate is accepted (a kubeconfig's insecure-skip-tls-verify).</summary>
    public bool InsecureSkipTlsVerify { get; init; }

    public X509Certificate2? ClientCertificate { get; init; }

    public BearerToken? Token { get; init; }

    public static KubernetesConfig Load() =>
        Environment.GetEnvironmentVariable("KUBECONFIG") is { Length: > 0 } kubeconfig
            ? Kubeconfig.Load(kubeconfig)
            : InCluster(Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST"), Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT"));

    /// <summary>What <see cref="Load"/> throws when neither is usable.</summary>
    public static bool IsConfigError(Exception ex) => ex is KubernetesConfigException;

    /// <summary>A pod's service account, as client-go's rest.InClusterConfig reads it: the API
    /// server's Service from the environment the kubelet sets, the token the kubelet projects
    /// (re-read as it rotates) and the cluster's CA.</summary>
    public static KubernetesConfig InCluster(string? host, string? port, string directory = ServiceAccountDirectory)
    {
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port))
            throw new KubernetesConfigException("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod?)");
        if (!ushort.TryParse(port, out ushort portNumber) || portNumber == 0)
            throw new KubernetesConfigException($"KUBERNETES_SERVICE_PORT={port} is not a port");
        string tokenFile = Path.Combine(directory, "token"), caFile = Path.Combine(directory, "ca.crt");
        var token = BearerToken.FromFile(tokenFile);
        // An IPv6 address is bracketed in a URL (the Service's ClusterIP on a v6 cluster).
        string authority = host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{portNumber}" : $"{host}:{portNumber}";
        return new KubernetesConfig(new Uri($"https://{authority}/"))
        {
            Token = token,
            CertificateAuthority = Certificates(ReadFile(caFile, "the service account's CA file"), $"the CA file {caFile}"),
        };
    }

    /// <summary>The handler every request goes through: the server's certificate checked against
    /// <see cref="CertificateAuthority"/> (host name included), the client certificate presented.</summary>
    public SocketsHttpHandler CreateHandler()
    {
        var handler = new SocketsHttpHandler();
        if (ClientCertificate is { } client)
            handler.SslOptions.ClientCertificates = new X509CertificateCollection { client };
        if (InsecureSkipTlsVerify)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
        }
        else if (CertificateAuthority is { } authority)
        {
            // Only these roots, not the system's: a cluster CA signs nothing else, and no public CA may vouch for the API server.
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(authority);
            handler.SslOptions.CertificateChainPolicy = policy;
        }
        return handler;
    }

    internal static string ReadFile(string path, string what)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new KubernetesConfigException($"cannot read {what} {path}: {ex.Message}");
        }
    }

    /// <summary>Every PEM certificate in <paramref name="pem"/>; none is an error.</summary>
    internal static X509Certificate2Collection Certificates(string pem, string what)
    {
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(pem);
        }
        catch (CryptographicException ex)
        {
            throw new KubernetesConfigException($"{what} holds a certificate that cannot be read: {ex.Message}");
        }
        return certificates.Count > 0 ? certificates : throw new KubernetesConfigException($"{what} holds no PEM certificate");
    }
}

/// <summary>The API server's configuration is missing, unreadable or asks for what the agent does not do.</summary>
public sealed class KubernetesConfigException(string message) : Exception(message);
