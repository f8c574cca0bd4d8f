using System.Net;
using System.Text;
using System.Threading.Channels;

namespace SockTrace.Tests.Support;

/// <summary>GET /api/v1/pods on 127.0.0.1: a recorded pod list, or with watch=true a chunked
/// stream of the events a test sends.</summary>
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
            if (!url.StartsWith("/api/v1/pods?", StringComparison.Ordinal))
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
