// TcpConnection on a loop with completion receive (io_uring): bytes the kernel read before a
// pause reached it are kept, not given to on_data, until reading resumes.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "keel/net/event_loop.h"
#include "keel/net/socket.h"
#include "keel/net/tcp_connection.h"
#include "test_util.h"

namespace keel {
namespace {

using namespace std::chrono_literals;

TEST(CompletionReceive, BytesReadBeforeAPauseReachedTheKernelWaitForTheResume) {
  EventLoop loop(0, IoBackend::uring);
  if (!loop.receives_completions()) GTEST_SKIP() << "no completion receive on this kernel";
  test::SocketPair a_peer, b_peer;
  TcpConnection* a = nullptr;
  TcpConnection* b = nullptr;
  std::string a_got, b_got;
  uint64_t b_received_while_paused = ~uint64_t{0};
  size_t b_kept_while_paused = 0;
  ConnectionCallbacks callbacks;
  callbacks.on_data = [&](TcpConnection& c, Buffer& in) {
    if (&c == a) {
      a_got += in.view();
      in.consume_all();
      // b's completion is in this same batch, after a's: the pause comes too late for the
      // kernel, so its bytes must be kept until the resume.
      b->pause_reading();
      loop.defer([&] {
        b_received_while_paused = b->bytes_received();
        b_kept_while_paused = b->buffer_memory_bytes();
        loop.run_after(20ms, [&] { b->resume_reading(); });
      });
      return;
    }
    b_got += in.view();
    in.consume_all();
    EXPECT_FALSE(b->reading_paused()) << "on_data while paused";
    loop.quit();
  };
  loop.post([&] {
    auto owned_a = std::make_unique<TcpConnection>(loop, Socket(a_peer.a), callbacks, 1 << 20);
    auto owned_b = std::make_unique<TcpConnection>(loop, Socket(b_peer.a), callbacks, 1 << 20);
    a_peer.a = b_peer.a = -1;
    a = owned_a.get();
    b = owned_b.get();
    a->start(loop.add_connection(std::move(owned_a)));
    b->start(loop.add_connection(std::move(owned_b)));
  });
  // Both receives are in the kernel after one turn; then both peers write from the loop's own
  // thread, so both completions land in the same batch, a's first.
  loop.run_after(20ms, [&] {
    ASSERT_EQ(::write(a_peer.b, "ay", 2), 2);
    ASSERT_EQ(::write(b_peer.b, "bee", 3), 3);
  });
  bool timed_out = false;
  loop.run_after(5s, [&] {
    timed_out = true;
    loop.quit();
  });
  loop.run();
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(a_got, "ay");
  EXPECT_EQ(b_got, "bee");
  EXPECT_EQ(b_received_while_paused, 0u) << "counted before on_data saw the bytes";
  EXPECT_GT(b_kept_while_paused, 0u)
      << "b's bytes came in a later batch: this run did not reach the kept-bytes path";
  EXPECT_EQ(b->bytes_received(), 3u);
}

}  // namespace
}  // namespace keel
