using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace SockTrace.Agent.Hosting;

/// <summary>
/// A kubeconfig, read as kubectl reads it: $KUBECONFIG may list several files (':'), merged
/// with the first file to define a name or the current-context winning; files that do not
/// exist are skipped. The current context names a cluster (server, certificate-authority or
/// -data, insecure-skip-tls-verify) and a user (token or tokenFile, client-certificate and
/// client-key or their -data); paths are relative to the file that names them, and -data
/// wins over its path as in client-go. What would make the agent run a program or speak as
/// someone else (exec credential plugins, auth-providers, impersonation) or reach the server
/// another way (proxy-url, tls-server-name) is refused with one line rather than ignored.
/// </summary>
internal static class Kubeconfig
{
    private static readonly string[] RefusedUserFields = ["exec", "auth-provider", "username", "password", "as", "as-uid", "as-groups", "as-user-extra"];
    private static readonly string[] RefusedClusterFields = ["proxy-url", "tls-server-name"];

    /// <summary>A named entry of one file, and the directory its relative paths start from.</summary>
    private readonly record struct Entry(Dictionary<string, object?>? Body, string File);

    public static KubernetesConfig Load(string kubeconfigVariable) =>
        FromFiles(kubeconfigVariable.Split(':', StringSplitOptions.RemoveEmptyEntries));

    public static KubernetesConfig FromFiles(IReadOnlyList<string> paths)
    {
        var clusters = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var users = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var contexts = new Dictionary<string, Entry>(StringComparer.Ordinal);
        string? currentContext = null, currentContextFile = null;
        int read = 0;
        foreach (string path in paths)
        {
            if (!File.Exists(path))
                continue;
            read++;
            var root = Parse(path);
            if (root is null)
                continue;
            if (Scalar(root, "current-context", path) is { Length: > 0 } current && currentContext is null)
                (currentContext, currentContextFile) = (current, path);
            Collect(root, "clusters", "cluster", path, clusters);
            Collect(root, "users", "user", path, users);
            Collect(root, "contexts", "context", path, contexts);
        }
        if (read == 0)
            throw new KubernetesConfigException(paths.Count == 1 ? $"the kubeconfig {paths[0]} does not exist" : $"none of the kubeconfig files {string.Join(", ", paths)} exists");
        string files = string.Join(", ", paths);
        if (currentContext is null)
            throw new KubernetesConfigException($"kubeconfig {files}: no current-context");
        if (!contexts.TryGetValue(currentContext, out var context))
            throw new KubernetesConfigException($"kubeconfig {currentContextFile}: the current-context \"{currentContext}\" is not among the contexts");
        string where = $"kubeconfig {context.File}: context \"{currentContext}\"";
        string clusterName = Scalar(context.Body, "cluster", where) is { Length: > 0 } c ? c : throw new KubernetesConfigException($"{where} names no cluster");
        if (!clusters.TryGetValue(clusterName, out var cluster))
            throw new KubernetesConfigException($"{where} names the cluster \"{clusterName}\", which is not defined");
        Entry? user = null;
        if (Scalar(context.Body, "user", where) is { Length: > 0 } userName)
        {
            user = users.TryGetValue(userName, out var u) ? u
                : throw new KubernetesConfigException($"{where} names the user \"{userName}\", which is not defined");
        }
        return Build(clusterName, cluster, Scalar(context.Body, "user", where), user);
    }

    private static KubernetesConfig Build(string clusterName, Entry cluster, string? userName, Entry? user)
    {
        string clusterWhere = $"kubeconfig {cluster.File}: cluster \"{clusterName}\"", where = clusterWhere;
        var body = cluster.Body;
        foreach (string field in RefusedClusterFields)
        {
            if (body?.ContainsKey(field) == true)
                throw new KubernetesConfigException($"{where} sets {field}, which the agent does not support");
        }
        string server = Scalar(body, "server", where) is { Length: > 0 } s ? s : throw new KubernetesConfigException($"{where} has no server");
        if (!Uri.TryCreate(server, UriKind.Absolute, out var serverUri) || serverUri.Scheme is not ("https" or "http"))
            throw new KubernetesConfigException($"{where}: the server {server} is not an http(s) URL");
        bool insecure = Bool(body, "insecure-skip-tls-verify", where);
        string? caPem = Pem(body, "certificate-authority", cluster.File, where);
        if (insecure && caPem is not null)
            throw new KubernetesConfigException($"{where} sets both a certificate authority and insecure-skip-tls-verify");

        BearerToken? token = null;
        X509Certificate2? clientCertificate = null;
        if (user is { } u)
        {
            where = $"kubeconfig {u.File}: user \"{userName}\"";
            var ub = u.Body;
            foreach (string field in RefusedUserFields)
            {
                if (ub?.ContainsKey(field) == true)
                {
                    throw new KubernetesConfigException(field is "exec" or "auth-provider"
                        ? $"{where} authenticates through {(field == "exec" ? "an exec credential plugin" : "an auth-provider")}, which the agent does not run: give it a token, a tokenFile or a client certificate"
                        : $"{where} sets {field}, which the agent does not support: give it a token, a tokenFile or a client certificate");
                }
            }
            // As client-go: an inline token wins over tokenFile.
            if (Scalar(ub, "token", where) is { Length: > 0 } inline)
                token = BearerToken.Inline(inline);
            else if (Scalar(ub, "tokenFile", where) is { Length: > 0 } tokenFile)
            {
                try
                {
                    token = BearerToken.FromFile(Relative(tokenFile, u.File));
                }
                catch (KubernetesConfigException ex)
                {
                    throw new KubernetesConfigException($"{where}: {ex.Message}");
                }
            }
            string? certPem = Pem(ub, "client-certificate", u.File, where), keyPem = Pem(ub, "client-key", u.File, where);
            if ((certPem is null) != (keyPem is null))
                throw new KubernetesConfigException($"{where} has a {(certPem is null ? "client-key without a client-certificate" : "client-certificate without a client-key")}");
            if (certPem is not null)
            {
                try
                {
                    clientCertificate = X509Certificate2.CreateFromPem(certPem, keyPem);
                }
                catch (Exception ex) when (ex is CryptographicException or ArgumentException)
                {
                    throw new KubernetesConfigException($"{where}: the client certificate and key cannot be read: {ex.Message}");
                }
            }
        }
        return new KubernetesConfig(serverUri)
        {
            InsecureSkipTlsVerify = insecure,
            CertificateAuthority = caPem is null ? null : KubernetesConfig.Certificates(caPem, $"{clusterWhere}: the certificate authority"),
            Token = token,
            ClientCertificate = clientCertificate,
        };
    }

    private static Dictionary<string, object?>? Parse(string path)
    {
        string text = KubernetesConfig.ReadFile(path, "the kubeconfig");
        object? root;
        try
        {
            root = KubeconfigYaml.Parse(text);
        }
        catch (FormatException ex)
        {
            throw new KubernetesConfigException($"kubeconfig {path}: {ex.Message}");
        }
        return root switch
        {
            null => null,
            Dictionary<string, object?> map => map,
            _ => throw new KubernetesConfigException($"kubeconfig {path} is not a mapping"),
        };
    }

    /// <summary>Each item of the list <paramref name="list"/> ({name, <paramref name="item"/>: {...}}), unless an earlier file named it.</summary>
    private static void Collect(Dictionary<string, object?> root, string list, string item, string file, Dictionary<string, Entry> into)
    {
        if (!root.TryGetValue(list, out var value) || value is null)
            return;
        if (value is not List<object?> items)
            throw new KubernetesConfigException($"kubeconfig {file}: {list} is not a list");
        foreach (var element in items)
        {
            if (element is not Dictionary<string, object?> named)
                throw new KubernetesConfigException($"kubeconfig {file}: an entry of {list} is not a mapping");
            string name = Scalar(named, "name", $"kubeconfig {file}: {list}") is { Length: > 0 } n
                ? n : throw new KubernetesConfigException($"kubeconfig {file}: an entry of {list} has no name");
            var body = named.GetValueOrDefault(item) switch
            {
                null => null,
                Dictionary<string, object?> map => map,
                _ => throw new KubernetesConfigException($"kubeconfig {file}: {item} \"{name}\" is not a mapping"),
            };
            into.TryAdd(name, new Entry(body, file));
        }
    }

    private static string? Scalar(Dictionary<string, object?>? map, string key, string where) =>
        map?.GetValueOrDefault(key) switch
        {
            null => null,
            string s => s,
            _ => throw new KubernetesConfigException($"{where}: {key} is not a string"),
        };

    private static bool Bool(Dictionary<string, object?>? map, string key, string where) =>
        Scalar(map, key, where) switch
        {
            null => false,
            var s when s.Equals("true", StringComparison.OrdinalIgnoreCase) => true,
            var s when s.Equals("false", StringComparison.OrdinalIgnoreCase) => false,
            var s => throw new KubernetesConfigException($"{where}: {key} is \"{s}\", not true or false"),
        };

    /// <summary>The PEM of FIELD-data (base64) or else of the file FIELD names, or null when neither is set.</summary>
    private static string? Pem(Dictionary<string, object?>? map, string field, string file, string where)
    {
        if (Scalar(map, field + "-data", where) is { Length: > 0 } data)
        {
            try
            {
                return Encoding.UTF8.GetString(Convert.FromBase64String(data));
            }
            catch (FormatException)
            {
                throw new KubernetesConfigException($"{where}: {field}-data is not base64");
            }
        }
        if (Scalar(map, field, where) is not { Length: > 0 } path)
            return null;
        string full = Relative(path, file);
        try
        {
            return File.ReadAllText(full);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new KubernetesConfigException($"{where}: cannot read the {field} file {full}: {ex.Message}");
        }
    }

    /// <summary>A path as written in <paramref name="file"/>: relative ones start at its directory.</summary>
    private static string Relative(string path, string file) =>
        Path.IsPathRooted(path) ? path : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file)) ?? "", path);
}
