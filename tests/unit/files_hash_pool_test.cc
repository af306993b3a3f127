// HashPool: prefix hashes off the caller's thread, remembered by key, one pass for every submit
// of a key whose pass is under way, and the file let go before done runs (a dup of an upload's
// locked part file must not hold its lock past it).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "services/files/hash_pool.h"
#include "test_util.h"

namespace keel::files {
namespace {

using namespace std::chrono_literals;

// A temporary file holding bytes, unlinked by the destructor.
struct TempFile {
  explicit TempFile(const std::string& bytes) {
    char name[] = "/tmp/keel-hash-pool-XXXXXX";
    int fd = ::mkstemp(name);
    if (fd < 0) return;
    path = name;
    ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    ::close(fd);
  }
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
  std::string path;
  bool ok = false;
};

class HashPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    content_ = test::pattern_bytes(3 * 1024 * 1024 + 11, 5);
    int fd = test::unlinked_temp_file(content_);
    ASSERT_GE(fd, 0);
    file_ = std::make_shared<const OpenFile>(fd);
  }

  std::string content_;
  std::shared_ptr<const OpenFile> file_;
};

TEST_F(HashPoolTest, HashesAPrefixAndRemembersItByKey) {
  HashPool pool(1);
  HashKey key{1, 2, content_.size(), 3, 1000};
  std::atomic<bool> done{false};
  Digest got{};
  pool.submit(file_, 1000, key, [&](const Sha256& state, int error) {
    EXPECT_EQ(error, 0);
    got = Sha256(state).finish();
    done = true;
  });
  ASSERT_TRUE(test::eventually([&] { return done.load(); }, 10s));
  EXPECT_EQ(got, Sha256::of(std::string_view(content_).substr(0, 1000)));
  ASSERT_TRUE(pool.cached(key).has_value());
  EXPECT_EQ(*pool.cached(key), got);
  EXPECT_FALSE(pool.cached(HashKey{1, 2, content_.size(), 3, 999}).has_value());
}

TEST_F(HashPoolTest, TheStateGoesOnFromThePrefix) {
  HashPool pool(2);
  std::atomic<bool> done{false};
  Digest whole{};
  pool.submit(file_, 4096, std::nullopt, [&](const Sha256& state, int error) {
    EXPECT_EQ(error, 0);
    Sha256 more(state);
    more.update(std::string_view(content_).substr(4096));
    whole = more.finish();
    done = true;
  });
  ASSERT_TRUE(test::eventually([&] { return done.load(); }, 10s));
  EXPECT_EQ(whole, Sha256::of(content_));
}

TEST_F(HashPoolTest, SubmitsOfOneKeyShareItsPass) {
  HashPool pool(1);
  // The pool's one thread is held in a first job until every submit below is in.
  std::atomic<bool> release{false};
  pool.submit(file_, 1, std::nullopt, [&](const Sha256&, int) {
    for (int i = 0; i < 1000 && !release; ++i) std::this_thread::sleep_for(10ms);
  });
  HashKey key{1, 2, content_.size(), 3, content_.size()};
  std::mutex mutex;
  std::vector<Digest> got;
  for (int i = 0; i < 5; ++i)
    pool.submit(file_, content_.size(), key, [&](const Sha256& state, int error) {
      EXPECT_EQ(error, 0);
      std::lock_guard lock(mutex);
      got.push_back(Sha256(state).finish());
    });
  pool.submit(file_, content_.size(), key, {});  // a warm-up nobody waits for
  release = true;
  ASSERT_TRUE(test::eventually(
      [&] {
        std::lock_guard lock(mutex);
        return got.size() == 5;
      },
      10s));
  for (const Digest& d : got) EXPECT_EQ(d, Sha256::of(content_));
  EXPECT_EQ(pool.passes(), 2u);  // the holding job's, and one for all six submits of key
}

TEST_F(HashPoolTest, AFileShorterThanAskedIsAnError) {
  HashPool pool(1);
  std::atomic<int> error{-1};
  pool.submit(file_, content_.size() + 1, HashKey{9, 9, 9, 9, 9},
              [&](const Sha256&, int e) { error = e; });
  ASSERT_TRUE(test::eventually([&] { return error.load() != -1; }, 10s));
  EXPECT_NE(error.load(), 0);
  EXPECT_FALSE(pool.cached(HashKey{9, 9, 9, 9, 9}).has_value());
}

TEST_F(HashPoolTest, LetsGoOfTheFileBeforeDoneRuns) {
  TempFile file(std::string(100000, 'p'));
  ASSERT_TRUE(file.ok);
  // As an upload's part file: locked, and the pool gets a dup (which shares the lock).
  int locked = ::open(file.path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(locked, 0);
  ASSERT_EQ(::flock(locked, LOCK_EX | LOCK_NB), 0);
  auto dup = std::make_shared<const OpenFile>(::fcntl(locked, F_DUPFD_CLOEXEC, 0));
  std::weak_ptr<const OpenFile> watch = dup;
  ::close(locked);  // the upload ends: from here only the pool's dup holds the lock

  HashPool pool(1);
  std::promise<std::pair<bool, bool>> seen;  // (file released, lock free) inside done
  pool.submit(std::move(dup), 100000, std::nullopt, [&](const Sha256&, int) {
    int other = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
    bool lock_free = other >= 0 && ::flock(other, LOCK_EX | LOCK_NB) == 0;
    if (other >= 0) ::close(other);
    seen.set_value({watch.expired(), lock_free});
  });
  auto done = seen.get_future();
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  auto [released, lock_free] = done.get();
  EXPECT_TRUE(released);
  EXPECT_TRUE(lock_free);
}

}  // namespace
}  // namespace keel::files
