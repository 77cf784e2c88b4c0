// main() of every rdma GoogleTest binary: with no RDMA device on this host the binary prints why
// and exits 77, which meson reports as SKIP (with that line as the reason); nothing is faked.
// The rdma suite runs these binaries inside a soft-RoCE VM when the host has no device
// (tests/rdma/run.sh). Like tests/test_main.cc, it registers the built-in transports first.
#include <gtest/gtest.h>

#include <cstdio>

#include "rdma/rdma_transport.h"
#include "transports/builtin_transports.h"

int main(int argc, char** argv) {
  tern::register_builtin_transports();
  ::testing::InitGoogleTest(&argc, argv);
  if (!tern::rdma_device_present()) {
    std::printf("SKIP: no RDMA device here (%s); `meson test --suite rdma` runs these tests "
                "inside a soft-RoCE VM\n",
                tern::rdma_device_summary().c_str());
    return 77;
  }
  std::printf("[ rdma     ] %s\n", tern::rdma_device_summary().c_str());
  return RUN_ALL_TESTS();
}
