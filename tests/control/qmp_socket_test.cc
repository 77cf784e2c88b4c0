// QmpServer and QmpClient over a real unix socket: greeting, negotiation, replies in order,
// events pushed to negotiated clients, bad input, and quit.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "control/qmp_client.h"
#include "control/qmp_commands.h"
#include "control/qmp_server.h"
#include "host_double.h"

namespace tern::control {
namespace {

class SocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-qmp-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/qmp.sock";
    auto s = QmpServer::listen(path_, make_greeting("source"));
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server_ = std::move(*s);
    commands_ =
        std::make_unique<QmpCommands>(host_, MigrationParameters{}, [this] { server_->stop(); });
    server_->set_handler([this](const Request& r) { return commands_->dispatch(r); });
    host_.set_status_sink([this](MigrationStatus s, const std::string&) {
      server_->broadcast(make_event("MIGRATION", {{"status", qmp_status_name_for_test(s)}}));
    });
    thread_ = std::thread([this] { ASSERT_TRUE(server_->run().is_ok()); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    rmdir(dir_.c_str());
  }
  static const char* qmp_status_name_for_test(MigrationStatus s) {
    return s == MigrationStatus::kActive ? "active" : "other";
  }
  // A raw connection, to see exactly what the server sends.
  int raw_connect() {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path_.copy(a.sun_path, path_.size());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  static std::string read_line(int fd) {
    std::string line;
    char c;
    while (read(fd, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }

  HostDouble host_{Role::kSource};
  std::string dir_, path_;
  std::unique_ptr<QmpServer> server_;
  std::unique_ptr<QmpCommands> commands_;
  std::thread thread_;
};

TEST_F(SocketTest, GreetsAndRequiresNegotiation) {
  int fd = raw_connect();
  Json greeting = Json::parse(read_line(fd));
  EXPECT_TRUE(greeting.contains("QMP"));
  EXPECT_EQ(greeting["QMP"]["tern"]["role"], "source");
  std::string req = R"({"execute": "query-migrate", "id": 1})"
                    "\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  Json r = Json::parse(read_line(fd));
  EXPECT_EQ(r["error"]["class"], "CommandNotFound");
  EXPECT_NE(r["error"]["desc"].get<std::string>().find("qmp_capabilities"), std::string::npos);
  req = R"({"execute": "qmp_capabilities"})"
        "\n"
        R"({"execute": "query-migrate", "id": 2})"
        "\n{oops\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  EXPECT_EQ(Json::parse(read_line(fd)), Json({{"return", Json::object()}}));
  EXPECT_EQ(Json::parse(read_line(fd)), Json({{"return", {{"status", "none"}}}, {"id", 2}}));
  EXPECT_NE(read_line(fd).find("JSON parse error"), std::string::npos);
  close(fd);
}

TEST_F(SocketTest, ClientRunsCommandsAndReceivesEvents) {
  auto c = QmpClient::connect(path_);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto watcher = QmpClient::connect(path_);
  ASSERT_TRUE(watcher.is_ok());
  Result<Json> r = (*c)->execute("migrate", {{"uri", "tcp:127.0.0.1:1"}});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::optional<Json> e = (*watcher)->next_event(std::chrono::seconds(5));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ((*e)["event"], "MIGRATION");
  EXPECT_EQ((*e)["data"]["status"], "active");
  EXPECT_TRUE((*e)["timestamp"].contains("microseconds"));

  Result<Json> bad = (*c)->execute("migrate", {{"uri", 1}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("argument 'uri' must be a string"), std::string::npos);
  // The issuing client also got the event, queued while it waited for its reply.
  EXPECT_TRUE((*c)->next_event(std::chrono::milliseconds(100)).has_value());
}

TEST_F(SocketTest, QuitStopsTheServerAfterReplying) {
  auto c = QmpClient::connect(path_);
  ASSERT_TRUE(c.is_ok());
  Result<Json> r = (*c)->execute("quit");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  thread_.join();  // run() returned: quit stopped the server
}

TEST(QmpServerListen, RefusesALiveSocketAndReplacesAStaleOne) {
  char tmpl[] = "/tmp/tern-qmp-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/s";
  {
    auto first = QmpServer::listen(path, make_greeting("source"));
    ASSERT_TRUE(first.is_ok());
    auto second = QmpServer::listen(path, make_greeting("source"));
    ASSERT_FALSE(second.is_ok());
    EXPECT_NE(second.status().message().find("in use"), std::string::npos);
  }
  // A socket file nobody listens on (left by a crash) is replaced.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  path.copy(a.sun_path, path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  close(fd);
  {
    auto third = QmpServer::listen(path, make_greeting("source"));
    EXPECT_TRUE(third.is_ok()) << third.status().to_string();
  }
  auto too_long = QmpServer::listen(std::string(200, 'x'), make_greeting("source"));
  EXPECT_FALSE(too_long.is_ok());
  rmdir(tmpl);
}

}  // namespace
}  // namespace tern::control
