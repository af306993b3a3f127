// HashPool: a prefix's SHA-256 computed on a pool thread, the cache by key, and the file let go
// before done runs (a dup of an upload's locked part file must not hold its lock past it).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>

#include "services/files/hash_pool.h"

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

std::shared_ptr<const OpenFile> open_file(const std::string& path) {
  return std::make_shared<const OpenFile>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

TEST(HashPool, HashesAPrefixAndCachesItByKey) {
  TempFile file("hello world\n");
  ASSERT_TRUE(file.ok);
  HashPool pool(1);
  const HashKey key{1, 2, 12, 3, 5};
  std::promise<std::string> hex;
  pool.submit(open_file(file.path), 5, key, [&](const Sha256& state, int error) {
    hex.set_value(error ? "error" : to_hex(Sha256(state).finish()));
  });
  auto done = hex.get_future();
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(done.get(), to_hex(Sha256::of("hello")));
  auto cached = pool.cached(key);
  ASSERT_TRUE(cached);
  EXPECT_EQ(to_hex(*cached), to_hex(Sha256::of("hello")));
}

TEST(HashPool, LetsGoOfTheFileBeforeDoneRuns) {
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
