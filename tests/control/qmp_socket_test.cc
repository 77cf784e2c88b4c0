// QmpServer and QmpClient over a real unix socket: greeting, negotiation, replies in order,
// events pushed to negotiated clients, bad input, and quit.
#include <sys/stat.h>

#include "qmp_socket_fixture.h"

namespace tern::control {
namespace {

class SocketTest : public QmpSocketFixture {
 protected:
  void SetUp() override { start(); }
};

TEST_F(SocketTest, GreetsAndRequiresNegotiation) {
  int fd = raw_connect();
  Json greeting = read_json(fd);
  // The spec's members only, no capability offered (not even "oob").
  ASSERT_TRUE(greeting.contains("QMP"));
  EXPECT_EQ(greeting.size(), 1u);
  EXPECT_EQ(greeting["QMP"].size(), 2u);
  EXPECT_EQ(greeting["QMP"]["capabilities"], Json::array());
  EXPECT_EQ(greeting["QMP"]["version"]["package"], "tern");
  std::string req = R"({"execute": "query-migrate", "id": 1})"
                    "\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  Json r = read_json(fd);
  EXPECT_EQ(r["error"]["class"], "CommandNotFound");
  EXPECT_NE(r["error"]["desc"].get<std::string>().find("qmp_capabilities"), std::string::npos);
  // "oob" is not offered, so asking for it is an error and negotiation stays open.
  write_all(fd, R"({"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 3})");
  r = read_json(fd);
  EXPECT_EQ(r["error"]["class"], "GenericError");
  EXPECT_EQ(r["error"]["desc"], "Capability 'oob' not available");
  req = R"({"execute": "qmp_capabilities"})"
        "\n"
        R"({"execute": "query-migrate", "id": 2})"
        "\n{oops}\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  EXPECT_EQ(read_json(fd), Json({{"return", Json::object()}}));
  EXPECT_EQ(read_json(fd), Json({{"return", Json::object()}, {"id", 2}}));  // as QEMU: {}
  EXPECT_NE(read_line(fd).find("JSON parse error"), std::string::npos);
  close(fd);
}

TEST_F(SocketTest, ClientRunsCommandsAndReceivesEvents) {
  auto c = QmpClient::connect(path_);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto watcher = QmpClient::connect(path_);
  ASSERT_TRUE(watcher.is_ok());
  // MIGRATION events only with the "events" capability, as QEMU.
  ASSERT_TRUE((*c)->execute("migrate-set-capabilities",
                            {{"capabilities", {{{"capability", "events"}, {"state", true}}}}})
                  .is_ok());
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
    auto first = QmpServer::listen(path, make_greeting());
    ASSERT_TRUE(first.is_ok());
    auto second = QmpServer::listen(path, make_greeting());
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
    auto third = QmpServer::listen(path, make_greeting());
    EXPECT_TRUE(third.is_ok()) << third.status().to_string();
  }
  auto too_long = QmpServer::listen(std::string(200, 'x'), make_greeting());
  EXPECT_FALSE(too_long.is_ok());
  rmdir(tmpl);
}

}  // namespace
}  // namespace tern::control

namespace tern::control {
namespace {

TEST_F(SocketTest, NoMigrationEventsWithoutTheEventsCapability) {
  auto c = QmpClient::connect(path_);
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE((*c)->execute("migrate", {{"uri", "tcp:127.0.0.1:1"}}).is_ok());
  EXPECT_FALSE((*c)->next_event(std::chrono::milliseconds(300)).has_value());
}

}  // namespace
}  // namespace tern::control
