// HashPool: SHA-256 of file prefixes, computed off the event loops (hashing a 10 GiB file takes
// seconds, which no loop may spend) on a few threads of its own, with a bounded cache of results
// so that many clients verifying the same file cost one pass over it.
// Thread safety: submit() and cached() from any thread. Threads start at the first submit(), in
// the process that submits (a process-per-connection child starts its own). The destructor
// stops the threads: a job running then is abandoned (its done() is not called).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include "keel/net/file_region.h"
#include "services/files/sha256.h"

namespace keel::files {

// What identifies the bytes a hash covers: the file (device, inode) as it was (size, mtime),
// and the prefix length.
struct HashKey {
  uint64_t device = 0, inode = 0, size = 0;
  int64_t mtime_ns = 0;
  uint64_t length = 0;
  bool operator<(const HashKey& o) const {
    return std::tie(device, inode, size, mtime_ns, length) <
           std::tie(o.device, o.inode, o.size, o.mtime_ns, o.length);
  }
};

class HashPool {
 public:
  // The state after hashing [0, length): done gets it (finish() a copy for the digest, or go
  // on updating it), or an errno when reading failed (the state is then unusable).
  using Done = std::function<void(const Sha256& state, int error)>;

  explicit HashPool(size_t threads) : threads_wanted_(threads ? threads : 1) {}
  ~HashPool();
  HashPool(const HashPool&) = delete;
  HashPool& operator=(const HashPool&) = delete;

  // Hashes the first length bytes of file on a pool thread, then calls done there (if set).
  // With a key, the digest is remembered (cached() finds it) once computed, and a submit of a
  // key whose pass is already queued or running joins it instead of starting another: many
  // clients verifying one file cost one pass. The pool lets go of file before done runs: a
  // descriptor of an upload's part file (a dup shares its flock) must not hold the lock after
  // done has told the client to go on, and the upload has then ended.
  void submit(std::shared_ptr<const OpenFile> file, uint64_t length, std::optional<HashKey> key,
              Done done);
  std::optional<Digest> cached(const HashKey& key) const;
  // Passes over a file made so far (a joined submit or a cache hit makes none).
  uint64_t passes() const noexcept { return passes_.load(); }

  static constexpr size_t kCacheEntries = 4096;

 private:
  struct Job {
    std::shared_ptr<const OpenFile> file;
    uint64_t length;
    std::optional<HashKey> key;
    Done done;
  };
  void run(std::stop_token stop);
  void remember(const HashKey& key, const Digest& digest);

  const size_t threads_wanted_;
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  std::deque<Job> jobs_;
  std::map<HashKey, Digest> cache_;
  std::map<HashKey, std::vector<Done>> in_flight_;  // keyed passes queued or running: who waits
  std::deque<HashKey> cache_order_;                 // oldest first: the one evicted
  std::atomic<uint64_t> passes_{0};
  std::vector<std::jthread> threads_;
};

}  // namespace keel::files
