namespace SockTrace.Tests.Support;

/// <summary>curl, as a scraper outside .NET: (status, body, verbose log with the TLS details).</summary>
internal static class Curl
{
    public static (int Status, string Body, string Log) Get(string url, string? caFile = null, string? token = null)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("curl") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in new[] { "-sS", "-v", "--max-time", "20", "-w", "\n%{http_code}" })
            psi.ArgumentList.Add(a);
        if (caFile is not null)
        {
            psi.ArgumentList.Add("--cacert");
            psi.ArgumentList.Add(caFile);
        }
        if (token is not null)
        {
            psi.ArgumentList.Add("-H");
            psi.ArgumentList.Add("Authorization: Bearer " + token);
        }
        psi.ArgumentList.Add(url);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        int cut = stdout.LastIndexOf('\n');
        int status = int.Parse(stdout[(cut + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        return (status, stdout[..Math.Max(cut, 0)], stderr.Result);
    }
}
