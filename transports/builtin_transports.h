// The built-in transports: registers loopback and tcp, and rdma and dpdk when they are built
// into this program, with the engine's transport registry (dataplane/transport.h), in the order
// the default choice prefers them: rdma if an RDMA device is present, else dpdk if it can start,
// else tcp (loopback is never the default).
//
// A program that migrates (ternd, the tests, the benchmarks) calls it once at start, before it
// names a transport; later calls do nothing. It is an explicit call rather than a static
// constructor so that the registration happens in a known order, and because a linker drops an
// unreferenced object of a static library, constructor and all.
//
// Threads: any thread; concurrent first calls are serialized.
#pragma once

namespace tern {

void register_builtin_transports();

}  // namespace tern
