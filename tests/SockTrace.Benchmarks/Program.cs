using BenchmarkDotNet.Running;

// dotnet run -c Release --project tests/SockTrace.Benchmarks -- --filter '*'
// scripts/bench.sh runs it with the rest of the measurements.
BenchmarkSwitcher.FromAssembly(typeof(SockTrace.Benchmarks.RecordPathBenchmarks).Assembly).Run(args);
