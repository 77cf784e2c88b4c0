// KvmGuest free page reporting (S5), the host side of the protocol in vm/kvm/abi.h: ask the
// guest program for reports (a command id and a session in the control block), take the
// entries of its per-vCPU rings at its exits and acknowledge them, hand them to the engine.
//
// Why a reported page is never lost (Guest::take_free_pages' promise, in the engine's order:
// take, clear the hints, then collect the dirty log): only entries carrying the current id are
// kept, and the id changes after every collection (next_report_cmd). The guest tags a report
// with the id it read before it freed the unit, so the report, and any later write that reuses
// the unit, came after the last collection: that write reaches the next collection (or a later
// one), which the engine applies after this take's hints. A report taken after the id changed
// is dropped: a missed hint, never a lost page.
#include <algorithm>
#include <thread>

#include "vm/kvm/kvm_guest_vcpu.h"

namespace tern {

volatile tern_kvm_report_ctl* KvmGuest::report_ctl() const {
  return reinterpret_cast<volatile tern_kvm_report_ctl*>(gpa(TERN_KVM_REPORT));
}

// The guest stands in an OUT exit: its ring is quiet until this vCPU re-enters KVM_RUN.
void KvmGuest::take_reports(Vcpu& v) {
  auto* ring = reinterpret_cast<volatile tern_kvm_report_ring*>(
      gpa(TERN_KVM_REPORT_RINGS + v.index * TERN_KVM_REPORT_RING_SIZE));
  const uint32_t head = ring->head, cmd = report_cmd_.load(std::memory_order_acquire);
  uint32_t tail = ring->tail;
  if (head == tail) return;
  if (head - tail > TERN_KVM_REPORT_SLOTS) tail = head - TERN_KVM_REPORT_SLOTS;  // bad head
  std::lock_guard lk(report_mu_);
  for (; tail != head; ++tail) {
    const volatile tern_kvm_report_entry& e = ring->e[tail % TERN_KVM_REPORT_SLOTS];
    const tern_kvm_report_entry copy{e.first_page, e.pages, e.cmd};
    // Stale ids are dropped here; ranges are the guest's word (the engine checks them too),
    // but only the working set can be free.
    if (cmd == 0 || copy.cmd != cmd || copy.pages == 0 || copy.first_page < data_first_ ||
        copy.first_page + copy.pages > total_pages_)
      continue;
    reports_.push_back(copy);
  }
  ring->tail = head;  // acknowledged: the slots are the guest's again
}

// A new id (never 0), published for the guest and kept for take_reports.
void KvmGuest::next_report_cmd() {
  if (report_cmd_.load(std::memory_order_relaxed) == 0) return;
  if (++last_cmd_ == 0) ++last_cmd_;
  report_cmd_.store(last_cmd_, std::memory_order_release);
  report_ctl()->cmd = last_cmd_;
}

// A new session: the guest reports its whole free set at its next batch. A running guest gets a
// bounded wait for that first report (each vCPU records the session once its ring was taken),
// so that the first sync already skips the free set; the guest itself never waits.
Status KvmGuest::start_free_page_reporting() {
  if (!has_workload_) return Status(Code::kInvalidArgument, "kvm guest: no workload");
  {
    std::lock_guard lk(report_mu_);
    reports_.clear();
  }
  if (++last_cmd_ == 0) ++last_cmd_;
  ++report_session_;
  report_cmd_.store(last_cmd_, std::memory_order_release);
  report_ctl()->session = report_session_;
  report_ctl()->cmd = last_cmd_;
  if (!running_) return Status::ok();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (auto& v : vcpus_) {
    while (v->area->report_session != report_session_ && error().empty() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::ok();
}

uint64_t KvmGuest::take_free_pages(std::vector<Range>& out) {
  const uint32_t cmd = report_cmd_.load(std::memory_order_acquire);
  std::lock_guard lk(report_mu_);
  uint64_t n = 0;
  for (const tern_kvm_report_entry& e : reports_) {
    if (e.cmd != cmd) continue;
    out.push_back({0, e.first_page * 4096, uint64_t{e.pages} * 4096});
    n += e.pages;
  }
  reports_.clear();
  return n;
}

void KvmGuest::stop_free_page_reporting() {
  report_cmd_.store(0, std::memory_order_release);
  if (report_session_ != 0) report_ctl()->cmd = 0;  // only a guest asked (a source's RAM)
  std::lock_guard lk(report_mu_);
  reports_.clear();
}

}  // namespace tern
