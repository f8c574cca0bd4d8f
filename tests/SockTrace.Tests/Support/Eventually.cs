namespace SockTrace.Tests.Support;

internal static class Eventually
{
    /// <summary>Polls until <paramref name="done"/> holds; records reach user space within the
    /// agent's poll interval, so waiting is part of the protocol, not a guess at timing. The
    /// bounds are generous because the kernel matrix runs under software emulation.</summary>
    public static void True(Func<bool> done, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(2));
        while (!done())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}");
            Thread.Sleep(20);
        }
    }
}
