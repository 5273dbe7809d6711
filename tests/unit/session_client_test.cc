// The client side of a monitor session, as isola-runtime's exec relay and
// VM keeper use it (wait_started to report the start, then run for the exit
// code), fed by a stand-in for the VM monitor on a Unix socket.
#include "monitor/session_client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/unix_socket.h"
#include "monitor/protocol.h"

using namespace isola;

namespace {

class TempDir {
 public:
  TempDir() {
    auto dir = make_temp_dir("/tmp", "isola-session-test-");
    if (dir) path_ = *dir;
  }
  ~TempDir() {
    if (!path_.empty()) (void)remove_tree(path_);
  }
  std::string operator/(const std::string& rel) const { return path_join(path_, rel); }

 private:
  std::string path_;
};

// A short process's frames (started, output, exit) reach the client in one
// read when it is slow to be scheduled, as under CPU load: wait_started must
// not swallow the exit, or run waits for a frame that never comes.
TEST(SessionClient, AnExitReadTogetherWithStartedEndsTheSession) {
  for (bool report_start : {true, false}) {
    SCOPED_TRACE(report_start ? "wait_started, then run" : "run alone");
    TempDir dir;
    const std::string path = dir / "ctl.sock";
    auto listener = unix_listen(path, SOCK_STREAM);
    ASSERT_TRUE(listener) << listener.error().message();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd out_r(p[0]), out_w(p[1]);

    SessionOptions so;
    so.op = "exec";
    so.extra = Json{{"process", {{"args", {"sh", "-c", "echo hi; exit 6"}}}}};
    so.out = so.err = out_w.get();
    auto client = SessionClient::open(path, std::move(so));
    ASSERT_TRUE(client) << client.error().message();

    // The monitor's side: the request, then every frame in one write.
    UniqueFd conn(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(conn.valid());
    FrameReader reader;
    Frame request;
    auto got = read_frame(conn.get(), reader, request);
    ASSERT_TRUE(got && *got);
    EXPECT_EQ(request.type, FrameType::request);
    EXPECT_EQ(Json::parse(request.payload)["op"], "exec");
    std::string frames = encode_frame(FrameType::started, "") + encode_frame(FrameType::stdout_data, "hi\n") +
                         encode_frame(FrameType::exit, R"({"exit_code":6})");
    ASSERT_EQ(::write(conn.get(), frames.data(), frames.size()), static_cast<ssize_t>(frames.size()));
    // A client that still waits for a frame then sees the monitor go
    // (an error) instead of waiting forever.
    conn.reset();

    if (report_start) {
      auto started = client->wait_started();
      ASSERT_TRUE(started) << started.error().message();
    }
    auto code = client->run();
    ASSERT_TRUE(code) << code.error().message();
    EXPECT_EQ(*code, 6);
    out_w.reset();
    auto text = read_fd(out_r.get(), "output", 1024);
    ASSERT_TRUE(text);
    EXPECT_EQ(*text, "hi\n");
  }
}

// An exit before the start (the command could not run) still fails
// wait_started, with the exit code the monitor gave.
TEST(SessionClient, AnExitBeforeStartedFailsTheStart) {
  TempDir dir;
  const std::string path = dir / "ctl.sock";
  auto listener = unix_listen(path, SOCK_STREAM);
  ASSERT_TRUE(listener) << listener.error().message();
  SessionOptions so;
  so.op = "attach";
  auto client = SessionClient::open(path, std::move(so));
  ASSERT_TRUE(client) << client.error().message();
  UniqueFd conn(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(conn.valid());
  std::string frame = encode_frame(FrameType::exit, R"({"exit_code":137,"error":"the VM exited"})");
  ASSERT_EQ(::write(conn.get(), frame.data(), frame.size()), static_cast<ssize_t>(frame.size()));
  conn.reset();
  auto started = client->wait_started();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().exit_code, 137);
  EXPECT_NE(started.error().message().find("the VM exited"), std::string::npos) << started.error().message();
}

}  // namespace
