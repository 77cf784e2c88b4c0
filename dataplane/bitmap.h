// Atomic bitmaps. MigrationBitmap is the set of host pages still to send, one bit per host
// page per block; claiming a page is an atomic test-and-clear, so exactly one channel wins each
// dirty instance of a page (S2: a host page travels wholly on one channel per round).
//
// Threads: set() from the dirty-sync thread, claim() from any worker, concurrently.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace tern {

class AtomicBitmap {
 public:
  explicit AtomicBitmap(size_t bits = 0);
  size_t size() const { return bits_; }

  void set(size_t i) { word(i).fetch_or(mask(i), std::memory_order_release); }
  void clear(size_t i) { word(i).fetch_and(~mask(i), std::memory_order_release); }
  bool test(size_t i) const { return cword(i).load(std::memory_order_acquire) & mask(i); }
  // True if this call cleared a set bit (the caller now owns that dirty instance).
  bool test_and_clear(size_t i) {
    return word(i).fetch_and(~mask(i), std::memory_order_acq_rel) & mask(i);
  }
  bool test_and_set(size_t i) { return word(i).fetch_or(mask(i), std::memory_order_acq_rel) & mask(i); }

  void set_all();
  void clear_all();
  // Sets bits [from, to), a word at a time.
  void set_range(size_t from, size_t to);
  // First set bit at or after `from`, or size() if none.
  size_t find_next_set(size_t from) const;
  size_t count() const;

 private:
  static uint64_t mask(size_t i) { return uint64_t{1} << (i & 63); }
  std::atomic<uint64_t>& word(size_t i) { return words_[i >> 6]; }
  const std::atomic<uint64_t>& cword(size_t i) const { return words_[i >> 6]; }
  size_t bits_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  size_t nwords_;
};

// One AtomicBitmap of host pages per RAM block, addressed by (block, target page) so that
// dirty sources (which see 4 KiB target pages) can mark it directly.
class MigrationBitmap {
 public:
  // host_page_shift[i] = log2(host page size of block i); pages[i] = host pages in block i.
  MigrationBitmap(const std::vector<uint32_t>& host_page_sizes, const std::vector<uint64_t>& sizes);

  size_t blocks() const { return maps_.size(); }
  AtomicBitmap& block(size_t b) { return maps_[b]; }
  const AtomicBitmap& block(size_t b) const { return maps_[b]; }
  uint32_t host_page_size(size_t b) const { return page_sizes_[b]; }

  // Marks the host page that holds target page `target_page` of block `b` dirty.
  void mark_target(uint32_t b, uint64_t target_page) { maps_[b].set(target_page >> shift_[b]); }
  // Atomic claim of one dirty instance of host page `hp` of block `b`.
  bool claim(uint32_t b, uint64_t hp) { return maps_[b].test_and_clear(hp); }

  void set_all();
  void clear_all();
  uint64_t dirty_host_pages() const;
  uint64_t dirty_bytes() const;

 private:
  std::vector<AtomicBitmap> maps_;
  std::vector<uint32_t> page_sizes_;
  std::vector<uint32_t> shift_;  // log2(host page / target page)
};

}  // namespace tern
