// Test support: one VMM child (tern-thread-vmm, vm/thread_vmm_main.cc, or tern-kvm-vmm,
// vm/kvm/kvm_vmm_main.cc) attached to a ternd's attach socket, its stdout in DIR/NAME.out;
// killed (SIGTERM, then SIGKILL) and reaped on destruction. The binary comes from the
// environment variable `bin_env` ($TERN_THREAD_VMM by default), else the path `fallback`.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace tern::control {

class VmmProcess {
 public:
  VmmProcess(const std::string& dir, const std::string& name, std::vector<std::string> args,
             const char* bin_env = "TERN_THREAD_VMM", const char* fallback = "tern-thread-vmm")
      : out_(dir + "/" + name + ".out") {
    const char* bin = std::getenv(bin_env);
    std::vector<std::string> argv = {bin ? bin : fallback};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  VmmProcess(const VmmProcess&) = delete;
  VmmProcess& operator=(const VmmProcess&) = delete;
  ~VmmProcess() {
    if (pid_ <= 0 || exited()) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  bool started() const { return pid_ > 0; }
  bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0 && !exited(); }
  void kill(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  std::string output() const {
    std::ifstream f(out_);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  // Waits up to `limit` for `text` on its stdout.
  bool wait_output(const std::string& text, std::chrono::milliseconds limit) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (output().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

 private:
  bool exited() const {
    int st = 0;
    if (!reaped_ && waitpid(pid_, &st, WNOHANG) == pid_) {
      reaped_ = true;
      std::ofstream(out_, std::ios::app)
          << (WIFSIGNALED(st) ? "[killed by signal " + std::to_string(WTERMSIG(st)) + "]\n"
                              : "[exit " + std::to_string(WEXITSTATUS(st)) + "]\n");
    }
    return reaped_;
  }
  std::string out_;
  mutable bool reaped_ = false;
  pid_t pid_ = -1;
};

}  // namespace tern::control
