#include "dpdk/detail/device_close.h"

#include "dpdk/detail/unix_listener.h"

#include <rte_dev.h>
#include <rte_ethdev.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace tern::dpdk {
namespace {

using Clock = std::chrono::steady_clock;

bool link_is_up(uint16_t id) {
  rte_eth_link link{};
  return rte_eth_link_get_nowait(id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

// A parked client may close: its connection is no longer in the server's accept queue.
bool may_close(const PortDevice& d) {
  return link_is_up(d.id) || unix_accept_queue(d.memif_socket) <= 0;
}

struct Parked {
  PortDevice device;
  Clock::time_point since;
};
struct Parking {
  std::mutex mu;
  std::deque<Parked> ports;  // oldest first
};
Parking& parking() {
  static auto* p = new Parking;  // never destroyed: ports may close during exit
  return *p;
}

}  // namespace

void close_port(const PortDevice& d) {
  // memif (DPDK 22.11) handles a peer's disconnect on the EAL interrupt thread and frees this
  // port's interrupt handles there, partly in a deferred callback; a rte_eth_dev_stop racing
  // with it freed them twice (SIGSEGV in rte_intr_instance_free, 5 of 8 runs of the memif
  // conformance suite). So when the peer is going away, let that handling finish first: wait
  // (bounded) for the link to go down, then a little for the deferred part.
  if (d.started && d.has_link_state) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(250);
    while (link_is_up(d.id) && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (!link_is_up(d.id)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (d.started) rte_eth_dev_stop(d.id);
  rte_eth_dev_close(d.id);
  if (!d.name.empty()) rte_eal_hotplug_remove("vdev", d.name.c_str());
}

void close_or_park_memif_client(const PortDevice& d) {
  if (!d.started || may_close(d)) {
    close_port(d);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(parking().mu);
    parking().ports.push_back({d, Clock::now()});
  }
  close_parked_ports();
}

void close_parked_ports() {
  std::vector<PortDevice> done;
  {
    std::lock_guard<std::mutex> lock(parking().mu);
    auto& v = parking().ports;
    const auto now = Clock::now();
    for (auto it = v.begin(); it != v.end();) {
      const bool over = v.size() > kParkedMax || now - it->since > std::chrono::seconds(kParkSeconds);
      if (over || may_close(it->device)) {
        done.push_back(it->device);
        it = v.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const PortDevice& d : done) close_port(d);
}

bool close_parked_port_on(const std::string& memif_key) {
  std::vector<Parked> on;
  {
    std::lock_guard<std::mutex> lock(parking().mu);
    auto& v = parking().ports;
    for (auto it = v.begin(); it != v.end();) {
      if (it->device.memif_key == memif_key) {
        on.push_back(*it);
        it = v.erase(it);
      } else {
        ++it;
      }
    }
  }
  bool all = true;
  for (const Parked& p : on) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(500);
    while (!may_close(p.device) && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (may_close(p.device)) {
      close_port(p.device);
    } else {
      all = false;
      std::lock_guard<std::mutex> lock(parking().mu);
      parking().ports.push_front(p);
    }
  }
  return all;
}

size_t parked_port_count() {
  std::lock_guard<std::mutex> lock(parking().mu);
  return parking().ports.size();
}

}  // namespace tern::dpdk
