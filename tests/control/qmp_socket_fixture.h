// A QmpServer with the real command table over a HostDouble, served on its own thread from a
// socket in a fresh temporary directory; and raw connections that see exactly what it sends.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "control/qmp_client.h"
#include "control/qmp_commands.h"
#include "control/qmp_server.h"
#include "host_double.h"

namespace tern::control {

class QmpSocketFixture : public ::testing::Test {
 protected:
  void start(QmpServerOptions options = {}) {
    char tmpl[] = "/tmp/tern-qmp-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/qmp.sock";
    auto s = QmpServer::listen(path_, make_greeting(), std::move(options));
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server_ = std::move(*s);
    commands_ =
        std::make_unique<QmpCommands>(host_, MigrationParameters{}, [this] { server_->stop(); });
    server_->set_handler([this](const Request& r) { return commands_->dispatch(r); });
    host_.set_status_sink([this](MigrationStatus s, const std::string&) {
      if (commands_->events_enabled()) {
        server_->broadcast(make_event("MIGRATION", {{"status", status_for_test(s)}}));
      }
    });
    thread_ = std::thread([this] { ASSERT_TRUE(server_->run().is_ok()); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  static const char* status_for_test(MigrationStatus s) {
    return s == MigrationStatus::kActive ? "active" : "other";
  }
  int raw_connect() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path_.copy(a.sun_path, path_.size());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  // One message as sent (CRLF included), or "" after `timeout` or at EOF.
  static std::string read_line(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (line.empty() || line.back() != '\n') {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
      char c;
      if (read(fd, &c, 1) != 1) return "";
      line += c;
    }
    return line;
  }
  static Json read_json(int fd) {
    std::string line = read_line(fd);
    EXPECT_GE(line.size(), 2u);
    if (line.size() >= 2) {
      EXPECT_EQ(line.substr(line.size() - 2), "\r\n") << line;
    }
    Json j = Json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << line;
    return j;
  }
  static void write_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd, data.data() + off, data.size() - off);
      ASSERT_GT(n, 0);
      off += static_cast<size_t>(n);
    }
  }
  // A raw connection past the greeting and negotiation.
  int negotiated() {
    int fd = raw_connect();
    read_json(fd);
    write_all(fd, R"({"execute": "qmp_capabilities"})");
    EXPECT_EQ(read_json(fd), Json({{"return", Json::object()}}));
    return fd;
  }

  HostDouble host_{Role::kSource};
  std::string dir_, path_;
  std::unique_ptr<QmpServer> server_;
  std::unique_ptr<QmpCommands> commands_;
  std::thread thread_;
};

}  // namespace tern::control
