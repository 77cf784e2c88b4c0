// Integration, two real ternd processes (docs/security.md): ternd will not start without a key
// or --insecure; a source refuses a destination with another key (its guest keeps running) and
// then migrates to the right one with every page verified; --insecure pairs still migrate and
// say so; a destination started with --expect-ram refuses a guest of another size.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "control/qmp_names.h"
#include "tests/control/ternd_process.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

constexpr const char* kGuest =
    "threads,vcpus=2,ram=32M,page=4K,wss=25%,rate=20000,pattern=random,seed=1";

using TerndTrust = TerndDirTest;

TEST_F(TerndTrust, RefusesToStartWithoutAKeyOrInsecure) {
  const std::string log = dir_ + "/refused.log";
  const std::string cmd = std::string(std::getenv("TERND")) + " --socket " + dir_ +
                          "/x.sock --incoming defer 2>" + log;
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2);
  std::ifstream f(log);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("--auth-key-file"), std::string::npos) << text;
  EXPECT_NE(text.find("--insecure"), std::string::npos) << text;
}

TEST_F(TerndTrust, ASourceRefusesAFakeDestinationThenMigratesToTheRealOne) {
  const std::string other = dir_ + "/other/";
  ASSERT_EQ(::mkdir(other.c_str(), 0700), 0);
  Ternd src(dir_, "src", {"--guest", kGuest});
  {
    Ternd fake(dir_, "fake", {"--auth-key-file", throwaway_key(other), "--incoming",
                              "tcp:127.0.0.1:0"});
    auto s = src.connect();
    auto f = fake.connect();
    ASSERT_TRUE(s && f);
    ASSERT_TRUE(s->execute("migrate", {{"uri", uri_of(*f)}}).is_ok());
    Json sq = wait_done(*s, 60s);
    ASSERT_EQ(sq["status"], "failed") << sq.dump(2);
    EXPECT_NE(sq["error-desc"].get<std::string>().find("cannot prove"), std::string::npos)
        << sq.dump(2);
    auto g = s->execute(ext::kQueryGuest);
    ASSERT_TRUE(g.is_ok());
    EXPECT_TRUE((*g)["running"].get<bool>()) << "the source guest keeps running";
  }
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0"});
  auto s = src.connect();
  auto d = dst.connect();
  ASSERT_TRUE(s && d);
  Json sq, dq;
  ASSERT_NO_FATAL_FAILURE(migrate_to_completion(*s, *d, &sq, &dq));
  EXPECT_EQ(sq[ext::kChannelSecurity], "psk");
  EXPECT_EQ(dq[ext::kChannelSecurity], "psk");
  auto dg = d->execute(ext::kQueryGuest);
  ASSERT_TRUE(dg.is_ok());
  EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u);
  EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
}

TEST_F(TerndTrust, InsecurePairsMigrateAndSaySo) {
  Ternd dst(dir_, "dst", {"--insecure", "--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--insecure", "--guest", kGuest});
  auto s = src.connect();
  auto d = dst.connect();
  ASSERT_TRUE(s && d);
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri_of(*d)}}).is_ok());
  Json sq = wait_done(*s, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  EXPECT_EQ(sq[ext::kChannelSecurity], "none");
}

TEST_F(TerndTrust, ADestinationRefusesAGuestOfAnotherSize) {
  Ternd dst(dir_, "dst", {"--expect-ram", "16M", "--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--guest", kGuest});
  auto s = src.connect();
  auto d = dst.connect();
  ASSERT_TRUE(s && d);
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri_of(*d)}}).is_ok());
  Json sq = wait_done(*s, 60s);
  Json dq = wait_done(*d, 30s);
  EXPECT_EQ(sq["status"], "failed") << sq.dump(2);
  ASSERT_EQ(dq["status"], "failed") << dq.dump(2);
  EXPECT_NE(dq["error-desc"].get<std::string>().find("expects 16 MiB"), std::string::npos)
      << dq.dump(2);
  auto g = s->execute(ext::kQueryGuest);
  ASSERT_TRUE(g.is_ok());
  EXPECT_TRUE((*g)["running"].get<bool>());
}

}  // namespace
}  // namespace tern::control
