using SockTrace.Agent.Hosting;
using SockTrace.Tests.Support;

namespace SockTrace.Tests.Hosting;

/// <summary>
/// /metrics and /races behind TLS and bearer-token authorization, on the built agent with the
/// reference model (no BPF, no privileges): real handshakes by curl against a CA the test
/// makes with openssl, and the TokenReview and SubjectAccessReview answered by a served fake API.
/// </summary>
public sealed class EndpointSecurityTests
{
    private static readonly string Scenario = Path.Combine(Events.RecordLayoutTests.RepoRoot(), "tests", "scenarios", "accept-one.json");
    private static readonly string[] Reference = ["--source", "reference", "--scenario", Scenario];

    [Fact]
    public void ServesOverTlsAndPicksUpARotatedCertificate()
    {
        using var ca = new TestCa();
        string cert = Path.Combine(ca.Directory, "tls.crt"), key = Path.Combine(ca.Directory, "tls.key");
        ca.Issue("socktrace-one", cert, key);
        using var agent = AgentProcess.Start([.. Reference, "--tls-cert-file", cert, "--tls-key-file", key], scheme: "https");
        string url = $"https://127.0.0.1:{agent.Port}/metrics";

        var first = WaitServing(agent, url, ca.CaFile);
        Assert.Equal(200, first.Status);
        Assert.Contains("subject: CN=socktrace-one", first.Log);
        Assert.Contains("SSL certificate verify ok", first.Log);
        Assert.Equal(1, PrometheusText.Parse(first.Body).Sum("socktrace_accepts_total", ("port", "18080"), ("peer", "loopback")));
        // Plain HTTP on the TLS port gets no metrics.
        Assert.NotEqual(200, Curl.Get($"http://127.0.0.1:{agent.Port}/metrics").Status);

        ca.Issue("socktrace-two", cert, key);
        Eventually.True(() => Curl.Get(url, ca.CaFile).Log.Contains("subject: CN=socktrace-two", StringComparison.Ordinal), "the rotated certificate served");
        var second = Curl.Get(url, ca.CaFile);
        Assert.Equal(200, second.Status);
        Assert.Equal(1, PrometheusText.Parse(second.Body).Sum("socktrace_accepts_total", ("port", "18080")));
        Assert.Contains("TLS certificate loaded again: CN=socktrace-two", agent.Stdout);
    }

    [Fact]
    public void AStaticTokenGuardsMetricsAndRacesButNotHealthz()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "s3cret-token\n");
            using var agent = AgentProcess.Start([.. Reference, "--auth-token-file", file]);
            string root = $"http://127.0.0.1:{agent.Port}";
            Eventually.True(() => agent.Healthy(), "/healthz without a token");

            var missing = Curl.Get(root + "/metrics");
            Assert.Equal(401, missing.Status);
            Assert.Contains("WWW-Authenticate: Bearer", missing.Log, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(401, Curl.Get(root + "/races").Status);
            Assert.Equal(401, Curl.Get(root + "/metrics", token: "s3cret-tokeN").Status);
            var allowed = Curl.Get(root + "/metrics", token: "s3cret-token");
            Assert.Equal(200, allowed.Status);
            Assert.Equal(1, PrometheusText.Parse(allowed.Body).Sum("socktrace_accepts_total", ("port", "18080")));
            Assert.Equal(200, Curl.Get(root + "/races", token: "s3cret-token").Status);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void KubernetesReviewsDecide401403And200AndAreCached()
    {
        using var api = new FakeKubernetesApi();
        api.TokenUsers["alice-token"] = "system:serviceaccount:monitoring:prometheus";
        api.TokenUsers["bob-token"] = "bob";
        api.Allowed[("system:serviceaccount:monitoring:prometheus", "get", "/metrics")] = true;
        string kubeconfig = api.KubeConfig(Path.GetTempFileName());
        try
        {
            using var agent = AgentProcess.Start([.. Reference, "--auth-kubernetes"], new Dictionary<string, string> { ["KUBECONFIG"] = kubeconfig });
            string root = $"http://127.0.0.1:{agent.Port}";
            Eventually.True(() => agent.Healthy(), "/healthz without a token");

            Assert.Equal(401, Curl.Get(root + "/metrics").Status);
            Assert.Empty(api.ReviewBodies);
            Assert.Equal(401, Curl.Get(root + "/metrics", token: "nobodys-token").Status);
            Assert.Equal(403, Curl.Get(root + "/metrics", token: "bob-token").Status);
            var allowed = Curl.Get(root + "/metrics", token: "alice-token");
            Assert.Equal(200, allowed.Status);
            Assert.Equal(1, PrometheusText.Parse(allowed.Body).Sum("socktrace_accepts_total", ("port", "18080")));
            // /races is its own non-resource URL: alice may get /metrics only.
            Assert.Equal(403, Curl.Get(root + "/races", token: "alice-token").Status);

            // What was asked: who the token is, then get on the path for that user.
            var bodies = api.ReviewBodies;
            Assert.Contains(bodies, b => b.Contains("\"token\":\"bob-token\"", StringComparison.Ordinal));
            Assert.Contains(bodies, b => b.Contains("\"user\":\"bob\"", StringComparison.Ordinal)
                && b.Contains("\"nonResourceAttributes\":{\"path\":\"/metrics\",\"verb\":\"get\"}", StringComparison.Ordinal));
            // A TokenReview for each token and path, and a SubjectAccessReview for each
            // authenticated one: nobody 1, bob 2, alice 2 for /metrics and 2 for /races.
            int before = bodies.Count;
            Assert.Equal(7, before);
            // Within the cache's time, the same token on the same path asks nothing again.
            Assert.Equal(200, Curl.Get(root + "/metrics", token: "alice-token").Status);
            Assert.Equal(403, Curl.Get(root + "/metrics", token: "bob-token").Status);
            Assert.Equal(before, api.ReviewBodies.Count);
        }
        finally
        {
            File.Delete(kubeconfig);
        }
    }

    [Theory]
    [InlineData("missing-cert", ExitCodes.SecurityFile, "cannot read TLS certificate file")]
    [InlineData("garbage-cert", ExitCodes.SecurityFile, "are not a PEM certificate and its private key")]
    [InlineData("key-only", ExitCodes.Usage, "--tls-key-file needs --tls-cert-file")]
    [InlineData("http-with-tls", ExitCodes.Usage, "with --tls-cert-file the metrics are served over https://")]
    [InlineData("missing-token", ExitCodes.SecurityFile, "cannot read token file")]
    [InlineData("empty-token", ExitCodes.SecurityFile, "is empty")]
    [InlineData("kubernetes-without-credentials", ExitCodes.SecurityFile, "--auth-kubernetes needs the pod's service account token or $KUBECONFIG")]
    public void ABadFileStopsStartUpWithOneLineAndItsExitCode(string fault, int exitCode, string message)
    {
        using var ca = new TestCa();
        string cert = Path.Combine(ca.Directory, "tls.crt"), key = Path.Combine(ca.Directory, "tls.key"), token = Path.Combine(ca.Directory, "token");
        ca.Issue("socktrace", cert, key);
        File.WriteAllText(token, "");
        string[] args = fault switch
        {
            "missing-cert" => ["--tls-cert-file", cert + ".absent", "--tls-key-file", key],
            "garbage-cert" => ["--tls-cert-file", token, "--tls-key-file", key],
            "key-only" => ["--tls-key-file", key],
            "missing-token" => ["--auth-token-file", token + ".absent"],
            "empty-token" => ["--auth-token-file", token],
            "kubernetes-without-credentials" => ["--auth-kubernetes"],
            _ => ["--tls-cert-file", cert, "--tls-key-file", key],
        };
        using var agent = AgentProcess.Start([.. Reference, .. args], new Dictionary<string, string> { ["KUBECONFIG"] = "", ["KUBERNETES_SERVICE_HOST"] = "" },
            scheme: fault == "http-with-tls" ? "http" : fault.Contains("cert", StringComparison.Ordinal) ? "https" : "http");
        Assert.Equal(exitCode, agent.WaitForExit(TimeSpan.FromSeconds(60)));
        string[] lines = agent.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith("socktrace: ", line);
        Assert.Contains(message, line);
    }

    private static (int Status, string Body, string Log) WaitServing(AgentProcess agent, string url, string caFile)
    {
        (int Status, string Body, string Log) result = default;
        Eventually.True(() =>
        {
            Assert.False(agent.HasExited, $"agent exited: {agent.Stderr}");
            result = Curl.Get(url, caFile);
            return result.Status == 200;
        }, url);
        return result;
    }
}
