namespace SockTrace.Tests.Support;

/// <summary>A throwaway certificate authority made with openssl, issuing serving certificates
/// for 127.0.0.1, in a temporary directory removed on dispose.</summary>
internal sealed class TestCa : IDisposable
{
    public TestCa()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("socktrace-ca-").FullName;
        OpenSsl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", Path.Combine(Directory, "ca.key"), "-out", CaFile, "-days", "1", "-subj", "/CN=socktrace-test-ca");
    }

    public string Directory { get; }
    public string CaFile => Path.Combine(Directory, "ca.pem");

    /// <summary>A certificate with this common name for IP 127.0.0.1, written to (cert, key);
    /// each file is replaced by a rename, as cert-manager's Secret update is seen through the kubelet's symlink swap.</summary>
    public void Issue(string commonName, string certFile, string keyFile)
    {
        string key = Path.Combine(Directory, commonName + ".key"), csr = Path.Combine(Directory, commonName + ".csr"),
            cert = Path.Combine(Directory, commonName + ".crt"), ext = Path.Combine(Directory, "san.ext");
        File.WriteAllText(ext, "subjectAltName=IP:127.0.0.1\n");
        OpenSsl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + commonName);
        OpenSsl("x509", "-req", "-in", csr, "-CA", CaFile, "-CAkey", Path.Combine(Directory, "ca.key"), "-CAcreateserial",
            "-out", cert, "-days", "1", "-extfile", ext);
        File.Copy(key, keyFile + ".new", overwrite: true);
        File.Move(keyFile + ".new", keyFile, overwrite: true);
        File.Copy(cert, certFile + ".new", overwrite: true);
        File.Move(certFile + ".new", certFile, overwrite: true);
    }

    private static void OpenSsl(params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("openssl") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"openssl {string.Join(' ', args)}: {err}");
    }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
