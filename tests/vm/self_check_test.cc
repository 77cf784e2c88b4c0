// check_guest (vm/self_check.h): the check ternd runs on a destination guest at completion.
#include "vm/self_check.h"

#include <gtest/gtest.h>

#include "vm/thread_guest.h"

namespace tern {
namespace {

std::unique_ptr<ThreadGuest> make_guest() {
  auto spec = parse_workload("vcpus=2,ram=8M,wss=50%,rate=0");
  EXPECT_TRUE(spec) << spec.status().to_string();
  auto g = ThreadGuest::create(*spec);
  EXPECT_TRUE(g) << g.status().to_string();
  return g ? std::move(g).value() : nullptr;
}

TEST(SelfCheck, RunningGuestIsPausedCheckedAndResumed) {
  auto g = make_guest();
  ASSERT_NE(self_check(*g), nullptr);
  ASSERT_TRUE(g->start());
  Result<VerifyReport> v = check_guest(*g);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v->mismatches, 0u) << v->first_mismatch;
  EXPECT_EQ(v->pages_checked, g->target_pages() - g->table_pages());
  EXPECT_TRUE(g->running()) << "resumed after the check";
  g->pause();
}

TEST(SelfCheck, PausedGuestStaysPaused) {
  auto g = make_guest();
  ASSERT_TRUE(g->run_ops(100));
  Result<VerifyReport> v = check_guest(*g);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v->mismatches, 0u) << v->first_mismatch;
  EXPECT_FALSE(g->running());
}

TEST(SelfCheck, CorruptPageIsReported) {
  auto g = make_guest();
  ASSERT_TRUE(g->run_ops(100));
  const uint64_t p = g->table_pages() + 3;
  g->ram()[0]->base()[p * 4096 + 200] ^= 1;
  Result<VerifyReport> v = check_guest(*g);
  ASSERT_TRUE(v.is_ok());
  EXPECT_GE(v->mismatches, 1u);
  EXPECT_FALSE(v->first_mismatch.empty());
}

// A guest that keeps no record of its pages (an attached VMM, say).
class OpaqueGuest : public Guest {
 public:
  const std::vector<RamBlock*>& ram() const override { return ram_; }
  Status start() override { return Status::ok(); }
  void pause() override {}
  bool running() const override { return false; }
  Status start_dirty_log() override { return Status::ok(); }
  void stop_dirty_log() override {}
  uint64_t collect_dirty(MigrationBitmap&) override { return 0; }
  std::vector<uint8_t> save_state() override { return {}; }
  Status load_state(const std::vector<uint8_t>&) override { return Status::ok(); }
  std::string describe() const override { return "opaque"; }

 private:
  std::vector<RamBlock*> ram_;
};

TEST(SelfCheck, GuestWithoutSelfCheckIsAClearError) {
  OpaqueGuest g;
  EXPECT_EQ(self_check(g), nullptr);
  Result<VerifyReport> v = check_guest(g);
  ASSERT_FALSE(v.is_ok());
  EXPECT_EQ(v.status().code(), Code::kUnavailable);
  EXPECT_NE(v.status().message().find("opaque"), std::string::npos) << v.status().message();
}

}  // namespace
}  // namespace tern
