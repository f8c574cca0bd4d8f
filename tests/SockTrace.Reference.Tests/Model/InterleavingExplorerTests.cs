namespace SockTrace.Reference.Tests.Model;

public sealed class InterleavingExplorerTests
{
    [Fact]
    public void AcceptAgainstCloseAndDup2HasSixOrdersAndSaysWhichRace()
    {
        var orders = InterleavingExplorer.AcceptAgainstCloseAndDup2();

        Assert.Equal(6, orders.Count);
        Assert.Equal(6, orders.Select(o => o.Order).Distinct().Count());
        // Only a close before the reservation hands accept the closed number; only a dup2
        // between that reservation and the install meets the empty slot.
        var ebusy = Assert.Single(orders, o => o.Ebusy);
        Assert.Equal("close a1, reserve, dup2 l->a1, install", ebusy.Order);
        Assert.True(ebusy.Reuse);
        Assert.Equal(["close a1, reserve, install, dup2 l->a1", "close a1, reserve, dup2 l->a1, install"],
            orders.Where(o => o.Reuse).Select(o => o.Order));
        Assert.All(orders.Where(o => !o.Order.StartsWith("close a1, reserve", StringComparison.Ordinal)), o => Assert.False(o.Reuse || o.Ebusy, o.ToString()));
    }

    [Fact]
    public void TheAcceptGetsTheClosedNumberOnlyWhenTheCloseCameFirst()
    {
        foreach (var o in InterleavingExplorer.AcceptAgainstCloseAndDup2())
        {
            int accepted = o.Run.Outcomes.Single(x => x.Step.Name == "accepted").Ret!.Value;
            bool closedFirst = o.Order.IndexOf("close", StringComparison.Ordinal) < o.Order.IndexOf("reserve", StringComparison.Ordinal);
            bool dupedFirst = o.Order.IndexOf("dup2", StringComparison.Ordinal) < o.Order.IndexOf("reserve", StringComparison.Ordinal);
            Assert.Equal(closedFirst && !dupedFirst ? 5 : 6, accepted);
        }
    }
}
