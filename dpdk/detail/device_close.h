// Closing a port's ethdev, and parking memif clients whose link never came up.
//
// DPDK 22.11's memif server accepts a client's connection on the EAL interrupt thread and sends
// its hello at once; when that send fails because the client already closed (it gave up while
// the server's process was stopped or busy), the server closes the accepted socket but leaves
// its interrupt callback registered, and the interrupt thread then dies rebuilding its epoll
// set: "PANIC in eal_intr_thread_main(): Error adding fd N epoll_ctl, Bad file descriptor". A
// client cannot stop the server from accepting late, but it can stay connected until then: a
// memif client that never linked, going while connections wait in its server's accept queue
// (unix_listener.h), is parked (started, connected, unused) instead of closed, and closed once
// its link comes up or that queue is empty (or the listener gone), or after kParkSeconds, or
// when more than kParkedMax are parked (oldest first).
//
// Threads: control path only (Port's creation and destruction); one internal lock.
#pragma once

#include <cstdint>
#include <string>

namespace tern::dpdk {

// What close_port needs of a port.
struct PortDevice {
  uint16_t id = 0;
  std::string name;            // the vdev name to hot-unplug ("" for ring pairs: not a vdev)
  bool started = false;
  bool has_link_state = false;  // memif
  std::string memif_socket;     // memif client: its server's socket
  std::string memif_key;        // memif client: its socket and id ("PATH id=N")
};

inline constexpr int kParkSeconds = 120;
inline constexpr size_t kParkedMax = 8;

// Stops, closes and removes the device, now. memif: waits (bounded) for a disconnect the
// interrupt thread is handling to finish first (see device_close.cc).
void close_port(const PortDevice& d);
// A memif client's device that never linked: parked if its server has connections to accept
// (see above), else closed now.
void close_or_park_memif_client(const PortDevice& d);
// Closes the parked devices whose link came up or whose time is over. Called on each port's
// opening and closing.
void close_parked_ports();
// Before a memif client opens on `memif_key`: closes a parked client there (memif refuses two
// with one socket and id) once it may go (above), waiting for that up to 500 ms; false if it
// is still parked then.
bool close_parked_port_on(const std::string& memif_key);
// The number of parked devices (tests).
size_t parked_port_count();

}  // namespace tern::dpdk
