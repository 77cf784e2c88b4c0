#include "dataplane/bitmap.h"

#include <algorithm>
#include <bit>

namespace tern {

AtomicBitmap::AtomicBitmap(size_t bits)
    : bits_(bits), words_(new std::atomic<uint64_t>[(bits + 63) / 64]), nwords_((bits + 63) / 64) {
  for (size_t i = 0; i < nwords_; ++i) words_[i].store(0, std::memory_order_relaxed);
}

void AtomicBitmap::set_all() {
  for (size_t i = 0; i < nwords_; ++i) {
    size_t remaining = bits_ - i * 64;
    uint64_t v = remaining >= 64 ? ~uint64_t{0} : ((uint64_t{1} << remaining) - 1);
    words_[i].store(v, std::memory_order_release);
  }
}

void AtomicBitmap::clear_all() {
  for (size_t i = 0; i < nwords_; ++i) words_[i].store(0, std::memory_order_release);
}

void AtomicBitmap::set_range(size_t from, size_t to) {
  if (to > bits_) to = bits_;
  while (from < to) {
    const size_t n = std::min<size_t>(64 - (from & 63), to - from);
    const uint64_t m = n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1) << (from & 63);
    word(from).fetch_or(m, std::memory_order_release);
    from += n;
  }
}

size_t AtomicBitmap::find_next_set(size_t from) const {
  if (from >= bits_) return bits_;
  size_t w = from >> 6;
  uint64_t v = words_[w].load(std::memory_order_acquire) & (~uint64_t{0} << (from & 63));
  while (true) {
    if (v) {
      size_t i = (w << 6) + static_cast<size_t>(std::countr_zero(v));
      return i < bits_ ? i : bits_;
    }
    if (++w >= nwords_) return bits_;
    v = words_[w].load(std::memory_order_acquire);
  }
}

size_t AtomicBitmap::count() const {
  size_t n = 0;
  for (size_t i = 0; i < nwords_; ++i)
    n += static_cast<size_t>(std::popcount(words_[i].load(std::memory_order_relaxed)));
  return n;
}

MigrationBitmap::MigrationBitmap(const std::vector<uint32_t>& host_page_sizes,
                                 const std::vector<uint64_t>& sizes)
    : page_sizes_(host_page_sizes) {
  maps_.reserve(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    maps_.emplace_back(sizes[i] / host_page_sizes[i]);
    shift_.push_back(static_cast<uint32_t>(std::countr_zero(host_page_sizes[i] / 4096u)));
  }
}

void MigrationBitmap::set_all() {
  for (auto& m : maps_) m.set_all();
}
void MigrationBitmap::clear_all() {
  for (auto& m : maps_) m.clear_all();
}
uint64_t MigrationBitmap::dirty_host_pages() const {
  uint64_t n = 0;
  for (auto& m : maps_) n += m.count();
  return n;
}
uint64_t MigrationBitmap::dirty_bytes() const {
  uint64_t n = 0;
  for (size_t i = 0; i < maps_.size(); ++i) n += maps_[i].count() * page_sizes_[i];
  return n;
}

}  // namespace tern
