using System.Security.Cryptography.X509Certificates;
using System.Text;
using SockTrace.Agent.Hosting;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Hosting;

/// <summary>
/// Where the agent finds the API server and its credentials: a pod's service account, or
/// kubeconfig files (several contexts, tokens inline and in files, certificates inline and
/// in files, merged files), what is refused and how it is said; and a real TLS handshake
/// against a server whose certificate only the configured CA vouches for.
/// </summary>
public sealed class KubernetesConfigTests : IDisposable
{
    private readonly TestCa _ca = new();
    private readonly string _dir;

    public KubernetesConfigTests()
    {
        _dir = Directory.CreateTempSubdirectory("socktrace-kubeconfig-").FullName;
        _ca.Issue("socktrace-agent", Path.Combine(_dir, "agent.crt"), Path.Combine(_dir, "agent.key"));
    }

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        _ca.Dispose();
    }

    private string CaPem => File.ReadAllText(_ca.CaFile);

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    private string ServiceAccount(string token = "sa-token-1\n", bool ca = true)
    {
        string dir = Path.Combine(_dir, "serviceaccount");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "token"), token);
        if (ca)
            File.Copy(_ca.CaFile, Path.Combine(dir, "ca.crt"), overwrite: true);
        return dir;
    }

    [Fact]
    public void InClusterReadsTheServiceAccount()
    {
        var config = KubernetesConfig.InCluster("10.96.0.1", "443", ServiceAccount());

        Assert.Equal("https://10.96.0.1/", config.Server.AbsoluteUri);
        Assert.Equal("sa-token-1", config.Token?.Value);
        Assert.Equal(Path.Combine(_dir, "serviceaccount", "token"), config.Token?.Path);
        Assert.Equal("CN=socktrace-test-ca", Assert.Single(config.CertificateAuthority!).Subject);
        Assert.False(config.InsecureSkipTlsVerify);
        Assert.Null(config.ClientCertificate);
    }

    [Fact]
    public void InClusterOnAnIpv6Service()
    {
        var config = KubernetesConfig.InCluster("fd00:10:96::1", "6443", ServiceAccount());
        Assert.Equal("https://[fd00:10:96::1]:6443/", config.Server.AbsoluteUri);
    }

    [Fact]
    public void ATokenFileIsReadAgainAsItRotates()
    {
        string path = Write("rotating/token", "first\n");
        var token = BearerToken.FromFile(path, refresh: TimeSpan.Zero);
        Assert.Equal("first", token.Value);

        // The kubelet writes the new token into a new directory and swaps a symlink; a rename is the same to a reader.
        File.WriteAllText(path + ".new", "second");
        File.Move(path + ".new", path, overwrite: true);
        Assert.Equal("second", token.Value);

        // Caught mid-rotation (gone, or empty): the last token stays.
        File.Delete(path);
        Assert.Equal("second", token.Value);
        File.WriteAllText(path, "");
        Assert.Equal("second", token.Value);
        File.WriteAllText(path, "third");
        Assert.Equal("third", token.Value);
    }

    [Fact]
    public void ATokenFileIsNotReadOnEveryRequest()
    {
        string path = Write("slow/token", "first");
        var token = BearerToken.FromFile(path);
        File.WriteAllText(path, "second");
        Assert.Equal("first", token.Value);
        Assert.Equal(TimeSpan.FromMinutes(1), BearerToken.RefreshInterval);
    }

    [Theory]
    [InlineData("no-environment", "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")]
    [InlineData("bad-port", "KUBERNETES_SERVICE_PORT=https is not a port")]
    [InlineData("no-token", "cannot read the token file ")]
    [InlineData("empty-token", "is empty")]
    [InlineData("no-ca", "cannot read the service account's CA file ")]
    [InlineData("ca-not-pem", "holds no PEM certificate")]
    public void InClusterFailuresAreNamed(string fault, string message)
    {
        string dir = ServiceAccount(token: fault == "empty-token" ? "\n" : "t", ca: fault != "no-ca");
        if (fault == "no-token")
            File.Delete(Path.Combine(dir, "token"));
        if (fault == "ca-not-pem")
            File.WriteAllText(Path.Combine(dir, "ca.crt"), "not a certificate\n");
        var ex = Assert.Throws<KubernetesConfigException>(() => KubernetesConfig.InCluster(
            fault == "no-environment" ? "" : "10.96.0.1", fault == "bad-port" ? "https" : "443", dir));
        Assert.Contains(message, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.True(KubernetesConfig.IsConfigError(ex));
    }

    /// <summary>Three clusters, users and contexts, as a workstation's kubeconfig has them.</summary>
    private string SeveralContexts(string current)
    {
        Write("certs/ca.pem", CaPem);
        Write("tokens/staging", "staging-token\n");
        return Write("config", $$"""
            apiVersion: v1
            kind: Config
            current-context: {{current}}
            clusters:
            - name: prod
              cluster:
                server: https://prod.example:6443
                certificate-authority-data: {{Base64(CaPem)}}
            - name: staging
              cluster:
                server: https://staging.example
                certificate-authority: certs/ca.pem
            - name: lab
              cluster:
                server: http://127.0.0.1:8001
                insecure-skip-tls-verify: true
            contexts:
            - name: prod-admin
              context: {cluster: prod, user: admin, namespace: kube-system}
            - name: staging
              context:
                cluster: staging
                user: staging-bot
            - name: lab
              context:
                cluster: lab
            users:
            - name: admin
              user:
                client-certificate-data: {{Base64(File.ReadAllText(Path.Combine(_dir, "agent.crt")))}}
                client-key-data: {{Base64(File.ReadAllText(Path.Combine(_dir, "agent.key")))}}
                token: inline-wins
                tokenFile: tokens/staging
            - name: staging-bot
              user:
                tokenFile: tokens/staging
            """);
    }

    [Fact]
    public void TheCurrentContextChoosesClusterAndUser()
    {
        string path = SeveralContexts("staging");
        var staging = Kubeconfig.Load(path);
        Assert.Equal("https://staging.example/", staging.Server.AbsoluteUri);
        Assert.Equal("CN=socktrace-test-ca", Assert.Single(staging.CertificateAuthority!).Subject);
        // tokenFile, relative to the kubeconfig's directory.
        Assert.Equal("staging-token", staging.Token?.Value);
        Assert.Equal(Path.Combine(_dir, "tokens", "staging"), staging.Token?.Path);
        Assert.Null(staging.ClientCertificate);
    }

    [Fact]
    public void InlineCertificatesAndAnInlineTokenOverATokenFile()
    {
        var prod = Kubeconfig.Load(SeveralContexts("prod-admin"));
        Assert.Equal("https://prod.example:6443/", prod.Server.AbsoluteUri);
        Assert.Equal("CN=socktrace-test-ca", Assert.Single(prod.CertificateAuthority!).Subject);
        Assert.Equal("CN=socktrace-agent", prod.ClientCertificate?.Subject);
        Assert.True(prod.ClientCertificate?.HasPrivateKey);
        Assert.Equal("inline-wins", prod.Token?.Value);
        Assert.Null(prod.Token?.Path);
    }

    [Fact]
    public void AContextWithoutAUserHasNoCredentials()
    {
        var lab = Kubeconfig.Load(SeveralContexts("lab"));
        Assert.Equal("http://127.0.0.1:8001/", lab.Server.AbsoluteUri);
        Assert.True(lab.InsecureSkipTlsVerify);
        Assert.Null(lab.CertificateAuthority);
        Assert.Null(lab.Token);
        Assert.Null(lab.ClientCertificate);
    }

    [Fact]
    public void ClientCertificateAndKeyFiles()
    {
        string path = Write("files.yaml", $$$"""
            current-context: c
            contexts: [{name: c, context: {cluster: k, user: u}}]
            clusters: [{name: k, cluster: {server: "https://k.example", certificate-authority: "{{{_ca.CaFile}}}"}}]
            users: [{name: u, user: {client-certificate: agent.crt, client-key: agent.key}}]
            """);
        var config = Kubeconfig.Load(path);
        Assert.Equal("CN=socktrace-agent", config.ClientCertificate?.Subject);
        Assert.True(config.ClientCertificate?.HasPrivateKey);
        Assert.Null(config.Token);
    }

    [Fact]
    public void SeveralFilesMergeTheFirstDefinitionWinning()
    {
        string first = Write("first.yaml", """
            current-context: b
            users: [{name: u, user: {token: from-first}}]
            clusters: [{name: k, cluster: {server: "https://first.example"}}]
            """);
        string second = Write("second.yaml", """
            current-context: ignored
            contexts: [{name: b, context: {cluster: k, user: u}}]
            users: [{name: u, user: {token: from-second}}]
            clusters: [{name: k, cluster: {server: "https://second.example"}}]
            """);
        var config = Kubeconfig.Load($"{first}:{Path.Combine(_dir, "absent.yaml")}:{second}");
        Assert.Equal("https://first.example/", config.Server.AbsoluteUri);
        Assert.Equal("from-first", config.Token?.Value);
    }

    [Theory]
    [InlineData("exec", "user \"u\" authenticates through an exec credential plugin, which the agent does not run: give it a token, a tokenFile or a client certificate")]
    [InlineData("auth-provider", "user \"u\" authenticates through an auth-provider, which the agent does not run")]
    [InlineData("impersonation", "user \"u\" sets as, which the agent does not support")]
    [InlineData("proxy", "cluster \"k\" sets proxy-url, which the agent does not support")]
    [InlineData("no-current-context", "no current-context")]
    [InlineData("unknown-context", "the current-context \"c\" is not among the contexts")]
    [InlineData("unknown-cluster", "context \"c\" names the cluster \"k\", which is not defined")]
    [InlineData("unknown-user", "context \"c\" names the user \"u\", which is not defined")]
    [InlineData("no-server", "cluster \"k\" has no server")]
    [InlineData("bad-server", "the server k.example:6443/x is not an http(s) URL")]
    [InlineData("cert-without-key", "user \"u\" has a client-certificate without a client-key")]
    [InlineData("insecure-with-ca", "sets both a certificate authority and insecure-skip-tls-verify")]
    [InlineData("bad-bool", "insecure-skip-tls-verify is \"maybe\", not true or false")]
    [InlineData("bad-base64", "certificate-authority-data is not base64")]
    [InlineData("ca-not-pem", "the certificate authority holds no PEM certificate")]
    [InlineData("missing-ca-file", "cannot read the certificate-authority file ")]
    [InlineData("missing-token-file", "cannot read the token file ")]
    [InlineData("bad-key", "the client certificate and key cannot be read")]
    [InlineData("not-yaml", "line 2, column 11: an anchor, which kubeconfig files do not use")]
    [InlineData("not-a-mapping", "is not a mapping")]
    [InlineData("clusters-not-a-list", "clusters is not a list")]
    [InlineData("missing-file", "does not exist")]
    public void WhatIsWrongIsSaidInOneLine(string fault, string message)
    {
        string cluster = fault switch
        {
            "proxy" => "{server: \"https://k.example\", proxy-url: \"http://proxy:3128\"}",
            "no-server" => "{}",
            "bad-server" => "{server: \"k.example:6443/x\"}",
            "insecure-with-ca" => $"{{server: \"https://k.example\", insecure-skip-tls-verify: true, certificate-authority-data: {Base64(CaPem)}}}",
            "bad-bool" => "{server: \"https://k.example\", insecure-skip-tls-verify: maybe}",
            "bad-base64" => "{server: \"https://k.example\", certificate-authority-data: \"not base64!\"}",
            "ca-not-pem" => $"{{server: \"https://k.example\", certificate-authority-data: {Base64("hello")}}}",
            "missing-ca-file" => "{server: \"https://k.example\", certificate-authority: absent.pem}",
            _ => "{server: \"https://k.example\"}",
        };
        string user = fault switch
        {
            "exec" => "{exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, args: [eks, get-token]}}",
            "auth-provider" => "{auth-provider: {name: oidc}}",
            "impersonation" => "{token: t, as: admin}",
            "cert-without-key" => "{client-certificate: agent.crt}",
            "missing-token-file" => "{tokenFile: absent-token}",
            "bad-key" => $"{{client-certificate: agent.crt, client-key-data: {Base64("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}}}",
            _ => "{token: t}",
        };
        string text = fault switch
        {
            "no-current-context" => "contexts: []\n",
            "unknown-context" => "current-context: c\ncontexts: [{name: d, context: {cluster: k}}]\n",
            "unknown-cluster" => "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n",
            "unknown-user" => "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: \"https://k\"}}]\n",
            "not-yaml" => "current-context: c\nclusters: &k []\n",
            "not-a-mapping" => "- a\n- b\n",
            "clusters-not-a-list" => "current-context: c\nclusters: {k: 1}\n",
            _ => $"""
                current-context: c
                contexts: [{"{"}name: c, context: {"{"}cluster: k, user: u{"}}"}]
                clusters: [{"{"}name: k, cluster: {cluster}{"}"}]
                users: [{"{"}name: u, user: {user}{"}"}]
                """,
        };
        string path = Path.Combine(_dir, "config");
        if (fault != "missing-file")
            Write("config", text);
        var ex = Assert.Throws<KubernetesConfigException>(() => Kubeconfig.Load(path));
        Assert.Contains(message, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        if (fault != "missing-file")
            Assert.StartsWith($"kubeconfig {path}", ex.Message);
    }

    [Fact]
    public async Task ListsPodsOverTlsWithTheConfiguredCaClientCertificateAndToken()
    {
        using var server = new TlsApiServer(_ca, FakeKubernetesApi.PodListJson("5", FakeKubernetesApi.Pod("shop", "web-0", "5f0e2b4c-9a1d-4e3f-8b7a-6c5d4e3f2a1b")));
        string path = Write("tls.yaml", $$$"""
            current-context: c
            contexts: [{name: c, context: {cluster: k, user: u}}]
            clusters: [{name: k, cluster: {server: "{{{server.Url}}}", certificate-authority-data: {{{Base64(CaPem)}}}}}]
            users: [{name: u, user: {token: agent-token, client-certificate: agent.crt, client-key: agent.key}}]
            """);
        using var api = new KubernetesApi(Kubeconfig.Load(path));
        var pods = await api.ListPodsAsync("spec.nodeName=node-a", CancellationToken.None);

        Assert.Equal("web-0", Assert.Single(pods.Items!).Metadata?.Name);
        var request = Assert.Single(server.Requests);
        Assert.Equal("Bearer agent-token", request.Authorization);
        Assert.Equal("CN=socktrace-agent", request.ClientSubject);
    }

    [Fact]
    public async Task AServerTheCaDoesNotVouchForIsRefused()
    {
        using var other = new TestCa();
        using var server = new TlsApiServer(other, FakeKubernetesApi.PodListJson("5"));
        using var api = new KubernetesApi(new KubernetesConfig(new Uri(server.Url)) { CertificateAuthority = KubernetesConfig.Certificates(CaPem, "test CA") });
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => api.ListPodsAsync("spec.nodeName=node-a", CancellationToken.None));
        Assert.IsType<System.Security.Authentication.AuthenticationException>(ex.InnerException);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task InsecureSkipTlsVerifyAcceptsAnyServer()
    {
        using var other = new TestCa();
        using var server = new TlsApiServer(other, FakeKubernetesApi.PodListJson("5"));
        using var api = new KubernetesApi(new KubernetesConfig(new Uri(server.Url)) { InsecureSkipTlsVerify = true });
        var pods = await api.ListPodsAsync("spec.nodeName=node-a", CancellationToken.None);
        Assert.Empty(pods.Items!);
        Assert.Null(Assert.Single(server.Requests).Authorization);
    }
}
