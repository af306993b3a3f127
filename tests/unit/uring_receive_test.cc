// The io_uring poller's completion receive (src/net/poller.h): bytes come as kReceived events in
// the socket's order, the FIN as a result of 0, every byte once when more descriptors have bytes
// than the ring has buffers, at most one more completion after stop_receive(), none after remove(),
// and a reset as an error.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net/poller.h"
#include "test_util.h"

namespace keel::test {
namespace {

using namespace std::chrono_literals;

// What one descriptor received.
struct Got {
  std::string bytes;
  int completions = 0;
  bool fin = false;
  int error = 0;
  int dry = 0;  // -ENOBUFS reports
};

class UringReceiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    poller_ = make_uring_poller(&why);
    ASSERT_TRUE(poller_) << why;
    if (!poller_->receives()) GTEST_SKIP() << "no provided-buffer ring (Linux before 5.19)";
  }
  // One non-blocking wait; receive events are added to got_ by tag.
  int turn() {
    epoll_event events[256];
    int n;
    do n = poller_->wait(events, 256, false);
    while (n == -EINTR);
    EXPECT_GE(n, 0);
    int received = 0;
    for (int i = 0; i < n; ++i) {
      if (events[i].events != kReceived) continue;
      ++received;
      const Received* r = static_cast<const Received*>(events[i].data.ptr);
      Got& g = got_[r->tag];
      ++g.completions;
      if (r->result > 0)
        g.bytes.append(r->data, static_cast<size_t>(r->result));
      else if (r->result == 0)
        g.fin = true;
      else if (r->result == -ENOBUFS)
        ++g.dry;  // the bytes wait in the socket; the receive goes on
      else
        g.error = -r->result;
    }
    return received;
  }
  // Turns until done() or 5 s.
  template <typename F>
  bool turn_until(F done) {
    return eventually(
        [&] {
          turn();
          return done();
        },
        5s);
  }
  std::unique_ptr<Poller> poller_;
  std::map<void*, Got> got_;
};

TEST_F(UringReceiveTest, BytesArriveInOrderThenTheFin) {
  SocketPair p;
  char tag = 0;
  ASSERT_EQ(poller_->add(p.a, 0, &tag), 0);
  ASSERT_EQ(poller_->receive(p.a), 0);
  EXPECT_EQ(poller_->receive(p.a), 0) << "receiving already is not an error";
  // More completions than the ring has buffers (a completion takes at most 64 KiB): buffers
  // must come back to the ring, and the request is armed again every time.
  const std::string data = pattern_bytes(12 << 20, 3);
  std::thread writer([&] {
    ASSERT_TRUE(write_all(p.b, data, 10s));
    ::shutdown(p.b, SHUT_WR);
  });
  EXPECT_TRUE(turn_until([&] { return got_[&tag].fin; }));
  writer.join();
  EXPECT_EQ(got_[&tag].bytes.size(), data.size());
  EXPECT_TRUE(got_[&tag].bytes == data);
  EXPECT_EQ(got_[&tag].error, 0);
  EXPECT_GT(got_[&tag].completions, 2);
}

TEST_F(UringReceiveTest, MoreDescriptorsWithBytesThanBuffersEachGetEveryByteOnce) {
  // 300 descriptors with 1 KiB each, then 1 KiB more: the ring's 128 buffers run dry in the
  // first batch (ENOBUFS, reported), and those requests must be armed again.
  constexpr int kPairs = 300;
  std::vector<std::unique_ptr<SocketPair>> pairs;
  std::vector<char> tags(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<SocketPair>());
    ASSERT_EQ(poller_->add(pairs.back()->a, 0, &tags[static_cast<size_t>(i)]), 0);
    ASSERT_EQ(poller_->receive(pairs.back()->a), 0);
  }
  std::vector<std::string> sent(kPairs);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kPairs; ++i) {
      std::string chunk = pattern_bytes(1024, static_cast<uint32_t>(i * 2 + round));
      ASSERT_TRUE(write_all(pairs[static_cast<size_t>(i)]->b, chunk, 1s));
      sent[static_cast<size_t>(i)] += chunk;
    }
  }
  EXPECT_TRUE(turn_until([&] {
    for (int i = 0; i < kPairs; ++i)
      if (got_[&tags[static_cast<size_t>(i)]].bytes.size() < 2048) return false;
    return true;
  }));
  int dry = 0;
  for (int i = 0; i < kPairs; ++i) {
    EXPECT_TRUE(got_[&tags[static_cast<size_t>(i)]].bytes == sent[static_cast<size_t>(i)])
        << "descriptor " << i;
    dry += got_[&tags[static_cast<size_t>(i)]].dry;
  }
  EXPECT_GT(dry, 0) << "the ring never ran dry: this test did not reach ENOBUFS";
}

TEST_F(UringReceiveTest, StopReceiveLetsAtMostOneMoreThroughAndReceiveGoesOn) {
  SocketPair p;
  char tag = 0;
  ASSERT_EQ(poller_->add(p.a, 0, &tag), 0);
  ASSERT_EQ(poller_->receive(p.a), 0);
  turn();  // the request is in the kernel now
  poller_->stop_receive(p.a);
  const std::string data = pattern_bytes(512 * 1024, 5);
  std::thread writer([&] { EXPECT_TRUE(write_all(p.b, data, 10s)); });
  // Stopped: at most the request already in the kernel completes, one buffer's worth.
  for (int i = 0; i < 20; ++i) {
    turn();
    std::this_thread::sleep_for(5ms);  // lets a completion land; not a condition
  }
  EXPECT_LE(got_[&tag].completions, 1);
  EXPECT_LE(got_[&tag].bytes.size(), 64u * 1024);
  ASSERT_EQ(poller_->receive(p.a), 0);
  EXPECT_TRUE(turn_until([&] { return got_[&tag].bytes.size() == data.size(); }));
  writer.join();
  EXPECT_TRUE(got_[&tag].bytes == data) << "the bytes kept their order across the stop";
}

TEST_F(UringReceiveTest, NothingIsReportedAfterRemove) {
  SocketPair p;
  char tag = 0;
  ASSERT_EQ(poller_->add(p.a, 0, &tag), 0);
  ASSERT_EQ(poller_->receive(p.a), 0);
  turn();
  ASSERT_EQ(::write(p.b, "hello", 5), 5);
  ASSERT_EQ(poller_->remove(p.a), 0);
  for (int i = 0; i < 10; ++i) {
    turn();
    std::this_thread::sleep_for(5ms);  // lets a completion land; not a condition
  }
  EXPECT_EQ(got_.count(&tag), 0u);
  // The buffer a dropped completion held went back: the ring still serves another descriptor.
  SocketPair q;
  char other = 0;
  ASSERT_EQ(poller_->add(q.a, 0, &other), 0);
  ASSERT_EQ(poller_->receive(q.a), 0);
  ASSERT_EQ(::write(q.b, "next", 4), 4);
  EXPECT_TRUE(turn_until([&] { return got_[&other].bytes == "next"; }));
}

TEST_F(UringReceiveTest, AResetIsAnError) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  int server = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  char tag = 0;
  ASSERT_EQ(poller_->add(server, 0, &tag), 0);
  ASSERT_EQ(poller_->receive(server), 0);
  ASSERT_EQ(::write(client, "x", 1), 1);
  EXPECT_TRUE(turn_until([&] { return got_[&tag].bytes == "x"; }));
  linger hard{1, 0};  // close sends a reset
  ASSERT_EQ(::setsockopt(client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard), 0);
  ::close(client);
  EXPECT_TRUE(turn_until([&] { return got_[&tag].fin || got_[&tag].error; }));
  EXPECT_EQ(got_[&tag].error, ECONNRESET);
  EXPECT_FALSE(got_[&tag].fin);
  poller_->remove(server);
  ::close(server);
  ::close(listener);
}

}  // namespace
}  // namespace keel::test
