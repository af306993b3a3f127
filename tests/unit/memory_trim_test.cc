// Freed buffer memory goes back to the kernel (src/net/memory_trim.h): big frees are counted,
// 8 MiB of them make a trim, at most one a second, and on an event loop the trim happens by
// itself at the end of the turn that freed them.
#include "net/memory_trim.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "keel/net/buffer.h"
#include "keel/net/event_loop.h"
#include "test_util.h"

namespace keel {
namespace {

using namespace std::chrono_literals;

void free_a_big_buffer(size_t bytes = 9 << 20) {
  Buffer b;
  b.ensure_writable(bytes);
}

// Waits out the interval of any trim an earlier test made (a process-wide state).
void settle() {
  test::eventually([] { return detail::trim_if_due() <= 0; }, 3s);
}

TEST(MemoryTrim, SmallFreesAreNotCounted) {
  const size_t before = detail::freed_since_trim();
  {
    Buffer b;
    b.append("a line\n");
  }
  EXPECT_EQ(detail::freed_since_trim(), before);
}

TEST(MemoryTrim, EightMiBOfBigFreesMakeATrimAtMostOnceASecond) {
  settle();
  const uint64_t trims = detail::trims();
  free_a_big_buffer();
  EXPECT_GE(detail::freed_since_trim(), detail::kTrimAfterBytes);
  ASSERT_TRUE(test::eventually([] { return detail::trim_if_due() == 0; }, 3s));
  EXPECT_EQ(detail::trims(), trims + 1);
  EXPECT_LT(detail::freed_since_trim(), detail::kTrimAfterBytes);

  // As much again at once: within the interval it waits, and says how long.
  free_a_big_buffer();
  const int64_t wait = detail::trim_if_due();
  EXPECT_GT(wait, 0);
  EXPECT_LE(wait, detail::kTrimInterval.count());
  EXPECT_EQ(detail::trims(), trims + 1);
  // Then it trims (polled: the interval is a second).
  EXPECT_TRUE(test::eventually([] { return detail::trim_if_due() == 0; }, 3s));
  EXPECT_EQ(detail::trims(), trims + 2);
}

TEST(MemoryTrim, ALoopTrimsByItselfAfterTheTurnThatFreed) {
  settle();
  const uint64_t trims = detail::trims();
  EventLoop loop;
  bool trimmed = false;
  loop.post([] { free_a_big_buffer(); });
  // Polled from the loop: the trim is the loop's own doing (no one calls trim_if_due here).
  loop.run_every(5ms, [&] {
    if (detail::trims() > trims) {
      trimmed = true;
      loop.quit();
    }
  });
  loop.run_after(3s, [&] { loop.quit(); });
  loop.run();
  EXPECT_TRUE(trimmed) << "the loop never trimmed";
}

}  // namespace
}  // namespace keel
