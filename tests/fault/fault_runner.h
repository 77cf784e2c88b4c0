// Runs one fault case end to end with GoogleTest assertions: starts the pair, drives the
// migration to the case's phase, injects the fault (and heals it: SIGCONT, link restored),
// then checks what must hold for that phase and records the outcome. Every wait is bounded
// and a bound that is hit fails the test with a message naming the case.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/control/ternd_process.h"
#include "tests/fault/fault_matrix.h"
#include "tests/fault/fault_qmp.h"
#include "tests/fault/fault_rig.h"

namespace tern::fault {

// What a case ended in, for the soak counts.
struct CaseOutcome {
  // completed: the migration finished despite the fault; failed-retried: it failed, the
  // source was intact (or re-created when killed) and a retry completed; recovered: postcopy
  // paused and resumed (migrate-recover + migrate resume); survivor-failed: a postcopy peer
  // died and the survivor failed clearly (after migrate_cancel, when it paused); skipped.
  std::string result;
  std::string cause;       // the error the fault caused (the failed side's error-desc)
  uint64_t pages_checked = 0;
  uint64_t pages_lost = 0;  // bad pages found by any check of the case (must stay 0)
  // Migrations that failed before the fault was injected (nothing injected yet: a starved
  // host's handshake deadline), each followed by a fresh `migrate`; the last error is kept.
  int early_failures = 0;
  std::string early_cause;
};

struct FaultTimes {
  // TERN_FAULT_HANDSHAKE_SECONDS: the handshake deadlines of a stop in setup (ternd
  // --handshake-timeout on both sides; ternd's default is 10 s), so that the stop need not last
  // 12 s to outlast them. Other cases and every retry keep the default.
  std::chrono::seconds handshake{3};
  // TERN_FAULT_STOP_SECONDS: before postcopy, a SIGSTOP past the handshake deadlines (default
  // handshake + 2 s).
  std::chrono::seconds stop{5};
  std::chrono::seconds cut{3};    // TERN_FAULT_CUT_SECONDS
  // TERN_FAULT_PEER_TIMEOUT_SECONDS: both sides' postcopy peer timeout (QMP
  // __io.github.tern_postcopy-peer-timeout; ternd's default is 10 s). A postcopy stop or cut
  // lasts postcopy_fault() = this + 2 s, so that the link breaks and recovery brings it back.
  std::chrono::seconds peer_timeout{3};
  std::chrono::seconds postcopy_fault() const { return peer_timeout + std::chrono::seconds(2); }
  static FaultTimes from_env();
};

class CaseRunner {
 public:
  CaseRunner(const FaultCase& c, FaultRig& rig, FaultTimes times);
  // The whole case; a GTEST_SKIP inside (recovery not built) leaves outcome().result "skipped".
  void run();
  const CaseOutcome& outcome() const { return outcome_; }
  const std::string& skip_reason() const { return skip_; }

 private:
  void start_pair();
  void probe_recovery();
  void configure_source();
  void migrate();
  // Waits for the case's phase. A migration that fails before it (the fault is not injected
  // yet) leaves its query-migrate in *early instead of failing the case.
  void reach_phase(Json* early);
  void inject();
  std::string processes();
  void judge_before_switch();
  void judge_postcopy();
  void recover();
  // retry_migration from `s` to `d`, its pages counted in the outcome.
  void retry(QmpClient& s, QmpClient& d, const std::string& step);
  void end_survivors();

  control::Ternd& target();
  void add(const PageCheck& pc);
  std::string what(const std::string& step) const { return name_ + ": " + step; }

  FaultCase case_;
  std::string name_;
  FaultRig& rig_;
  FaultTimes times_;
  std::unique_ptr<control::Ternd> dst_, src_, dst2_, src2_;
  std::unique_ptr<QmpClient> d_, s_;
  bool recovery_built_ = false;
  CaseOutcome outcome_;
  std::string skip_;
};

}  // namespace tern::fault
