using System.Net;
using System.Text;
using System.Threading.Channels;

namespace SockTrace.Tests.Support;

/// <summary>GET /api/v1/pods on 127.0.0.1: a recorded pod list, or with watch=true a chunked
/// stream of the events a test sends; and POST of TokenReviews and SubjectAccessReviews,
/// answered from <see cref="TokenUsers"/> and <see cref="Allowed"/>.</summary>
internal sealed class FakeKubernetesApi : IDisposable
{
    private readonly HttpListener _listener;
    private readonly Task _serving;
    private readonly Channel<string?> _events = Channel.CreateUnbounded<string?>();
    private readonly List<string> _requests = [];

    public FakeKubernetesApi()
    {
        // HttpListener takes a fixed prefix, so try ports until one is free.
        for (int port = Random.Shared.Next(20000, 40000); ; port++)
        {
            var listener = new HttpListener();
            try
            {
                listener.Prefixes.Add($"http://127.0.0.1:{port}/");
                listener.Start();
                _listener = listener;
                Url = $"http://127.0.0.1:{port}";
                break;
            }
            catch (HttpListenerException)
            {
                listener.Close();
            }
        }
        _serving = Task.Run(ServeAsync);
    }

    public string Url { get; }

    public volatile string PodList = "";

    public volatile bool Watching;

    /// <summary>Tokens the fake API server authenticates, and whose they are.</summary>
    public readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> TokenUsers = new();

    /// <summary>(user, verb, non-resource path) that SubjectAccessReviews allow.</summary>
    public readonly System.Collections.Concurrent.ConcurrentDictionary<(string User, string Verb, string Path), bool> Allowed = new();

    /// <summary>Request bodies of the reviews, in order.</summary>
    public IReadOnlyList<string> ReviewBodies
    {
        get { lock (_requests) return [.. _reviewBodies]; }
    }

    private readonly List<string> _reviewBodies = [];

    /// <summary>A kubeconfig that points a client at this server.</summary>
    public string KubeConfig(string path)
    {
        File.WriteAllText(path, $$$"""
            apiVersion: v1
            kind: Config
            clusters: [{name: fake, cluster: {server: "{{{Url}}}"}}]
            users: [{name: agent, user: {token: agent-token}}]
            contexts: [{name: fake, context: {cluster: fake, user: agent}}]
            current-context: fake
            """);
        return path;
    }

    public IReadOnlyList<string> Requests
    {
        get { lock (_requests) return [.. _requests]; }
    }

    public async Task Send(string type, string pod) => await _events.Writer.WriteAsync($$"""{"type":"{{type}}","object":{{pod}}}""");

    /// <summary>Closes the open watch, as the server does at its timeout.</summary>
    public async Task EndWatch() => await _events.Writer.WriteAsync(null);

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => Handle(context));
        }
    }

    private async Task Handle(HttpListenerContext context)
    {
        string url = context.Request.Url!.PathAndQuery;
        lock (_requests)
            _requests.Add(url);
        var response = context.Response;
        response.ContentType = "application/json";
        try
        {
            if (context.Request.HttpMethod == "POST" && url.StartsWith("/apis/", StringComparison.Ordinal))
            {
                string request = await new StreamReader(context.Request.InputStream).ReadToEndAsync();
                lock (_requests)
                    _reviewBodies.Add(request);
                byte[] body = Encoding.UTF8.GetBytes(Review(url, request));
                response.StatusCode = body.Length == 0 ? 404 : 201;
                await response.OutputStream.WriteAsync(body);
            }
            else if (!url.StartsWith("/api/v1/pods?", StringComparison.Ordinal))
            {
                response.StatusCode = 404;
            }
            else if (!url.Contains("watch=true", StringComparison.Ordinal))
            {
                byte[] body = Encoding.UTF8.GetBytes(PodList);
                await response.OutputStream.WriteAsync(body);
            }
            else
            {
                response.SendChunked = true;
                await response.OutputStream.FlushAsync();
                Watching = true;
                await foreach (string? e in _events.Reader.ReadAllAsync())
                {
                    if (e is null)
                        break;
                    await response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes(e + "\n"));
                    await response.OutputStream.FlushAsync();
                }
                Watching = false;
            }
            response.Close();
        }
        catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
        {
            // The client went away.
        }
    }

    /// <summary>The review with its status filled in, as the API server returns it.</summary>
    private string Review(string url, string request)
    {
        var review = System.Text.Json.Nodes.JsonNode.Parse(request)!.AsObject();
        var spec = review["spec"]!;
        if (url.StartsWith("/apis/authentication.k8s.io/v1/tokenreviews", StringComparison.Ordinal))
        {
            string token = spec["token"]!.GetValue<string>();
            review["status"] = TokenUsers.TryGetValue(token, out string? user)
                ? new System.Text.Json.Nodes.JsonObject { ["authenticated"] = true, ["user"] = new System.Text.Json.Nodes.JsonObject { ["username"] = user, ["uid"] = "uid-" + user, ["groups"] = new System.Text.Json.Nodes.JsonArray("system:authenticated") } }
                : new System.Text.Json.Nodes.JsonObject { ["authenticated"] = false, ["error"] = "invalid bearer token" };
        }
        else if (url.StartsWith("/apis/authorization.k8s.io/v1/subjectaccessreviews", StringComparison.Ordinal))
        {
            var attributes = spec["nonResourceAttributes"];
            bool allowed = attributes is not null && Allowed.ContainsKey((spec["user"]!.GetValue<string>(), attributes["verb"]!.GetValue<string>(), attributes["path"]!.GetValue<string>()));
            review["status"] = new System.Text.Json.Nodes.JsonObject { ["allowed"] = allowed, ["reason"] = allowed ? "allowed by test" : "" };
        }
        else
        {
            return "";
        }
        return review.ToJsonString();
    }

    public void Dispose()
    {
        _events.Writer.TryComplete();
        _listener.Close();
        _serving.Wait(TimeSpan.FromSeconds(5));
    }

    public static string PodListJson(string resourceVersion, params string[] pods) =>
        $$"""{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"{{resourceVersion}}"},"items":[{{string.Join(",", pods)}}]}""";

    /// <summary>A pod object trimmed from `kubectl get pod -o json`: the fields the index reads
    /// and enough around them that the model parses what a real server sends.</summary>
    public static string Pod(string ns, string name, string uid, params (string Name, string Id)[] containers) => PodOn("node-a", ns, name, uid, containers);

    public static string PodOn(string node, string ns, string name, string uid, params (string Name, string Id)[] containers)
    {
        string specs = string.Join(",", containers.Select(c => $$$"""{"name":"{{{c.Name}}}","image":"registry.example/{{{c.Name}}}:1.0","ports":[{"containerPort":8080,"protocol":"TCP"}]}"""));
        string statuses = string.Join(",", containers.Select(c => $$$"""
            {"name":"{{{c.Name}}}","ready":true,"restartCount":0,"image":"registry.example/{{{c.Name}}}:1.0","imageID":"registry.example/{{{c.Name}}}@sha256:00","containerID":"{{{c.Id}}}","started":true,"state":{"running":{"startedAt":"2026-11-25T02:00:00Z"} } }
            """));
        return $$$"""
            {"kind":"Pod","apiVersion":"v1",
             "metadata":{"name":"{{{name}}}","namespace":"{{{ns}}}","uid":"{{{uid}}}","resourceVersion":"1001","creationTimestamp":"2026-11-25T01:59:58Z","labels":{"app":"{{{name}}}"}},
             "spec":{"nodeName":"{{{node}}}","containers":[{{{specs}}}],"restartPolicy":"Always","serviceAccountName":"default"},
             "status":{"phase":"Running","podIP":"10.244.1.17","hostIP":"192.168.1.10","qosClass":"Burstable","containerStatuses":[{{{statuses}}}]}}
            """.ReplaceLineEndings("");
    }
}
