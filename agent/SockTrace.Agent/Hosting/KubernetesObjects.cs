using System.Text.Json.Serialization;

namespace SockTrace.Agent.Hosting;

// The fields of the API objects the agent reads or sends, and no more: the client library's
// own models come with serializers for every Kubernetes type, which made up most of the
// native executable (BENCHMARKS.md, "Footprint").

/// <summary>A pod as the index reads it: its names and its containers' ids.</summary>
public sealed record Pod(ObjectMeta? Metadata, PodStatus? Status);

public sealed record ObjectMeta(string? Uid, string? Name, string? Namespace);

public sealed record PodStatus(List<ContainerStatus>? ContainerStatuses, List<ContainerStatus>? InitContainerStatuses, List<ContainerStatus>? EphemeralContainerStatuses);

/// <param name="ContainerId">"containerd://&lt;id&gt;" and the like.</param>
public sealed record ContainerStatus(string? Name, [property: JsonPropertyName("containerID")] string? ContainerId);

public sealed record PodList(ListMeta? Metadata, List<Pod>? Items);

public sealed record ListMeta(string? ResourceVersion);

/// <summary>One line of a watch: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.</summary>
public sealed record PodEvent(string? Type, Pod? Object);

/// <summary>authentication.k8s.io/v1 TokenReview.</summary>
public sealed record TokenReview(TokenReviewSpec? Spec, TokenReviewStatus? Status = null)
{
    public string ApiVersion => "authentication.k8s.io/v1";
    public string Kind => "TokenReview";
}

public sealed record TokenReviewSpec(string Token);

public sealed record TokenReviewStatus(bool? Authenticated, UserInfo? User, string? Error);

public sealed record UserInfo(string? Username, string? Uid, List<string>? Groups, Dictionary<string, List<string>>? Extra);

/// <summary>authorization.k8s.io/v1 SubjectAccessReview.</summary>
public sealed record SubjectAccessReview(SubjectAccessReviewSpec? Spec, SubjectAccessReviewStatus? Status = null)
{
    public string ApiVersion => "authorization.k8s.io/v1";
    public string Kind => "SubjectAccessReview";
}

public sealed record SubjectAccessReviewSpec(string? User, List<string>? Groups, string? Uid, Dictionary<string, List<string>>? Extra, NonResourceAttributes NonResourceAttributes);

public sealed record NonResourceAttributes(string Path, string Verb);

public sealed record SubjectAccessReviewStatus(bool? Allowed, string? Reason);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(PodList))]
[JsonSerializable(typeof(PodEvent))]
[JsonSerializable(typeof(TokenReview))]
[JsonSerializable(typeof(SubjectAccessReview))]
internal sealed partial class KubernetesJson : JsonSerializerContext;
