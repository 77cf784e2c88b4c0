// The interposition (intr_guard.h). The memif PMD is a plugin the EAL dlopens; its calls to
// rte_intr_callback_register and friends bind to these definitions because every executable
// that links tern's dpdk library exports them (--export-dynamic-symbol, dpdk/meson.build).
// They forward to the EAL's (dlsym RTLD_NEXT); only callbacks whose code lies in the memif
// PMD are wrapped: the EAL registers the wrapper with a Wrapped record as its argument, and
// the unregister calls translate (callback, argument) back to that record.
#include "dpdk/detail/intr_guard.h"

#include <dlfcn.h>
#include <pthread.h>
#include <rte_interrupts.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace tern::dpdk {
namespace {

pthread_rwlock_t* burst_rwlock() {
  static pthread_rwlock_t* lock = [] {
    auto* l = new pthread_rwlock_t;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(l, &attr);
    pthread_rwlockattr_destroy(&attr);
    return l;
  }();
  return lock;
}

std::atomic<uint64_t> callbacks_run{0};

struct Wrapped {
  rte_intr_callback_fn fn;
  void* arg;
  rte_intr_unregister_callback_fn done = nullptr;  // unregister_pending's
};

// (callback, argument) as memif registered them -> the record the EAL holds instead.
struct Table {
  std::mutex mu;  // never held across a call into the EAL (which takes its own lock)
  std::map<std::pair<rte_intr_callback_fn, void*>, Wrapped*> wrapped;
};
Table& table() {
  static auto* t = new Table;
  return *t;
}

bool from_memif(rte_intr_callback_fn fn) {
  Dl_info info{};
  return dladdr(reinterpret_cast<void*>(fn), &info) != 0 && info.dli_fname != nullptr &&
         std::strstr(info.dli_fname, "rte_net_memif") != nullptr;
}

void run_wrapped(void* arg) {
  auto* w = static_cast<Wrapped*>(arg);
  pthread_rwlock_wrlock(burst_rwlock());
  w->fn(w->arg);
  pthread_rwlock_unlock(burst_rwlock());
  callbacks_run.fetch_add(1, std::memory_order_relaxed);
}

Wrapped* find(rte_intr_callback_fn fn, void* arg) {
  std::lock_guard<std::mutex> lock(table().mu);
  auto it = table().wrapped.find({fn, arg});
  return it == table().wrapped.end() ? nullptr : it->second;
}

void forget(Wrapped* w) {
  {
    std::lock_guard<std::mutex> lock(table().mu);
    auto it = table().wrapped.find({w->fn, w->arg});
    if (it != table().wrapped.end() && it->second == w) table().wrapped.erase(it);
  }
  delete w;
}

// Called by the EAL (its lock held) when a pending unregistration completes.
void unregistered(rte_intr_handle* handle, void* arg) {
  auto* w = static_cast<Wrapped*>(arg);
  if (w->done != nullptr) w->done(handle, w->arg);
  forget(w);
}

template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

using Unregister = int (*)(const rte_intr_handle*, rte_intr_callback_fn, void*);

// rte_intr_callback_unregister and _sync: the wrapped record for memif's callbacks, forgotten
// once the EAL let it go.
int unregister_through(Unregister real, const rte_intr_handle* h, rte_intr_callback_fn fn,
                       void* arg) {
  Wrapped* w = find(fn, arg);
  if (w == nullptr) return real(h, fn, arg);
  const int r = real(h, run_wrapped, w);
  if (r > 0) forget(w);
  return r;
}

}  // namespace

void burst_lock() { pthread_rwlock_rdlock(burst_rwlock()); }
void burst_unlock() { pthread_rwlock_unlock(burst_rwlock()); }
uint64_t guarded_callbacks_run() { return callbacks_run.load(std::memory_order_relaxed); }

}  // namespace tern::dpdk

using namespace tern::dpdk;

extern "C" {

int rte_intr_callback_register(const rte_intr_handle* h, rte_intr_callback_fn fn, void* arg) {
  using F = int (*)(const rte_intr_handle*, rte_intr_callback_fn, void*);
  static const F real = next<F>("rte_intr_callback_register");
  if (!from_memif(fn)) return real(h, fn, arg);
  auto* w = new Wrapped{fn, arg};
  {
    std::lock_guard<std::mutex> lock(table().mu);
    table().wrapped[{fn, arg}] = w;
  }
  const int r = real(h, run_wrapped, w);
  if (r < 0) forget(w);
  return r;
}

int rte_intr_callback_unregister(const rte_intr_handle* h, rte_intr_callback_fn fn, void* arg) {
  static const Unregister real = next<Unregister>("rte_intr_callback_unregister");
  return unregister_through(real, h, fn, arg);
}

int rte_intr_callback_unregister_pending(const rte_intr_handle* h, rte_intr_callback_fn fn,
                                         void* arg, rte_intr_unregister_callback_fn done) {
  using F = int (*)(const rte_intr_handle*, rte_intr_callback_fn, void*,
                    rte_intr_unregister_callback_fn);
  static const F real = next<F>("rte_intr_callback_unregister_pending");
  Wrapped* w = find(fn, arg);
  if (w == nullptr) return real(h, fn, arg, done);
  w->done = done;
  return real(h, run_wrapped, w, unregistered);
}

int rte_intr_callback_unregister_sync(const rte_intr_handle* h, rte_intr_callback_fn fn,
                                      void* arg) {
  static const Unregister real = next<Unregister>("rte_intr_callback_unregister_sync");
  return unregister_through(real, h, fn, arg);
}

}  // extern "C"
