using SockTrace.Agent.Hosting;

namespace SockTrace.Tests.Hosting;

/// <summary>The YAML subset kubeconfig files are written in: what kubectl writes, the flow
/// style the tests and the soak write, JSON; and the constructs beyond it, refused with their place.</summary>
public sealed class KubeconfigYamlTests
{
    [Fact]
    public void WhatKubectlWrites()
    {
        // `kubectl config view --raw` of a kind cluster, shortened: sequences at their key's indentation.
        var root = Map(KubeconfigYaml.Parse("""
            apiVersion: v1
            clusters:
            - cluster:
                certificate-authority-data: TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PQ==
                server: https://127.0.0.1:36729
              name: kind-kind
            contexts:
            - context:
                cluster: kind-kind
                user: kind-kind
              name: kind-kind
            current-context: kind-kind
            kind: Config
            preferences: {}
            users:
            - name: kind-kind
              user:
                token: abc.def
            """));
        Assert.Equal("kind-kind", root["current-context"]);
        Assert.Equal(new Dictionary<string, object?>(), root["preferences"]);
        var cluster = Map(Map(List(root["clusters"])[0])["cluster"]);
        Assert.Equal("https://127.0.0.1:36729", cluster["server"]);
        Assert.Equal("TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PQ==", cluster["certificate-authority-data"]);
        Assert.Equal("kind-kind", Map(List(root["clusters"])[0])["name"]);
        Assert.Equal("abc.def", Map(Map(List(root["users"])[0])["user"])["token"]);
        Assert.Equal(["apiVersion", "clusters", "contexts", "current-context", "kind", "preferences", "users"], root.Keys.Order());
    }

    [Fact]
    public void IndentedSequencesCommentsAndQuotes()
    {
        var root = Map(KubeconfigYaml.Parse("""
            # written by hand
            ---
            users:
              - name: 'it''s me'   # a comment after a value
                user:
                  token: "a\"b\\c\u00e9"
                  tokenFile: /var/run/#not-a-comment
              -   name: second
                  user: ~
            empty:
            nothing: null
            quoted-null: "null"
            url: http://h:1/p#frag
            ...
            """));
        var users = List(root["users"]);
        Assert.Equal(2, users.Count);
        Assert.Equal("it's me", Map(users[0])["name"]);
        Assert.Equal("a\"b\\c\u00e9", Map(Map(users[0])["user"])["token"]);
        Assert.Equal("/var/run/#not-a-comment", Map(Map(users[0])["user"])["tokenFile"]);
        Assert.Equal("second", Map(users[1])["name"]);
        Assert.Null(Map(users[1])["user"]);
        Assert.Null(root["empty"]);
        Assert.Null(root["nothing"]);
        Assert.Equal("null", root["quoted-null"]);
        Assert.Equal("http://h:1/p#frag", root["url"]);
    }

    [Fact]
    public void FlowStyleAndJson()
    {
        var flow = Map(KubeconfigYaml.Parse("""
            clusters: [{name: fake, cluster: {server: "http://127.0.0.1:8080", insecure-skip-tls-verify: true}}]
            users: [
              {name: agent, user: {token: agent-token}},   # across lines
              {name: other, user: {}}
            ]
            contexts: []
            """));
        var cluster = Map(Map(List(flow["clusters"])[0])["cluster"]);
        Assert.Equal("http://127.0.0.1:8080", cluster["server"]);
        Assert.Equal("true", cluster["insecure-skip-tls-verify"]);
        Assert.Equal(2, List(flow["users"]).Count);
        Assert.Empty(List(flow["contexts"]));

        var json = Map(KubeconfigYaml.Parse("""
            {
              "kind": "Config",
              "clusters": [{"name": "j", "cluster": {"server": "https://[fd00::1]:6443"}}],
              "current-context":"j"
            }
            """));
        Assert.Equal("https://[fd00::1]:6443", Map(Map(List(json["clusters"])[0])["cluster"])["server"]);
        Assert.Equal("j", json["current-context"]);
    }

    [Fact]
    public void AnEmptyDocumentIsNull()
    {
        Assert.Null(KubeconfigYaml.Parse(""));
        Assert.Null(KubeconfigYaml.Parse("# nothing\n\n"));
    }

    [Theory]
    [InlineData("a: &x 1\nb: *x\n", "line 1, column 4: an anchor")]
    [InlineData("a: !!str 1\n", "line 1, column 4: a tag")]
    [InlineData("a: |\n  text\n", "line 1, column 4: a block scalar")]
    [InlineData("a:\n\tb: 1\n", "line 2, column 1: a tab in indentation")]
    [InlineData("a: 1\nb: 2\na: 3\n", "line 3, column 1: the key 'a' appears twice")]
    [InlineData("a: \"open\n", "line 1, column 4: a quoted scalar that spans lines")]
    [InlineData("a: [1, 2\n", "'[' is never closed")]
    [InlineData("a: 1\n  more\n", "line 1, column 4: a plain scalar continued on the next line")]
    [InlineData("a: 1\n  b: 2\n", "line 2, column 3: this line is indented more than the mapping")]
    [InlineData("a:\n  b: 1\n   c: 2\n", "line 3, column 4: this line is indented more than the mapping")]
    [InlineData("a: b: c\n", "line 1, column 5: a mapping cannot start on its key's line")]
    [InlineData("a: 1\n---\nb: 2\n", "more than one document")]
    [InlineData("just words\nnext: 1\n", "line 2, column 1: unexpected content")]
    public void WhatIsRefusedIsNamedWithItsPlace(string yaml, string message)
    {
        var ex = Assert.Throws<FormatException>(() => KubeconfigYaml.Parse(yaml));
        Assert.Contains(message, ex.Message);
    }

    private static Dictionary<string, object?> Map(object? node) => Assert.IsType<Dictionary<string, object?>>(node);

    private static List<object?> List(object? node) => Assert.IsType<List<object?>>(node);
}
