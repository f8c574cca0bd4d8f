using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Net.Http.Headers;
using System.Text.Json.Serialization.Metadata;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// The four API calls the agent makes: list and watch the pods of a node, review a token,
/// review an access. <see cref="KubernetesConfig"/> says where and how to connect (the
/// server's address, TLS trust, client certificate, a service account token re-read as it
/// rotates); the requests and their JSON are made here, with source-generated serializers
/// for only the fields the agent uses (<see cref="KubernetesJson"/>), which keeps the native
/// build small and free of reflection.
/// </summary>
public sealed class KubernetesApi(KubernetesConfig config) : IDisposable
{
    private readonly HttpClient _http = new(config.CreateHandler());

    public Uri BaseUri => config.Server;

    public async Task<PodList> ListPodsAsync(string fieldSelector, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, $"api/v1/pods?fieldSelector={Uri.EscapeDataString(fieldSelector)}", null, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, KubernetesJson.Default.PodList, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The events of one watch, until the server ends it (at <paramref name="timeoutSeconds"/>).</summary>
    public async IAsyncEnumerable<PodEvent> WatchPodsAsync(string fieldSelector, string? resourceVersion, int timeoutSeconds,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string query = $"api/v1/pods?watch=true&fieldSelector={Uri.EscapeDataString(fieldSelector)}&timeoutSeconds={timeoutSeconds}"
            + (string.IsNullOrEmpty(resourceVersion) ? "" : $"&resourceVersion={Uri.EscapeDataString(resourceVersion)}");
        using var response = await SendAsync(HttpMethod.Get, query, null, cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
        // One JSON object a line (the watch protocol).
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length > 0)
                yield return JsonSerializer.Deserialize(line, KubernetesJson.Default.PodEvent) ?? throw new JsonException("an empty watch event");
        }
    }

    public async Task<TokenReview> ReviewTokenAsync(string token, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.Serialize(new TokenReview(new TokenReviewSpec(token)), KubernetesJson.Default.TokenReview);
        using var response = await SendAsync(HttpMethod.Post, "apis/authentication.k8s.io/v1/tokenreviews", body, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, KubernetesJson.Default.TokenReview, cancellationToken).ConfigureAwait(false);
    }

    public async Task<SubjectAccessReview> ReviewAccessAsync(SubjectAccessReviewSpec spec, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.Serialize(new SubjectAccessReview(spec), KubernetesJson.Default.SubjectAccessReview);
        using var response = await SendAsync(HttpMethod.Post, "apis/authorization.k8s.io/v1/subjectaccessreviews", body, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(response, KubernetesJson.Default.SubjectAccessReview, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends with the client's credentials; a status other than 2xx is an
    /// <see cref="HttpRequestException"/> that names the call and the server's reason.</summary>
    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string pathAndQuery, string? json, CancellationToken cancellationToken)
    {
        string baseUri = config.Server.AbsoluteUri;
        using var request = new HttpRequestMessage(method, new Uri(new Uri(baseUri.EndsWith('/') ? baseUri : baseUri + "/"), pathAndQuery));
        if (json is not null)
            request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        if (config.Token is { } token)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token.Value);
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.IsSuccessStatusCode)
            return response;
        using (response)
        {
            string reason = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (reason.Length > 300)
                reason = reason[..300];
            throw new HttpRequestException($"{method} {request.RequestUri!.AbsolutePath}: HTTP {(int)response.StatusCode} {response.ReasonPhrase} {reason}".TrimEnd(),
                null, response.StatusCode);
        }
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        return await JsonSerializer.DeserializeAsync(stream, type, cancellationToken).ConfigureAwait(false)
            ?? throw new JsonException($"{response.RequestMessage?.RequestUri?.AbsolutePath}: an empty answer");
    }

    public void Dispose() => _http.Dispose();
}
