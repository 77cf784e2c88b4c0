// main() of every GoogleTest binary (in place of gtest_main): registers the built-in transports
// (transports/builtin_transports.h), as ternd does at start, then runs the tests.
#include <gtest/gtest.h>

#include "transports/builtin_transports.h"

int main(int argc, char** argv) {
  tern::register_builtin_transports();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
