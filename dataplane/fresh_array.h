// An array of zero-initialised atomics in fresh anonymous memory: zero because the kernel
// hands out zero pages, not because it was written, so a large table of which a migration
// touches little (RecvState's per-host-page fault times: 4 MiB for a 2 GiB guest, used only in
// postcopy) costs no page fault and no memset for the pages nobody touches.
//
// Threads: the elements are atomics, as the owner's contract says; construction and
// destruction on one thread.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

namespace tern {

template <typename T>
class FreshAtomicArray {
  static_assert(std::is_trivially_destructible_v<std::atomic<T>>);

 public:
  explicit FreshAtomicArray(size_t n) : bytes_(n * sizeof(std::atomic<T>)) {
    if (bytes_ == 0) return;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();  // control path only (RecvState's setup)
    data_ = static_cast<std::atomic<T>*>(p);  // all-zero bytes are a zero atomic on Linux/x86
  }
  ~FreshAtomicArray() {
    if (data_) munmap(data_, bytes_);
  }
  FreshAtomicArray(FreshAtomicArray&& o) noexcept : bytes_(o.bytes_), data_(o.data_) {
    o.data_ = nullptr;
  }
  FreshAtomicArray& operator=(FreshAtomicArray&&) = delete;
  FreshAtomicArray(const FreshAtomicArray&) = delete;
  FreshAtomicArray& operator=(const FreshAtomicArray&) = delete;

  std::atomic<T>& operator[](size_t i) { return data_[i]; }
  const std::atomic<T>& operator[](size_t i) const { return data_[i]; }

 private:
  size_t bytes_;
  std::atomic<T>* data_ = nullptr;
};

}  // namespace tern
