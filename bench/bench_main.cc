// main() of tern-bench-micro (in place of libbenchmark_main): registers the built-in transports
// (transports/builtin_transports.h), then runs the benchmarks the command line selects.
#include <benchmark/benchmark.h>

#include "transports/builtin_transports.h"

int main(int argc, char** argv) {
  tern::register_builtin_transports();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
