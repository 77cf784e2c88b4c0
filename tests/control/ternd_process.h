// Test support for driving real ternd processes: one child process per object, and polling a
// migration to its end over QMP. Used by the ternd tests of tests/control, tests/kvm and
// tests/dpdk. The binary comes from $TERND (else "ternd" on PATH).
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "control/qmp_client.h"
#include "control/qmp_names.h"

extern char** environ;

namespace tern::control {

// A throwaway pre-shared key in DIR/tern-test.psk (mode 0600), made on first use: every ternd
// a test starts in DIR shares it, so its channels authenticate (docs/security.md). Returns the
// path; "" (with a test failure) if it cannot be written.
inline std::string throwaway_key(const std::string& dir) {
  const std::string path = dir + "/tern-test.psk";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EEXIST ? path : (ADD_FAILURE() << "cannot create " << path, "");
  unsigned char key[32];
  std::FILE* r = std::fopen("/dev/urandom", "rb");
  const bool got = r != nullptr && std::fread(key, 1, sizeof(key), r) == sizeof(key);
  if (r) std::fclose(r);
  std::string hex;
  for (unsigned char b : key) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  hex += "\n";
  const bool wrote = got && ::write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size());
  ::close(fd);
  if (!wrote) ADD_FAILURE() << "cannot write a key to " << path;
  return wrote ? path : "";
}

// One ternd child (--socket DIR/NAME.sock --no-pin --log-level warn, then `args`, with
// `extra_env` added to the environment), started through `launcher` when one is given (e.g.
// {"ip", "netns", "exec", "NS"}: it must exec ternd in its own process); killed (SIGCONT and
// SIGTERM, then SIGKILL) and reaped on destruction. `own_group`: the child leads a process
// group of its own, for tests that SIGSTOP it: a stopped child in the test's group gets the
// kernel's SIGHUP when that group is orphaned by some other member's exit.
// Unless `args` choose (--auth-key-file, --insecure or --tls-creds), it authenticates its channels with
// throwaway_key(DIR), like every other ternd of the test.
class Ternd {
 public:
  Ternd(const std::string& dir, const std::string& name, std::vector<std::string> args,
        const std::vector<std::string>& extra_env = {},
        const std::vector<std::string>& launcher = {}, bool own_group = false)
      : socket_(dir + "/" + name + ".sock"), env_(extra_env) {
    const char* bin = std::getenv("TERND");
    std::vector<std::string> argv = launcher;
    for (const char* a : {bin ? bin : "ternd", "--socket", socket_.c_str(), "--no-pin",
                          "--log-level", "warn"})
      argv.push_back(a);
    const bool chose = std::find_if(args.begin(), args.end(), [](const std::string& a) {
                         return a == "--auth-key-file" || a == "--insecure" || a == "--tls-creds";
                       }) != args.end();
    if (!chose) argv.insert(argv.end(), {"--auth-key-file", throwaway_key(dir)});
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (char** e = environ; *e; ++e) cenv.push_back(*e);
    for (auto& e : env_) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (own_group) {
      posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
      posix_spawnattr_setpgroup(&attr, 0);
    }
    if (posix_spawnp(&pid_, cargv[0], nullptr, &attr, cargv.data(), cenv.data()) != 0) pid_ = -1;
    posix_spawnattr_destroy(&attr);
  }
  Ternd(const Ternd&) = delete;
  Ternd& operator=(const Ternd&) = delete;
  ~Ternd() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::unique_ptr<QmpClient> connect() {
    auto c = QmpClient::connect(socket_, std::chrono::seconds(20));
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c ? std::move(*c) : nullptr;
  }
  bool started() const { return pid_ > 0; }
  // Sends `sig` to the child.
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  // True once the child has exited (reaped) within `limit`; exit_status() then tells how.
  bool wait_exit(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return true;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    do {
      if (waitpid(pid_, &exit_status_, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }
  // The child is still running (not exited; a stopped child counts as running).
  bool running() { return !wait_exit(std::chrono::milliseconds(0)); }
  // waitpid's status of the reaped child (valid once wait_exit returned true).
  int exit_status() const { return exit_status_; }

 private:
  std::string socket_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
  int exit_status_ = 0;
};

// Polls query-migrate until the status is `want` or `limit` passes; returns the last reply.
inline Json wait_status(QmpClient& c, const std::string& want, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  Json q;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = c.execute("query-migrate", Json::object(), std::chrono::seconds(5));
    if (r) {
      q = *r;
      if (q.value("status", "") == want) return q;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return q;
}

// Polls query-migrate until a terminal status or `limit`; returns the last reply.
inline Json wait_done(QmpClient& c, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  Json q;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = c.execute("query-migrate");
    if (!r) return {{"status", "query failed: " + r.status().message()}};
    q = *r;
    std::string s = q["status"];
    if (s == "completed" || s == "failed" || s == "cancelled") return q;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return q;
}

// Migrates from `s` to the URI `d` listens on (its query-incoming) and waits until both
// completed (a fatal test failure names the side that did not); their final query-migrate
// replies in *source / *destination when asked for. Call under ASSERT_NO_FATAL_FAILURE.
inline void migrate_to_completion(QmpClient& s, QmpClient& d, Json* source = nullptr,
                                  Json* destination = nullptr) {
  using namespace std::chrono_literals;
  auto inc = d.execute(ext::kQueryIncoming);
  ASSERT_TRUE(inc.is_ok()) << inc.status().to_string();
  auto started = s.execute("migrate", {{"uri", (*inc)["uri"]}});
  ASSERT_TRUE(started.is_ok()) << started.status().to_string();
  Json sq = wait_done(s, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  if (source) *source = std::move(sq);
  if (destination) *destination = std::move(dq);
}

// Turns on postcopy-ram (and postcopy-preempt if asked) and caps the bandwidth so that
// precopy runs long enough to switch. False (with a test failure) if ternd refuses.
inline bool arm_postcopy(QmpClient& s, bool preempt, uint64_t max_bandwidth) {
  Json caps = Json::array({{{"capability", "postcopy-ram"}, {"state", true}}});
  if (preempt) caps.push_back({{"capability", "postcopy-preempt"}, {"state", true}});
  auto c = s.execute("migrate-set-capabilities", {{"capabilities", caps}});
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  auto p = s.execute("migrate-set-parameters", {{"max-bandwidth", max_bandwidth}});
  EXPECT_TRUE(p.is_ok()) << p.status().to_string();
  return c.is_ok() && p.is_ok();
}

// Sends migrate-start-postcopy as soon as the source says "active", polling query-migrate
// every `interval` for at least `tries` x `interval` and at least 60 s (a loaded host may take
// seconds to set up). False (with a test failure) if it never switched or the migration ended.
inline bool start_postcopy_when_active(QmpClient& s, int tries, std::chrono::milliseconds interval) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::max<std::chrono::milliseconds>(tries * interval, std::chrono::seconds(60));
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto q = s.execute("query-migrate");
    if (!q) {
      ADD_FAILURE() << "query-migrate: " << q.status().to_string();
      return false;
    }
    last = (*q).value("status", "");
    if (last == "active") {
      auto r = s.execute("migrate-start-postcopy");
      EXPECT_TRUE(r.is_ok()) << r.status().to_string();
      return r.is_ok();
    }
    if (last == "completed" || last == "failed" || last == "cancelled") break;
    std::this_thread::sleep_for(interval);
  }
  ADD_FAILURE() << "the source never became active, so postcopy never started (last status '"
                << last << "')";
  return false;
}

// A fixture for tests that start ternd processes: skipped without $TERND; dir_ is a private
// temporary directory (sockets, keys, logs), removed afterwards. Base: ::testing::Test, or
// ::testing::TestWithParam<P> for parameterized cases.
template <typename Base = ::testing::Test>
class TerndDirFixture : public Base {
 protected:
  void SetUp() override {
    if (std::getenv("TERND") == nullptr) GTEST_SKIP() << "TERND (path to ternd) is not set";
    char tmpl[] = "/tmp/tern-ternd-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  // The URI a destination listens on (its query-incoming), "" with a test failure.
  std::string uri_of(QmpClient& d) {
    auto inc = d.execute(ext::kQueryIncoming);
    EXPECT_TRUE(inc.is_ok()) << inc.status().to_string();
    return inc.is_ok() ? (*inc)["uri"].get<std::string>() : "";
  }
  std::string dir_;
};
using TerndDirTest = TerndDirFixture<>;

}  // namespace tern::control
