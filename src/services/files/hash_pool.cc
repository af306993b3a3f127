#include "services/files/hash_pool.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>

namespace keel::files {

HashPool::~HashPool() {
  for (auto& t : threads_) t.request_stop();
  wake_.notify_all();
  threads_.clear();  // joins
}

void HashPool::submit(std::shared_ptr<const OpenFile> file, uint64_t length,
                      std::optional<HashKey> key, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (key) {
      auto [it, first] = in_flight_.try_emplace(*key);
      if (done) it->second.push_back(std::move(done));
      if (!first) return;  // the pass under way answers this one too
    }
    jobs_.push_back({std::move(file), length, key, key ? Done() : std::move(done)});
    if (threads_.empty())
      for (size_t i = 0; i < threads_wanted_; ++i)
        threads_.emplace_back([this](std::stop_token stop) { run(stop); });
  }
  wake_.notify_one();
}

std::optional<Digest> HashPool::cached(const HashKey& key) const {
  std::lock_guard lock(mutex_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

void HashPool::remember(const HashKey& key, const Digest& digest) {
  std::lock_guard lock(mutex_);
  if (!cache_.emplace(key, digest).second) return;
  cache_order_.push_back(key);
  if (cache_order_.size() > kCacheEntries) {
    cache_.erase(cache_order_.front());
    cache_order_.pop_front();
  }
}

void HashPool::run(std::stop_token stop) {
  std::vector<char> chunk(256 * 1024);
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      if (!wake_.wait(lock, stop, [this] { return !jobs_.empty(); })) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    passes_.fetch_add(1);
    Sha256 state;
    int error = 0;
    for (uint64_t at = 0; at < job.length;) {
      if (stop.stop_requested()) return;
      size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), job.length - at));
      ssize_t n = ::pread(job.file->fd(), chunk.data(), want, static_cast<off_t>(at));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? errno : EIO;  // 0: the file is shorter than it was
        break;
      }
      state.update(chunk.data(), static_cast<size_t>(n));
      at += static_cast<uint64_t>(n);
    }
    if (!error && job.key) remember(*job.key, Sha256(state).finish());
    job.file.reset();  // before done: see submit()
    std::vector<Done> waiting;
    if (job.key) {
      std::lock_guard lock(mutex_);
      auto it = in_flight_.find(*job.key);
      waiting = std::move(it->second);
      in_flight_.erase(it);
    } else if (job.done) {
      waiting.push_back(std::move(job.done));
    }
    for (Done& done : waiting) done(state, error);
  }
}

}  // namespace keel::files
