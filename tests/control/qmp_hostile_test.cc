// Hostile and awkward input on a real QMP socket: none of it may crash, hang or stall the
// server (issue 15). Each test ends by checking that the server still answers.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "qmp_socket_fixture.h"

namespace tern::control {
namespace {

class HostileTest : public QmpSocketFixture {
 protected:
  // The server answers a fresh client: greeting, negotiation, a command.
  void expect_alive() {
    int fd = negotiated();
    write_all(fd, R"({"execute": "query-version", "id": "alive"})");
    Json r = read_json(fd);
    EXPECT_EQ(r["id"], "alive");
    EXPECT_TRUE(r.contains("return"));
    close(fd);
  }
  static std::string desc(const Json& r) {
    return r.contains("error") ? r["error"].value("desc", "") : "";
  }
};

TEST_F(HostileTest, InvalidUtf8ByteAlone) {
  start();
  int fd = raw_connect();
  read_json(fd);
  write_all(fd, "\xff\n");
  Json r = read_json(fd);  // valid JSON, valid UTF-8
  EXPECT_NE(desc(r).find("JSON parse error"), std::string::npos);
  write_all(fd, R"({"execute": "qmp_capabilities"})");  // the same connection goes on
  EXPECT_EQ(read_json(fd), Json({{"return", Json::object()}}));
  close(fd);
  expect_alive();
}

TEST_F(HostileTest, MultibyteCharacterAtEveryCutPoint) {
  start();
  int fd = negotiated();
  for (size_t n = 30; n < 130; ++n) {
    std::string name = std::string(n, 'a') + "\xc3\xa9";
    write_all(fd, "{\"execute\": \"" + name + "\"}\n");  // CommandNotFound names it
    EXPECT_EQ(read_json(fd)["error"]["class"], "CommandNotFound");
    write_all(fd, "{" + name + "}\n");  // not JSON: the error quotes an excerpt
    EXPECT_NE(desc(read_json(fd)).find("JSON parse error"), std::string::npos);
    write_all(fd, "{\"execute\": \"" + name.substr(0, name.size() - 1) + "\"}\n");  // cut é
    EXPECT_NE(desc(read_json(fd)).find("JSON parse error"), std::string::npos);
  }
  close(fd);
  expect_alive();
}

TEST_F(HostileTest, DeepNestingIsRefusedBeforeParsing) {
  start();
  int fd = negotiated();
  std::string deep = R"({"execute": "query-version", "id": )";
  for (int i = 0; i < 100000; ++i) deep += R"({"id": )";
  deep += "1";
  for (int i = 0; i < 100000; ++i) deep += "}";
  write_all(fd, deep + "}\n");
  EXPECT_NE(desc(read_json(fd)).find("nesting deeper than 64"), std::string::npos);
  // 64 levels in all are fine.
  std::string ok = R"({"execute": "query-version", "id": )";
  for (int i = 0; i < 62; ++i) ok += "[";
  for (int i = 0; i < 62; ++i) ok += "]";
  write_all(fd, ok + "}");
  EXPECT_TRUE(read_json(fd).contains("return"));
  close(fd);
  expect_alive();
}

TEST_F(HostileTest, CommandSplitAcrossWritesAndLines) {
  start();
  int fd = negotiated();
  const std::string cmd = "{\"execute\":\r\n \"query-version\",\n \"id\": \"split\"}";
  for (char ch : cmd) {
    write_all(fd, std::string(1, ch));
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  EXPECT_EQ(read_json(fd)["id"], "split");
  close(fd);
}

TEST_F(HostileTest, TwoCommandsOnOneLineAndNoNewline) {
  start();
  int fd = negotiated();
  write_all(fd, R"({"execute": "query-version", "id": 1}{"execute": "query-status", "id": 2})");
  EXPECT_EQ(read_json(fd)["id"], 1);
  EXPECT_EQ(read_json(fd)["id"], 2);
  // QEMU's Python client: one object, no newline, then it waits.
  write_all(fd, R"({"execute": "query-migrate", "id": 3})");
  EXPECT_EQ(read_json(fd), Json({{"return", Json::object()}, {"id", 3}}));
  close(fd);
}

TEST_F(HostileTest, OversizeObjectIsRefusedAndTheNextLineRuns) {
  start();
  int fd = negotiated();
  std::string big = R"({"execute": "query-version", "id": ")" + std::string(2 << 20, 'x') + "\"}\n";
  std::thread writer([&] { write_all(fd, big + R"({"execute": "query-version", "id": 9})"); });
  EXPECT_NE(desc(read_json(fd)).find("longer than 1048576 bytes"), std::string::npos);
  EXPECT_EQ(read_json(fd)["id"], 9);
  writer.join();
  close(fd);
  expect_alive();
}

TEST_F(HostileTest, GarbageOfEveryKindLeavesTheServerAnswering) {
  start();
  int fd = negotiated();
  for (const std::string& junk : std::vector<std::string>
       {"]\n", "}\n", "[}\n", "123\n", "\"str\"\n", "{\"a\":\"\x01\"}\n", "{\"execute\": 5}\n",
       "{\"execute\": \"quit\", \"arguments\": 3}\n", "{\"execute\": \"migrate\", \"x\": 1}\n",
       std::string("{\"a\":\0}\n", 8), "{\"execute\":\"query-version\",\"id\":\"\\ud800\"}\n",
       "null\n", "[]\n"}) {
    write_all(fd, junk);
    Json r = read_json(fd);
    EXPECT_TRUE(r.contains("error")) << junk << " -> " << r.dump();
  }
  close(fd);
  expect_alive();
}

TEST_F(HostileTest, ClientThatNeverReadsIsDroppedWithoutStallingOthers) {
  QmpServerOptions o;
  o.pause_reading_above = 64 << 10;
  o.stall_timeout = std::chrono::milliseconds(500);
  start(o);
  int hog = negotiated();
  int rcvbuf = 4096;
  setsockopt(hog, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  fcntl(hog, F_SETFL, O_NONBLOCK);
  const std::string cmd = R"({"execute": "query-qmp-schema"})";
  std::string flood;
  for (int i = 0; i < 64; ++i) flood += cmd;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // Flood until the server stops reading us (our writes block), answering others meanwhile.
  while (server_->dropped_slow_clients() == 0 && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = write(hog, flood.data(), flood.size());
    (void)n;
    auto t0 = std::chrono::steady_clock::now();
    expect_alive();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server_->dropped_slow_clients(), 1u);
  close(hog);
  expect_alive();
}

TEST_F(HostileTest, ClientSilentInTheMiddleOfAnObjectIsDroppedWithoutStallingOthers) {
  QmpServerOptions o;
  o.partial_timeout = std::chrono::milliseconds(600);
  start(o);
  // One client goes quiet after half an object; another trickles an object a byte at a time,
  // each byte well within the timeout; a third stays idle between complete commands.
  int quiet = negotiated();
  write_all(quiet, R"({"execute": "query-st)");
  int trickle = negotiated();
  int idle = negotiated();
  const std::string slow = R"({"execute": "query-status", "id": 7})";
  auto t0 = std::chrono::steady_clock::now();
  for (char ch : slow) {
    write_all(trickle, std::string(1, ch));
    expect_alive();  // nobody waits for the quiet one
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  Json r = read_json(trickle);
  EXPECT_EQ(r["id"], 7) << r.dump();
  EXPECT_TRUE(r.contains("return")) << r.dump();
  ASSERT_GT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(600))
      << "the trickle must outlast the timeout to show that bytes count as progress";

  // The quiet one: told why, then closed, within a few ticks of the timeout.
  std::string last = read_line(quiet, std::chrono::seconds(5));
  Json err = Json::parse(last, nullptr, false);
  ASSERT_FALSE(err.is_discarded()) << last;
  EXPECT_NE(desc(err).find("no complete JSON object within 600 ms"), std::string::npos) << last;
  char c;
  EXPECT_EQ(read(quiet, &c, 1), 0) << "closed";
  EXPECT_EQ(server_->dropped_silent_clients(), 1u);

  // The idle client held no partial object: still served.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  write_all(idle, R"({"execute": "query-version", "id": "idle"})");
  EXPECT_EQ(read_json(idle)["id"], "idle");
  EXPECT_EQ(server_->dropped_silent_clients(), 1u);
  close(quiet);
  close(trickle);
  close(idle);
  expect_alive();
}

TEST_F(HostileTest, SocketIsOwnerOnlyByDefault) {
  start();
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(QmpSocketGroup, GroupMakesItGroupReadable) {
  char tmpl[] = "/tmp/tern-qmp-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/s";
  QmpServerOptions o;
  o.socket_group = getegid();  // a group we may chown to whoever runs the test
  auto s = QmpServer::listen(path, make_greeting(), o);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, getegid());
  s->reset();
  rmdir(tmpl);
}

// A peer with another uid: refused with a message, unless allowed. Needs root (to become
// another user in a child process).
class PeerCredTest : public HostileTest {
 protected:
  // What a child running as `uid` reads first from the socket.
  std::string first_message_as(uid_t uid) {
    chmod(dir_.c_str(), 0755);
    chmod(path_.c_str(), 0666);  // let the file system pass it: the credential check decides
    int pipefd[2];
    EXPECT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(pipefd[0]);
      if (setgid(uid) != 0 || setuid(uid) != 0) _exit(2);
      int fd = raw_connect();
      std::string line = read_line(fd);
      ssize_t n = write(pipefd[1], line.data(), line.size());
      _exit(n == static_cast<ssize_t>(line.size()) ? 0 : 3);
    }
    close(pipefd[1]);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;) out.append(buf, n);
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    return out;
  }
};

TEST_F(PeerCredTest, OtherUidIsRefusedWithAMessage) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  start();
  std::string msg = first_message_as(65534);
  Json r = Json::parse(msg, nullptr, false);
  ASSERT_FALSE(r.is_discarded()) << msg;
  EXPECT_EQ(r["error"]["class"], "GenericError");
  EXPECT_NE(r["error"]["desc"].get<std::string>().find("uid 65534 is not allowed"),
            std::string::npos)
      << msg;
  expect_alive();
}

TEST_F(PeerCredTest, AllowedUidIsGreeted) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  QmpServerOptions o;
  o.allowed_uids = {65534};
  start(o);
  Json r = Json::parse(first_message_as(65534), nullptr, false);
  EXPECT_TRUE(r.contains("QMP")) << r.dump();
}

}  // namespace
}  // namespace tern::control
