#include "tests/fault/fault_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "control/qmp_names.h"

namespace tern::fault {

using namespace std::chrono_literals;
using control::Ternd;

namespace {

// A case starts its migration at most this many times when it fails before the fault.
constexpr int kMigrateAttempts = 3;

std::chrono::seconds seconds_from_env(const char* name, std::chrono::seconds fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::chrono::seconds(std::atoi(v)) : fallback;
}

bool is_status(const Json& q, const char* s) { return status_of(q) == s; }

uint64_t transferred(const Json& q) {
  return q.contains("ram") ? q["ram"].value("transferred", uint64_t{0}) : 0;
}

// Failed before any page moved (the channels' handshake): the only failure a case may retry
// before its fault is injected. A failure after data moved, with no fault, fails the case.
bool failed_in_handshake(const Json& q) { return is_status(q, "failed") && transferred(q) == 0; }

std::string error_of(const Json& q) { return q.value("error-desc", std::string("")); }

}  // namespace

FaultTimes FaultTimes::from_env() {
  FaultTimes t;
  t.handshake = seconds_from_env("TERN_FAULT_HANDSHAKE_SECONDS", t.handshake);
  t.stop = seconds_from_env("TERN_FAULT_STOP_SECONDS", t.handshake + std::chrono::seconds(2));
  t.cut = seconds_from_env("TERN_FAULT_CUT_SECONDS", t.cut);
  t.peer_timeout = seconds_from_env("TERN_FAULT_PEER_TIMEOUT_SECONDS", t.peer_timeout);
  return t;
}

CaseRunner::CaseRunner(const FaultCase& c, FaultRig& rig, FaultTimes times)
    : case_(c), name_(c.name()), rig_(rig), times_(times) {}

Ternd& CaseRunner::target() { return case_.side == Side::kSource ? *src_ : *dst_; }

void CaseRunner::add(const PageCheck& pc) {
  outcome_.pages_checked += pc.checked;
  outcome_.pages_lost += pc.bad;
}

void CaseRunner::run() {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  if (case_.phase == Phase::kPostcopy) {
    ASSERT_NO_FATAL_FAILURE(probe_recovery());
    if (!recovery_built_ && case_.fault == Fault::kCut) {
      skip_ = "postcopy recovery not built: migrate-recover unknown";
      outcome_.result = "skipped";
      return;
    }
  }
  ASSERT_NO_FATAL_FAILURE(configure_source());
  // The case is about its fault: a migration that fails before the fault is injected (on a
  // starved host a handshake can outlast its deadline) is started again, a bounded number of
  // times, and counted in the record.
  for (int attempt = 1;; ++attempt) {
    ASSERT_NO_FATAL_FAILURE(migrate());
    Json early;
    ASSERT_NO_FATAL_FAILURE(reach_phase(&early));
    if (early.is_null()) break;
    outcome_.early_failures = attempt;
    outcome_.early_cause = error_of(early);
    ASSERT_LT(attempt, kMigrateAttempts)
        << what("the migration failed before the fault each of ") << kMigrateAttempts
        << " times: " << early.dump();
    std::cerr << what("the migration failed before the fault was injected (") << error_of(early)
              << "): migrating again\n";
  }
  ASSERT_NO_FATAL_FAILURE(inject());
  if (case_.phase == Phase::kPostcopy) {
    ASSERT_NO_FATAL_FAILURE(judge_postcopy());
  } else {
    ASSERT_NO_FATAL_FAILURE(judge_before_switch());
  }
  end_survivors();
}

void CaseRunner::start_pair() {
  // A stop in setup: short handshake deadlines on both sides, which the stop outlasts (a cut
  // keeps the default, which outlasts the cut: the handshake then survives it).
  std::vector<std::string> extra;
  if (case_.phase == Phase::kSetup && case_.fault == Fault::kStop)
    extra = {"--handshake-timeout",
             std::to_string(std::chrono::milliseconds(times_.handshake).count())};
  // postcopy: armed in configure_source, after its peer timeout is set.
  dst_ = rig_.start_destination("dst", extra, case_.phase == Phase::kPostcopy);
  src_ = rig_.start_source("src", extra);
  ASSERT_TRUE(dst_->started() && src_->started()) << what("starting ternd");
  d_ = dst_->connect();
  s_ = src_->connect();
  ASSERT_TRUE(d_ && s_) << what("connecting to ternd's QMP");
}

// The recovery commands exist when the destination knows migrate-recover: outside a paused
// postcopy it refuses the call for its state, where a ternd without recovery says
// CommandNotFound.
void CaseRunner::probe_recovery() {
  auto r = d_->execute_raw("migrate-recover", {{"uri", rig_.listen_uri()}}, 10s);
  ASSERT_TRUE(r.is_ok()) << what("probing migrate-recover: ") << r.status().to_string();
  recovery_built_ = !(r->contains("error") && (*r)["error"].value("class", "") == "CommandNotFound");
  if (recovery_built_) {
    ASSERT_TRUE(r->contains("error")) << what("migrate-recover outside postcopy-paused was "
                                              "accepted: ")
                                      << r->dump();
  }
}

void CaseRunner::configure_source() {
  Json params = Json::object();
  switch (case_.phase) {
    case Phase::kSetup: break;
    case Phase::kPrecopy:
      params["max-bandwidth"] = 8 << 20;  // ~4 s a round
      // On a starved host the source moves less than the guest dirties (1 MB/s against
      // 1.5 MB/s at load 16): rounds stop shrinking and only max-rounds ends precopy (30
      // rounds of ~10 s by default). Three rounds bound it on any host.
      params[control::ext::kMaxRounds] = 3;
      break;
    case Phase::kSwitchover:
      // Switch after the first round (~4 s); its final round resends what the guest wrote
      // meanwhile (~8 MiB), which holds the source in "device" for about a second.
      params["max-bandwidth"] = 8 << 20;
      params["downtime-limit"] = 60000;
      break;
    case Phase::kPostcopy: {
      params["max-bandwidth"] = 4 << 20;  // postcopy's background pages take ~8 s
      Json caps = Json::array({{{"capability", "postcopy-ram"}, {"state", true}}});
      auto c = s_->execute("migrate-set-capabilities", {{"capabilities", caps}});
      ASSERT_TRUE(c.is_ok()) << what("postcopy-ram: ") << c.status().to_string();
      // A shorter peer timeout on both sides, so that a stop or a cut need not last 10 s. An
      // incoming migration takes its parameters when armed: the destination was started with
      // `--incoming defer` and listens only now.
      const Json timeout = {{control::ext::kPostcopyPeerTimeout,
                             std::chrono::milliseconds(times_.peer_timeout).count()}};
      auto t = d_->execute("migrate-set-parameters", timeout);
      ASSERT_TRUE(t.is_ok()) << what("the destination's peer timeout: ") << t.status().to_string();
      auto armed = d_->execute("migrate-incoming", {{"uri", rig_.listen_uri()}}, 30s);
      ASSERT_TRUE(armed.is_ok()) << what("migrate-incoming: ") << armed.status().to_string();
      params.update(timeout);
      break;
    }
  }
  if (params.empty()) return;
  auto p = s_->execute("migrate-set-parameters", params);
  ASSERT_TRUE(p.is_ok()) << what("migrate-set-parameters: ") << p.status().to_string();
}

void CaseRunner::migrate() {
  auto inc = d_->execute(control::ext::kQueryIncoming, Json::object(), 10s);
  ASSERT_TRUE(inc.is_ok()) << what("query-incoming: ") << inc.status().to_string();
  // setup: a stopped destination holds the source in its handshake (the kernel or the PMD
  // takes the connection, nobody answers the hello) until the fault is in place.
  if (case_.phase == Phase::kSetup) dst_->signal(SIGSTOP);
  auto m = s_->execute("migrate", {{"uri", rig_.source_uri((*inc)["uri"])}});
  ASSERT_TRUE(m.is_ok()) << what("migrate: ") << m.status().to_string();
}

void CaseRunner::reach_phase(Json* early) {
  bool met = false;
  Json q;
  switch (case_.phase) {
    case Phase::kSetup:
      q = poll_until(*s_, [](const Json& j) { return is_status(j, "setup"); }, 10s, &met);
      ASSERT_TRUE(met) << what("the source never showed setup: ") << q.dump();
      break;
    case Phase::kPrecopy:
      q = poll_until(
          *s_,
          [](const Json& j) {
            return (is_status(j, "active") && transferred(j) > (1 << 20)) ||
                   !in_progress(status_of(j));
          },
          60s, &met);
      if (failed_in_handshake(q)) return void(*early = q);
      ASSERT_TRUE(met && is_status(q, "active"))
          << what("precopy never moved 1 MiB within 60 s: ") << q.dump();
      break;
    case Phase::kSwitchover:
      q = poll_until(
          *s_, [](const Json& j) { return is_status(j, "device") || !in_progress(status_of(j)); },
          60s, &met);
      if (failed_in_handshake(q)) return void(*early = q);
      ASSERT_TRUE(is_status(q, "device")) << what("the source never showed device: ") << q.dump();
      break;
    case Phase::kPostcopy: {
      q = poll_until(
          *s_, [](const Json& j) { return is_status(j, "active") || !in_progress(status_of(j)); },
          60s, &met);
      if (failed_in_handshake(q)) return void(*early = q);
      ASSERT_TRUE(met && is_status(q, "active"))
          << what("the source never became active: ") << q.dump();
      auto r = s_->execute("migrate-start-postcopy");
      ASSERT_TRUE(r.is_ok()) << what("migrate-start-postcopy: ") << r.status().to_string();
      for (QmpClient* c : {s_.get(), d_.get()}) {
        q = poll_until(*c, [](const Json& j) { return is_status(j, "postcopy-active"); }, 30s,
                       &met);
        ASSERT_TRUE(met) << what("postcopy-active never reached: ") << q.dump();
      }
      break;
    }
  }
}

void CaseRunner::inject() {
  const bool setup = case_.phase == Phase::kSetup;
  // In setup the destination is stopped already: the fault then takes its place.
  auto release_destination = [&] {
    if (setup && dst_->running()) dst_->signal(SIGCONT);
  };
  switch (case_.fault) {
    case Fault::kKill:
      target().signal(SIGKILL);
      ASSERT_TRUE(target().wait_exit(10s)) << what("SIGKILL did not end the process");
      release_destination();
      break;
    case Fault::kStop:
      target().signal(SIGSTOP);
      if (case_.side == Side::kSource) release_destination();
      std::this_thread::sleep_for(case_.phase == Phase::kPostcopy ? times_.postcopy_fault()
                                                                  : times_.stop);
      target().signal(SIGCONT);
      break;
    case Fault::kCut:
      ASSERT_TRUE(rig_.cut()) << what("cutting the link: ") << rig_.link_error();
      release_destination();
      // In postcopy the cut outlasts the peer timeout, so that the link breaks and recovery
      // is what brings the migration back.
      std::this_thread::sleep_for(case_.phase == Phase::kPostcopy ? times_.postcopy_fault()
                                                                  : times_.cut);
      ASSERT_TRUE(rig_.restore()) << what("restoring the link: ") << rig_.link_error();
      break;
  }
}

// "source running, destination died of signal 9": for failure messages only (a QMP socket that
// broke may belong to a process that is still dying, so it first gives them a second).
std::string CaseRunner::processes() {
  std::this_thread::sleep_for(1s);
  std::string out;
  for (auto [name, t] : {std::pair{"source", src_.get()}, std::pair{"destination", dst_.get()}}) {
    if (!out.empty()) out += ", ";
    out += name;
    if (t->running()) {
      out += " running";
      continue;
    }
    const int st = t->exit_status();
    out += WIFSIGNALED(st) ? " died of signal " + std::to_string(WTERMSIG(st))
                           : " exited with " + std::to_string(WEXITSTATUS(st));
  }
  return out;
}

// setup, precopy, switchover: the guest has not moved. The source, when it lives, must end
// completed or failed with its guest running and intact; a retry must complete.
void CaseRunner::judge_before_switch() {
  bool met = false;
  if (case_.side == Side::kSource && case_.fault == Fault::kKill) {
    // The destination must give up on the dead source (or have completed, if the source died
    // after handing everything over) and take a fresh source.
    Json q = poll_until(*d_, [](const Json& j) { return !in_progress(status_of(j)); }, 30s, &met);
    ASSERT_TRUE(met) << what("the destination still shows a migration 30 s after the source "
                             "died: ")
                     << q.dump();
    ASSERT_NE(status_of(q).rfind("no answer", 0), 0u)
        << what("the destination's QMP: ") << status_of(q) << " (" << processes() << ")";
    if (is_status(q, "completed")) {
      add(verify_destination(*d_, what("destination")));
      outcome_.result = "completed";
      return;
    }
    outcome_.cause = error_of(q);
    src2_ = rig_.start_source("src2");
    auto s2 = src2_->connect();
    ASSERT_TRUE(s2) << what("a fresh source");
    retry(*s2, *d_, "fresh source to the same destination");
    outcome_.result = "failed-retried";
    return;
  }
  const auto bound = case_.fault == Fault::kKill ? 30s : 180s;
  Json q = poll_until(*s_, [](const Json& j) { return !in_progress(status_of(j)); }, bound, &met);
  ASSERT_TRUE(met) << what("the source still migrating after the bound: ") << q.dump();
  ASSERT_NE(status_of(q).rfind("no answer", 0), 0u)
      << what("the source's QMP: ") << status_of(q) << " (" << processes() << ")";
  if (case_.fault == Fault::kKill) {
    ASSERT_TRUE(is_status(q, "failed")) << what("the destination died: ") << q.dump();
  }
  if (is_status(q, "completed")) {
    Json dq = poll_until(*d_, [](const Json& j) { return is_status(j, "completed"); }, 30s, &met);
    ASSERT_TRUE(met) << what("the source completed, the destination did not: ") << dq.dump();
    add(verify_destination(*d_, what("destination")));
    outcome_.result = "completed";
    return;
  }
  ASSERT_TRUE(is_status(q, "failed")) << what("the source ended: ") << q.dump();
  outcome_.cause = error_of(q);
  add(verify_source_intact(*s_, what("source after the failure")));
  // Retry to a fresh destination (the old one may have died, or still hold a half migration).
  dst2_ = rig_.start_destination("dst2");
  auto d2 = dst2_->connect();
  ASSERT_TRUE(d2) << what("a fresh destination");
  retry(*s_, *d2, "same source to a fresh destination");
  outcome_.result = "failed-retried";
}

void CaseRunner::retry(QmpClient& s, QmpClient& d, const std::string& step) {
  add(retry_migration(s, d, [&](const std::string& u) { return rig_.source_uri(u); }, what(step)));
}

// postcopy: a dead peer leaves the survivor clearly failed (QMP answering, SIGTERM ending
// it); a stopped peer or a cut link must end completed, through recovery if a side paused.
void CaseRunner::judge_postcopy() {
  bool met = false;
  if (case_.fault == Fault::kKill) {
    // With postcopy recovery a survivor cannot tell a dead peer from a broken link: it pauses,
    // and migrate_cancel is how an operator gives the recovery up: then it must fail clearly.
    QmpClient& survivor = case_.side == Side::kSource ? *d_ : *s_;
    Json q = poll_until(
        survivor,
        [&](const Json& j) {
          return !in_progress(status_of(j)) || (recovery_built_ && is_status(j, "postcopy-paused"));
        },
        30s, &met);
    ASSERT_TRUE(met) << what("the survivor still in postcopy 30 s after its peer died: ")
                     << q.dump() << " (" << processes() << ")";
    if (is_status(q, "postcopy-paused")) {
      auto c = survivor.execute("migrate_cancel", Json::object(), 10s);
      ASSERT_TRUE(c.is_ok()) << what("migrate_cancel in postcopy-paused: ")
                             << c.status().to_string();
      q = poll_until(survivor, [](const Json& j) { return !in_progress(status_of(j)); }, 30s,
                     &met);
      ASSERT_TRUE(met) << what("still paused 30 s after migrate_cancel: ") << q.dump();
      outcome_.cause = "postcopy-paused, then migrate_cancel: ";
    }
    ASSERT_TRUE(is_status(q, "failed")) << what("the survivor ended: ") << q.dump() << " ("
                                        << processes() << ")";
    outcome_.cause += error_of(q);
    EXPECT_FALSE(error_of(q).empty()) << what("failed without a reason: ") << q.dump();
    auto g = survivor.execute(control::ext::kQueryGuest, Json::object(), 5s);
    EXPECT_TRUE(g.is_ok()) << what("the survivor's QMP: ") << g.status().to_string();
    outcome_.result = "survivor-failed";
    return;
  }
  // A resume that fails (its new link cannot be made) leaves both sides paused again: as an
  // operator would, try again, up to kRecoveries times; the attempts show in the cause.
  constexpr int kRecoveries = 3;
  int recoveries = 0;
  std::string first_pause;
  const auto deadline = std::chrono::steady_clock::now() + 180s;
  auto settled = std::chrono::steady_clock::now();
  Json sq, dq;
  for (;;) {
    sq = query_migrate(*s_);
    dq = query_migrate(*d_);
    const std::string ss = status_of(sq), ds = status_of(dq);
    if (ss == "failed" || ds == "failed") break;
    if (ss == "completed" && ds == "completed") break;
    const bool paused = ss == "postcopy-paused" || ds == "postcopy-paused";
    if (paused && recoveries < kRecoveries && std::chrono::steady_clock::now() >= settled) {
      ASSERT_TRUE(recovery_built_) << what("paused, and migrate-recover is unknown");
      if (first_pause.empty()) first_pause = error_of(ss == "postcopy-paused" ? sq : dq);
      ASSERT_NO_FATAL_FAILURE(recover());
      ++recoveries;
      settled = std::chrono::steady_clock::now() + 2s;  // the resume's link takes a moment
      continue;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << what("postcopy not done 180 s after the fault (") << recoveries
        << " recoveries): source " << sq.dump() << " destination " << dq.dump();
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(is_status(sq, "completed") && is_status(dq, "completed"))
      << what("postcopy after the fault: source ") << sq.dump() << " destination " << dq.dump()
      << " (" << processes() << ")";
  const bool recovered = recoveries > 0;
  if (recovered) outcome_.cause = first_pause;
  if (recoveries > 1)
    outcome_.cause += " (resumed at attempt " + std::to_string(recoveries) + ")";
  add(verify_destination(*d_, what("destination")));
  outcome_.result = recovered ? "recovered" : "completed";
}

// QEMU's recovery: the destination listens anew (migrate-recover), the source resumes to it.
void CaseRunner::recover() {
  bool met = false;
  for (QmpClient* c : {d_.get(), s_.get()}) {
    Json q = poll_until(*c, [](const Json& j) { return is_status(j, "postcopy-paused"); }, 60s,
                        &met);
    ASSERT_TRUE(met) << what("not both sides paused within 60 s: ") << q.dump();
  }
  auto r = d_->execute("migrate-recover", {{"uri", rig_.listen_uri()}}, 30s);
  ASSERT_TRUE(r.is_ok()) << what("migrate-recover: ") << r.status().to_string();
  auto inc = d_->execute(control::ext::kQueryIncoming, Json::object(), 10s);
  ASSERT_TRUE(inc.is_ok()) << what("query-incoming after migrate-recover: ")
                           << inc.status().to_string();
  auto m = s_->execute("migrate", {{"uri", rig_.source_uri((*inc)["uri"])}, {"resume", true}},
                       30s);
  ASSERT_TRUE(m.is_ok()) << what("migrate resume: ") << m.status().to_string();
  // The resume takes a moment (a new link, the resync): until the destination leaves
  // postcopy-paused, or the source is paused again (the resume failed), nothing says whether
  // another recovery is needed. Bounded; judge_postcopy decides after it.
  const auto started = std::chrono::steady_clock::now();
  auto waited = [&] { return std::chrono::steady_clock::now() - started; };
  while (waited() < 30s && is_status(query_migrate(*d_), "postcopy-paused") &&
         (waited() < 2s || !is_status(query_migrate(*s_), "postcopy-paused")))
    std::this_thread::sleep_for(20ms);
}

// Every ternd still alive must be running (no crash) and end on SIGTERM within 10 s.
void CaseRunner::end_survivors() {
  const std::pair<const char*, Ternd*> all[] = {{"the destination", dst_.get()},
                                                {"the source", src_.get()},
                                                {"the retry's destination", dst2_.get()},
                                                {"the retry's source", src2_.get()}};
  for (auto [name, t] : all) {
    if (t == nullptr || (t == &target() && case_.fault == Fault::kKill)) continue;
    if (!t->running()) {
      const int st = t->exit_status();
      ADD_FAILURE() << what(name) << " ended by itself: "
                    << (WIFSIGNALED(st) ? "signal " + std::to_string(WTERMSIG(st))
                                        : "exit " + std::to_string(WEXITSTATUS(st)));
      continue;
    }
    t->signal(SIGTERM);
    EXPECT_TRUE(t->wait_exit(10s)) << what(name) << ": SIGTERM did not end it within 10 s";
    const int st = t->exit_status();
    EXPECT_FALSE(WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM)
        << what(name) << " died of signal " << WTERMSIG(st) << " at SIGTERM";
  }
}

}  // namespace tern::fault
