// ternd: hosts a guest (source, --guest threads,SPEC) or waits for one (destination,
// --incoming URI), and serves the QMP-shaped API on a unix socket until "quit" or a signal.
#include <grp.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "control/attach_server.h"
#include "control/engine_host.h"
#include "control/format.h"
#include "control/log.h"
#include "control/migration_json.h"
#include "control/qmp_commands.h"
#include "control/qmp_names.h"
#include "control/qmp_server.h"
#include "dataplane/expected_guest.h"
#include "dataplane/peer_key.h"
#include "dataplane/tls_credentials.h"
#include "dataplane/transport.h"
#include "dataplane/worker.h"
#include "transports/builtin_transports.h"
#include "vm/guest_factory.h"
#include "vm/workload.h"

namespace tern::control {
namespace {

QmpServer* g_server = nullptr;  // for the signal handler only; set while run() serves

void on_signal(int) {
  if (g_server != nullptr) g_server->stop();  // async-signal-safe
}

struct Options {
  std::string socket;
  std::string guest;
  std::string incoming;
  std::string attach_socket;
  std::string log_level = "info";
  bool pin = true;
  uint32_t workers = 0;
  uint32_t handshake_timeout_ms = 10000;  // the default of __io.github.tern_handshake-timeout
  bool print_default_transport = false;
  bool prefill = false;
  std::string rdma_device;
  std::string socket_group;
  std::vector<uint32_t> allow_uids;
  std::vector<std::string> allow_groups;
  std::string auth_key_file;  // the migration's pre-shared key (docs/security.md)
  bool insecure = false;      // allow unauthenticated migrations
  std::string tls_creds;      // x509 credentials directory: the credential set "tls0"
  std::string tls_authz_file; // allowed client subjects: the allow-list "authz0"
  std::string expect_ram;     // destination: the guest RAM it commits memory for
  std::vector<std::string> prepare_transports;  // started now, not in a migration's setup
};

// --tls-creds / --tls-authz-file as the credential set "tls0" and the allow-list "authz0",
// which the tls-creds / tls-authz parameters then name (set by default); false (logged) when a
// file is bad.
bool load_tls(const Options& o, MigrationParameters& params) {
  if (o.tls_creds.empty() && o.tls_authz_file.empty()) return true;
  auto catalog = std::make_shared<TlsCatalog>();
  catalog->required = o.auth_key_file.empty() && !o.insecure;
  if (!o.tls_creds.empty()) {
    auto creds = TlsCredentials::load(o.tls_creds);
    if (!creds) {
      log(LogLevel::kError, "--tls-creds: " + creds.status().message());
      return false;
    }
    catalog->creds["tls0"] = *creds;
    params.tls.creds = "tls0";
    log(LogLevel::kInfo, "migration channels authenticate with the x509 credentials in " +
                             o.tls_creds + " (tls-creds tls0)");
  }
  if (!o.tls_authz_file.empty()) {
    auto authz = load_tls_authz(o.tls_authz_file);
    if (!authz) {
      log(LogLevel::kError, "--tls-authz-file: " + authz.status().message());
      return false;
    }
    catalog->authz["authz0"] = *authz;
    params.tls.authz = "authz0";
    log(LogLevel::kInfo, "TLS sources must present a certificate whose subject is one of the " +
                             std::to_string((*authz)->names.size()) + " in " +
                             o.tls_authz_file + " (tls-authz authz0)");
  }
  params.tls_catalog = std::move(catalog);
  return true;
}

// The key and the layout bound from the options into `params` / a guest factory; false (logged)
// when the key file or the size is bad.
bool load_trust(const Options& o, MigrationParameters& params, ExpectedGuest& expected) {
  if (!o.auth_key_file.empty()) {
    Result<PeerKey> key = load_peer_key(o.auth_key_file);
    if (!key) {
      log(LogLevel::kError, "--auth-key-file: " + key.status().message());
      return false;
    }
    params.peer_key = std::make_shared<const PeerKey>(std::move(*key));
    log(LogLevel::kInfo, "migration channels authenticate with the key " + o.auth_key_file);
  } else if (o.tls_creds.empty()) {
    log(LogLevel::kWarn, "--insecure: migration channels are NOT authenticated; anyone who "
                         "reaches the migration port can take part");
  }
  if (!load_tls(o, params)) return false;
  expected.max_ram_bytes = host_memory_bytes();
  if (!o.expect_ram.empty()) {
    std::optional<uint64_t> ram = parse_size(o.expect_ram);
    if (!ram || *ram == 0) {
      log(LogLevel::kError, "--expect-ram: '" + o.expect_ram + "' is not a size (e.g. 1G)");
      return false;
    }
    expected.ram_bytes = *ram;
  }
  return true;
}

// A group name or number.
Result<gid_t> resolve_group(const std::string& name) {
  if (group* g = getgrnam(name.c_str())) return g->gr_gid;
  char* end = nullptr;
  unsigned long n = std::strtoul(name.c_str(), &end, 10);
  if (!name.empty() && end != nullptr && *end == '\0') return static_cast<gid_t>(n);
  return Status(Code::kInvalidArgument, "no group named '" + name + "'");
}

int serve(const Options& o) {
  const bool source = o.incoming.empty();
  set_log(*parse_log_level(o.log_level), source ? "ternd[source]" : "ternd[destination]");

  MigrationParameters params;
  ExpectedGuest expected;
  if (!load_trust(o, params, expected)) return 1;
  // A VMM's guest (docs/attach-protocol.md): the server outlives the host, whose factory uses it.
  std::unique_ptr<AttachServer> attach;
  if (!o.attach_socket.empty()) {
    auto a = AttachServer::listen(o.attach_socket, o.incoming.empty() ? attach::Role::kSource
                                                                     : attach::Role::kDestination);
    if (!a) {
      log(LogLevel::kError, "--attach-socket: " + a.status().message());
      return 1;
    }
    attach = std::move(*a);
  }
  std::unique_ptr<EngineHost> host;
  if (attach && o.incoming.empty()) {
    log(LogLevel::kInfo, "waiting for a VMM to attach on " + o.attach_socket);
    auto g = attach->take(std::chrono::hours(24));
    if (!g) {
      log(LogLevel::kError, g.status().message());
      return 1;
    }
    auto h = EngineHost::source(std::move(*g));
    if (!h) {
      log(LogLevel::kError, "the attached guest: " + h.status().message());
      return 1;
    }
    host = std::move(*h);
    host->set_next_guest([a = attach.get()] { return a->take_now(); });
  } else if (attach) {
    host = EngineHost::destination(expecting(attach->factory(), expected));
  } else if (source) {
    Result<std::unique_ptr<Guest>> guest = make_source_guest(o.guest, o.prefill);
    if (!guest) {
      log(LogLevel::kError, "cannot create the guest: " + guest.status().message());
      return 1;
    }
    Result<std::unique_ptr<EngineHost>> h = EngineHost::source(std::move(*guest));
    if (!h) {
      log(LogLevel::kError, "cannot start the guest: " + h.status().message());
      return 1;
    }
    host = std::move(*h);
  } else {
    host = EngineHost::destination(expecting(make_guest_factory(), expected));
  }

  QmpServerOptions qmp;
  if (!o.socket_group.empty()) {
    Result<gid_t> g = resolve_group(o.socket_group);
    if (!g) {
      log(LogLevel::kError, "--socket-group: " + g.status().message());
      return 1;
    }
    qmp.socket_group = *g;
  }
  for (const std::string& name : o.allow_groups) {
    Result<gid_t> g = resolve_group(name);
    if (!g) {
      log(LogLevel::kError, "--allow-group: " + g.status().message());
      return 1;
    }
    qmp.allowed_gids.push_back(*g);
  }
  for (uint32_t uid : o.allow_uids) qmp.allowed_uids.push_back(static_cast<uid_t>(uid));
  Result<std::unique_ptr<QmpServer>> server = QmpServer::listen(o.socket, make_greeting(), qmp);
  if (!server) {
    log(LogLevel::kError, server.status().message());
    return 1;
  }
  QmpServer& srv = **server;

  params.pin_workers = o.pin;
  params.workers = o.workers;
  params.connect_timeout = std::chrono::milliseconds(o.handshake_timeout_ms);
  QmpCommands commands(*host, params, [&srv] { srv.stop(); });
  srv.set_handler([&commands](const Request& r) {
    log(LogLevel::kDebug, "command " + json_excerpt(r.execute, 80) + " " +
                              json_excerpt(r.arguments, 400));
    return commands.dispatch(r);
  });
  host->set_status_sink([&srv, &commands](MigrationStatus s, const std::string& detail) {
    Json data = {{"status", qmp_status_name(s)}};
    const bool trouble = s == MigrationStatus::kFailed || s == MigrationStatus::kPostcopyPaused;
    if (trouble && !detail.empty()) data[ext::kErrorDesc] = detail;  // paused: why the link broke
    // As QEMU (migrate_generate_event): only with the "events" capability on.
    if (commands.events_enabled()) srv.broadcast(make_event("MIGRATION", data));
    log(trouble ? LogLevel::kWarn : LogLevel::kInfo,
        std::string("migration ") + qmp_status_name(s) + (detail.empty() ? "" : ": " + detail));
  });

  // The workers' cores (hwloc's topology, 2-880 ms here) read now, not in the first setup.
  if (o.pin) (void)choose_worker_cpus(1);
  for (const std::string& name : o.prepare_transports) {
    TransportAvailability a = prepare_transport(name);
    log(a.usable ? LogLevel::kInfo : LogLevel::kWarn,
        "--prepare-transport " + name + ": " + (a.usable ? "ready (" : "not usable: ") + a.reason +
            (a.usable ? ")" : ""));
  }
  if (source) {
    Result<GuestInfo> g = host->guest_info(false);
    log(LogLevel::kInfo, "guest running: " + (g ? g->description : std::string("?")));
  }
  if (!source && o.incoming != "defer") {
    Result<std::string> uri = host->migrate_incoming(o.incoming, commands.parameters());
    if (!uri) {
      log(LogLevel::kError, "--incoming " + o.incoming + ": " + uri.status().message());
      return 1;
    }
    log(LogLevel::kInfo, "waiting for a migration on " + *uri);
  }
  log(LogLevel::kInfo, std::string("QMP socket ") + o.socket);

  g_server = &srv;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Status s = srv.run();
  g_server = nullptr;
  if (!s) log(LogLevel::kError, "QMP server: " + s.message());
  host->cancel_and_wait();
  host->set_status_sink(nullptr);  // the server goes away before the host
  log(LogLevel::kInfo, "exiting");
  return s ? 0 : 1;
}

}  // namespace
}  // namespace tern::control

int main(int argc, char** argv) {
  tern::register_builtin_transports();  // before anything names a transport
  tern::control::Options o;
  CLI::App app{"ternd: live-migration daemon with a QMP-shaped JSON API on a unix socket"};
  app.add_option("-s,--socket", o.socket, "QMP unix socket path");
  auto* guest = app.add_option("--guest", o.guest,
                               "source: host a guest, KIND,SPEC with KIND threads or kvm, e.g. "
                               "threads,vcpus=2,ram=1G,page=4K,wss=25%,rate=20000,"
                               "pattern=random,seed=1 or kvm,vcpus=2,ram=256M,wss=25%");
  auto* incoming = app.add_option("--incoming", o.incoming,
                                  "destination: wait for a migration on URI (tcp:HOST:PORT; port 0 "
                                  "picks a free one), or 'defer' for migrate-incoming");
  guest->excludes(incoming);
  auto* attach = app.add_option("--attach-socket", o.attach_socket,
                                "take the guest of a VMM that attaches on this unix socket "
                                "(libtern-vmm; docs/attach-protocol.md): alone, a source; with "
                                "--incoming, a destination");
  guest->excludes(attach);
  app.add_option("--log-level", o.log_level, "error | warn | info | debug")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}));
  app.add_flag("--pin,!--no-pin", o.pin, "pin worker threads to cores (default on)");
  app.add_option("--workers", o.workers,
                 "poll-mode worker threads (0 = one per bulk channel up to the core count; use 1 "
                 "when both sides share a small host)")
      ->check(CLI::Range(0, 256));
  app.add_option("--handshake-timeout", o.handshake_timeout_ms,
                 "ms to connect a migration's channels and finish their handshake (source), or "
                 "for each connection's hello and handshake (destination): the default of the "
                 "__io.github.tern_handshake-timeout parameter (default 10000)")
      ->check(CLI::Range(500, 3600000));
  app.add_flag("--prefill", o.prefill,
               "source: write every working-set page once before the guest starts, so a "
               "migration moves data (benchmarks)");
  app.add_option("--rdma-device", o.rdma_device,
                 "rdma: the RDMA device to use (e.g. mlx5_0, rxe0) when a URI names none; "
                 "default: the one hwloc places nearest the workers' NUMA node");
  app.add_option("--socket-group", o.socket_group,
                 "make the QMP socket 0660 with this group (name or number) and admit its "
                 "members (default: 0600, root and the owner only)");
  app.add_option("--allow-uid", o.allow_uids,
                 "admit this uid on the QMP socket besides root and the owner (repeatable; the "
                 "socket's mode must let it connect too)");
  app.add_option("--allow-group", o.allow_groups,
                 "admit members of this group (name or number) on the QMP socket (repeatable)");
  auto* key = app.add_option("--auth-key-file", o.auth_key_file,
                             "pre-shared key file (hex, or QEMU keys.psk 'NAME:HEX'; mode 0600): "
                             "every migration channel proves it knows it, both ways");
  app.add_flag("--insecure", o.insecure,
               "allow migrations whose channels are not authenticated (anyone who reaches the "
               "port can send pages or acks); without it, ternd needs --auth-key-file")
      ->excludes(key);
  app.add_option("--tls-creds", o.tls_creds,
                 "x509 credentials directory laid out as QEMU's tls-creds-x509 (ca-cert.pem, "
                 "server-cert.pem, server-key.pem, client-cert.pem, client-key.pem): defines the "
                 "credential set 'tls0', and tls-creds starts as tls0, so tcp migrations run "
                 "TLS 1.3, mutual; on dpdk and rdma a TLS 1.3 handshake per channel keys the "
                 "sealed control channel, page data in clear (docs/security.md)");
  app.add_option("--tls-authz-file", o.tls_authz_file,
                 "destination: client certificate subjects to accept, one per line as `openssl "
                 "x509 -noout -subject -nameopt RFC2253` prints them; defines 'authz0', and "
                 "tls-authz starts as authz0");
  app.add_option("--expect-ram", o.expect_ram,
                 "destination: the guest RAM to accept (e.g. 1G); a source announcing another "
                 "size is refused before anything is allocated (default: at most this host's "
                 "memory)");
  app.add_option("--prepare-transport", o.prepare_transports,
                 "start transport NAME now rather than in the first migration's setup "
                 "(repeatable; dpdk: its EAL, ~200 ms here); a failure is logged, not fatal");
  app.add_flag("--print-default-transport", o.print_default_transport,
               "print 'NAME: REASON' for the transport used when a URI names none, and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The rdma transport reads it whenever a URI has no device= option (docs/rdma.md).
  if (!o.rdma_device.empty()) ::setenv("TERN_RDMA_DEVICE", o.rdma_device.c_str(), 1);
  if (o.print_default_transport) {
    tern::DefaultTransport d = tern::choose_default_transport();
    std::cout << d.name << ": " << d.reason << "\n";
    return 0;
  }
  if (o.socket.empty() || (o.guest.empty() && o.incoming.empty() && o.attach_socket.empty())) {
    std::cerr << "ternd: need --socket PATH and one of --guest threads|kvm,SPEC or "
                 "--attach-socket PATH (source), or --incoming URI (destination)\n"
              << "Run with --help for more information.\n";
    return 2;
  }
  if (o.auth_key_file.empty() && !o.insecure && o.tls_creds.empty()) {
    std::cerr << "ternd: migrations are authenticated by default: give --auth-key-file FILE "
                 "(make one with: (umask 077; openssl rand -hex 32 > FILE)), --tls-creds DIR "
                 "(x509), or --insecure to allow unauthenticated migrations "
                 "(docs/security.md)\n";
    return 2;
  }
  return tern::control::serve(o);
}
