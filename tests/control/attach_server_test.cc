// ternd's attach server (control/attach_server.h) and AttachedGuest against libtern-vmm in this
// process: a VMM serving from its own thread is driven through the Guest interface (pause,
// dirty sync through the shared bitmap, state); bad input is refused with a clear error:
// fds that are not shareable memory, too small, unaligned, overlapping regions, the wrong role,
// a capability the VMM lacks, a region change after attach, a VMM that goes away.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "attach/tern-vmm.h"
#include "control/attach_server.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;
using attach::Region;
using attach::UniqueFd;

UniqueFd memfd(uint64_t size) {
  int fd = memfd_create("ram", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  return UniqueFd(fd);
}

std::string refusal(const Region& r, UniqueFd fd, const std::vector<Region>& earlier = {}) {
  auto b = check_region(r, std::move(fd), earlier);
  return b ? "" : b.status().message();
}

TEST(CheckRegion, AcceptsAMemfdAndMapsIt) {
  auto b = check_region(Region{0, 1 << 20, 0, 0, kSmallPage, "ram"}, memfd(1 << 20), {});
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ((*b)->size(), 1u << 20);
}

TEST(CheckRegion, RefusesWhatIsNotShareableMemory) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  close(p[1]);
  EXPECT_NE(refusal(Region{0, 4096, 0, 0, kSmallPage, "ram"}, UniqueFd(p[0])).find("not a memfd"),
            std::string::npos);
  char path[] = "/var/tmp/tern-region-XXXXXX";  // a disk file system, not tmpfs
  int f = mkstemp(path);
  ASSERT_GE(f, 0);
  unlink(path);
  ASSERT_EQ(ftruncate(f, 4096), 0);
  std::string why = refusal(Region{0, 4096, 0, 0, kSmallPage, "ram"}, UniqueFd(f));
  if (why.empty()) GTEST_SKIP() << "/var/tmp is tmpfs here";
  EXPECT_NE(why.find("not a memfd"), std::string::npos) << why;
}

TEST(CheckRegion, RefusesTooSmallUnalignedAndOverlapping) {
  EXPECT_NE(refusal(Region{0, 1 << 20, 0, 0, kSmallPage, "ram"}, memfd(4096)).find("holds"),
            std::string::npos);
  EXPECT_NE(refusal(Region{0, 4096, 100, 0, kSmallPage, "ram"}, memfd(8192)).find("multiples"),
            std::string::npos);
  EXPECT_NE(refusal(Region{0, 4096, 0, 0, 8192, "ram"}, memfd(8192)).find("host page size"),
            std::string::npos);
  EXPECT_NE(refusal(Region{0, kHugePage, 0, 0, kHugePage, "ram"}, memfd(kHugePage))
                .find("not hugetlbfs"),
            std::string::npos);
  const std::vector<Region> earlier = {Region{1 << 20, 1 << 20, 0, 0, kSmallPage, "low"}};
  EXPECT_NE(refusal(Region{(1 << 20) + 4096, 4096, 0, 0, kSmallPage, "b"}, memfd(4096), earlier)
                .find("overlaps region 'low'"),
            std::string::npos);
  EXPECT_NE(refusal(Region{0, 4096, 0, 0, kSmallPage, "low"}, memfd(4096), earlier)
                .find("attached already"),
            std::string::npos);
}

// A VMM in this process: one memfd region of 1 MiB, a thread that serves ternd's requests.
class InProcessVmm : public ::testing::Test {
 protected:
  static constexpr uint64_t kSize = 1 << 20;
  void SetUp() override {
    char tmpl[] = "/tmp/tern-attach-srv-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/a.sock";
    ram_fd_ = memfd(kSize);
    ram_ = static_cast<uint8_t*>(
        mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd_.get(), 0));
    ASSERT_NE(ram_, MAP_FAILED);
  }
  void TearDown() override {
    if (serving_.joinable()) serving_.join();
    if (vmm_ != nullptr) tern_vmm_detach(vmm_, "test over");
    if (ram_ != nullptr && ram_ != MAP_FAILED) munmap(ram_, kSize);
    std::system(("rm -rf " + dir_).c_str());
  }
  static tern_vmm_ops ops() {
    tern_vmm_ops o{};
    o.pause = [](void* p) {
      static_cast<InProcessVmm*>(p)->paused_ = true;
      return 0;
    };
    o.resume = [](void* p) {
      static_cast<InProcessVmm*>(p)->paused_ = false;
      return 0;
    };
    o.dirty_log_start = [](void*) { return 0; };
    o.dirty_log_stop = [](void*) { return 0; };
    o.dirty_log_sync = [](void*, uint64_t* bitmap, uint64_t words) -> int64_t {
      if (words < 4) return -1;
      bitmap[0] |= 0b1010;          // pages 1 and 3
      bitmap[3] |= uint64_t{1} << 63;  // page 255, the region's last
      return 3;
    };
    o.save_state = [](void*, void** data, size_t* len) {
      *data = strdup("device-state");
      *len = 12;
      return 0;
    };
    return o;
  }
  // Attaches with `caps` as `role` to a server of `server_role`; serves from a thread.
  std::unique_ptr<AttachServer> attach_vmm(uint64_t caps, tern_vmm_role role = TERN_VMM_SOURCE,
                                           attach::Role server_role = attach::Role::kSource) {
    auto srv = AttachServer::listen(path_, server_role);
    EXPECT_TRUE(srv.is_ok()) << srv.status().to_string();
    tern_vmm_region r{"ram", ram_fd_.get(), 0, kSize, 0, ram_, kSmallPage};
    tern_vmm_config c{};
    c.role = role;
    c.capabilities = caps;
    c.vcpus = 1;
    c.description = "in-process test VMM";
    c.regions = &r;
    c.n_regions = 1;
    c.userfaultfd = -1;
    tern_vmm_ops o = ops();
    vmm_ = tern_vmm_attach(path_.c_str(), &c, &o, this, err_, sizeof err_);
    if (vmm_ != nullptr) serving_ = std::thread([this] { tern_vmm_serve(vmm_); });
    return srv ? std::move(*srv) : nullptr;
  }
  std::string dir_, path_;
  UniqueFd ram_fd_;
  uint8_t* ram_ = nullptr;
  tern_vmm* vmm_ = nullptr;
  char err_[512] = {};
  std::thread serving_;
  std::atomic<bool> paused_{false};
};

TEST_F(InProcessVmm, TheGuestIsServedThroughTheProtocol) {
  auto srv = attach_vmm(TERN_VMM_CAP_DIRTY_LOG | TERN_VMM_CAP_STATE);
  ASSERT_NE(vmm_, nullptr) << err_;
  auto g = srv->take(5s);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  AttachedGuest& guest = **g;
  ASSERT_EQ(guest.ram().size(), 1u);
  // ternd's mapping is the VMM's memory.
  ram_[5 * 4096] = 0x5a;
  EXPECT_EQ(guest.ram()[0]->base()[5 * 4096], 0x5a);
  EXPECT_TRUE(guest.running());
  guest.pause();
  EXPECT_TRUE(paused_);
  EXPECT_FALSE(guest.running());
  ASSERT_TRUE(guest.start_dirty_log().is_ok());
  MigrationBitmap bm(host_page_sizes(guest.ram()), block_sizes(guest.ram()));
  EXPECT_EQ(guest.collect_dirty(bm), 3u);
  EXPECT_TRUE(bm.block(0).test(1));
  EXPECT_TRUE(bm.block(0).test(3));
  EXPECT_TRUE(bm.block(0).test(255));
  EXPECT_EQ(bm.block(0).count(), 3u);
  std::vector<uint8_t> state = guest.save_state();
  EXPECT_EQ(std::string(state.begin(), state.end()), "device-state");
  ASSERT_TRUE(guest.start().is_ok());
  EXPECT_FALSE(paused_);
  // Capabilities the VMM did not offer are clear errors.
  Status t = guest.set_dirty_limit_tracking(true);
  EXPECT_NE(t.message().find("capability 'throttle'"), std::string::npos) << t.message();
  EXPECT_EQ(guest.dirty_limit_vcpus(), 0u);
  auto u = guest.postcopy_userfault();
  EXPECT_FALSE(u.is_ok());
  // The VMM goes away: the next request fails and the guest reports it from then on.
  guest.detach("test");
  serving_.join();
  EXPECT_TRUE(guest.failure().is_ok());
  guest.pause();
  EXPECT_FALSE(guest.failure().is_ok());
  EXPECT_NE(guest.failure().message().find("VMM"), std::string::npos);
}

TEST_F(InProcessVmm, TheVmmSeesTerndLeaveAndItsGuestResumed) {
  auto srv = attach_vmm(TERN_VMM_CAP_DIRTY_LOG);
  ASSERT_NE(vmm_, nullptr) << err_;
  auto g = srv->take(5s);
  ASSERT_TRUE(g.is_ok());
  (*g)->pause();
  EXPECT_TRUE(paused_);
  g->reset();  // ternd drops the guest (shutting down): it detaches
  serving_.join();
  EXPECT_FALSE(paused_) << "libtern-vmm resumes a guest ternd paused";
  EXPECT_EQ(std::string(tern_vmm_error(vmm_)).find("ternd"), 0u)
      << tern_vmm_error(vmm_);
}

TEST_F(InProcessVmm, TheWrongRoleIsRefused) {
  auto srv = attach_vmm(0, TERN_VMM_DESTINATION, attach::Role::kSource);
  EXPECT_EQ(vmm_, nullptr);
  EXPECT_NE(std::string(err_).find("this ternd is a source"), std::string::npos) << err_;
}

TEST_F(InProcessVmm, ADestinationLayoutMustMatchTheRegions) {
  auto srv = attach_vmm(TERN_VMM_CAP_STATE, TERN_VMM_DESTINATION, attach::Role::kDestination);
  ASSERT_NE(vmm_, nullptr) << err_;
  GuestFactory f = srv->factory();
  auto g = f(Layout{{BlockInfo{"ram", 2 * kSize, kSmallPage}}});
  ASSERT_FALSE(g.is_ok());
  EXPECT_NE(g.status().message().find("differs from the attached VMM's regions"),
            std::string::npos)
      << g.status().message();
}

TEST_F(InProcessVmm, ARegionChangeAfterAttachIsRefusedAndTheGuestGoesOn) {
  auto srv = AttachServer::listen(path_, attach::Role::kSource);
  ASSERT_TRUE(srv.is_ok());
  // A hand-written VMM: attach, then send a REGION (a hot-plug) and answer ternd's PAUSE.
  auto ch = attach::Channel::connect(path_, 5s);
  ASSERT_TRUE(ch.is_ok());
  auto call = [&](attach::MsgType t, attach::Bytes p, std::vector<int> fds = {}) {
    static uint32_t id = 1;
    EXPECT_TRUE(ch->send(t, id++, p, fds).is_ok());
    auto m = ch->receive(5s);
    EXPECT_TRUE(m.is_ok());
    return m ? m->type : attach::MsgType::kError;
  };
  ASSERT_EQ(call(attach::MsgType::kHello, attach::encode(attach::Hello{})), attach::MsgType::kReply);
  ASSERT_EQ(call(attach::MsgType::kRegion,
                 attach::encode(Region{0, kSize, 0, reinterpret_cast<uintptr_t>(ram_), kSmallPage,
                                       "ram"}),
                 {ram_fd_.get()}),
            attach::MsgType::kReply);
  ASSERT_EQ(call(attach::MsgType::kReady, attach::encode(attach::Ready{})), attach::MsgType::kReply);
  auto g = (*srv)->take(5s);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_TRUE(ch->send(attach::MsgType::kRegion, 99,
                       attach::encode(Region{kSize, kSize, 0, 0, kSmallPage, "more"}),
                       {ram_fd_.get()})
                  .is_ok());
  std::thread vmm([&] {  // ternd's PAUSE and the refusal of the REGION, in either order
    bool refused = false, paused = false;
    for (int i = 0; i < 2; ++i) {
      auto m = ch->receive(5s);
      ASSERT_TRUE(m.is_ok()) << m.status().to_string();
      if (m->type == attach::MsgType::kPause) {
        paused = true;
        EXPECT_TRUE(ch->send(attach::MsgType::kReply, m->id, {}).is_ok());
      } else {
        refused = m->type == attach::MsgType::kError && m->id == 99 &&
                  attach::decode_error(m->payload).message.find("fixed once attached") !=
                      std::string::npos;
      }
    }
    EXPECT_TRUE(refused && paused);
  });
  (*g)->pause();
  vmm.join();
  EXPECT_TRUE((*g)->failure().is_ok()) << (*g)->failure().message();
  EXPECT_EQ((*g)->ram().size(), 1u);
}

}  // namespace
}  // namespace tern::control
