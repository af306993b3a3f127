// ThreadsEngine's control thread: accepts on every listener (or backs off when descriptors or
// threads run out), starts a thread per connection and joins the ones that have finished.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <utility>

#include "../net/memory_trim.h"
#include "keel/engine/threads.h"
#include "keel/error.h"
#include "thread_connection.h"

namespace keel {
namespace {
// Generations come from one process-wide counter, so ids stay unique across several engines
// (slots alone repeat from engine to engine).
std::atomic<uint32_t> g_next_generation{1};

uint32_t next_generation() noexcept {
  uint32_t g = g_next_generation.fetch_add(1, std::memory_order_relaxed);
  return g != 0 ? g : g_next_generation.fetch_add(1, std::memory_order_relaxed);
}

int open_reserve() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}
}  // namespace

void ThreadsEngine::wake_control() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(control_wake_fd_, &one, sizeof one);
}

void ThreadsEngine::control_loop() {
  int reserve_fd = open_reserve();  // see shed_one()
  auto resume_at = std::chrono::steady_clock::time_point::min();
  std::vector<pollfd> fds;
  for (;;) {
    bool accepting;
    {
      std::lock_guard lock(control_mutex_);
      if (stop_wanted_) break;
      if (!accept_wanted_ && listening_) {
        listeners_.clear();
        listening_ = false;
        control_cv_.notify_all();
      }
      accepting = listening_;
    }
    const auto now = std::chrono::steady_clock::now();
    const bool backing_off = now < resume_at;
    fds.assign(1, pollfd{control_wake_fd_, POLLIN, 0});
    if (accepting && !backing_off)
      for (const Socket& l : listeners_) fds.push_back({l.fd(), POLLIN, 0});
    int timeout = -1;
    if (backing_off)
      timeout =
          static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(resume_at - now).count());
    // Connections free their buffers on their own threads (each with its own malloc arena);
    // this thread returns the memory to the kernel once enough is free (memory_trim.h).
    if (int64_t trim_wait = detail::trim_if_due(); trim_wait > 0)
      timeout = timeout < 0 ? static_cast<int>(trim_wait)
                            : std::min(timeout, static_cast<int>(trim_wait));
    if (::poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno != EINTR) resume_at = now + options_.accept_backoff;  // ENOMEM: do not spin
      continue;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(control_wake_fd_, &count, sizeof count);
    }
    reap_finished();
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents || accept_from(fds[i].fd, reserve_fd) == 0) continue;
      resume_at = std::chrono::steady_clock::now() + options_.accept_backoff;
      break;
    }
  }
  listeners_.clear();
  if (reserve_fd >= 0) ::close(reserve_fd);
  std::lock_guard lock(control_mutex_);
  listening_ = false;
  control_cv_.notify_all();
}

namespace {
// Out of descriptors: frees the reserve to accept-and-close one waiting client (it learns at
// once instead of hanging in the backlog). False when that did not work: time to back off.
bool shed_one(int listener_fd, int& reserve_fd) {
  if (reserve_fd < 0) return false;
  ::close(reserve_fd);
  int fd = ::accept4(listener_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) ::close(fd);
  reserve_fd = open_reserve();
  return fd >= 0 && reserve_fd >= 0;
}
}  // namespace

int ThreadsEngine::accept_from(int listener_fd, int& reserve_fd) {
  // Bounded per wake-up so stop requests and reaping are not starved by a flood.
  for (int i = 0; i < 128; ++i) {
    // The address accept4 reports stays known even when the client has already reset the
    // connection (a load balancer's health check), when getpeername() no longer can.
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(listener_fd, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= descriptor_ceiling_) {  // the last descriptors are left to the admin endpoint
      ::close(fd);
      refused(Refusal::fd_exhaustion);
      continue;
    }
    if (fd >= 0) {
      Endpoint from = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), peer_len);
      if (int err = on_accepted(Socket(fd), from)) return err;
      continue;
    }
    int err = errno;
    switch (err) {
      case EAGAIN: return 0;
      case EINTR:
      case ECONNABORTED:  // the client gave up before we accepted; nothing to do
      case EPROTO: accept_errors_.fetch_add(1, std::memory_order_relaxed); continue;
      case EMFILE:
      case ENFILE:
        accept_errors_.fetch_add(1, std::memory_order_relaxed);
        refused(Refusal::fd_exhaustion);
        if (shed_one(listener_fd, reserve_fd)) continue;
        return err;
      default:  // ENOBUFS, ENOMEM, ...: transient resource trouble
        accept_errors_.fetch_add(1, std::memory_order_relaxed);
        return err;
    }
  }
  return 0;
}

void ThreadsEngine::refused(Refusal reason) {
  if (reason == Refusal::per_address)
    rejected_per_ip_.fetch_add(1, std::memory_order_relaxed);
  else if (reason == Refusal::max_connections)
    rejected_.fetch_add(1, std::memory_order_relaxed);
  else
    fd_exhaustion_.fetch_add(1, std::memory_order_relaxed);
  if (options_.on_refused) options_.on_refused(reason);
}

int ThreadsEngine::on_accepted(Socket socket, const Endpoint& peer) {
  // Only this thread adds to active_, so the check and the increment below cannot be raced.
  if (options_.max_connections &&
      active_.load(std::memory_order_relaxed) >= options_.max_connections) {
    refused(Refusal::max_connections);
    // Closing the socket tells the client at once; a stream's stage (TLS) has not run yet, so
    // only a plain connection can be told why.
    refuse_socket(std::move(socket), options_.stream.factory
                                         ? std::string()
                                         : service_.refusal_line(Refusal::max_connections));
    return 0;
  }
  try {
    socket.apply_connection_options(options_.socket);
  } catch (const Error&) {
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    // The client is closed (shed) with the socket; the next accept sheds the next one, and
    // the backlog drains without a spin. Anything but descriptor exhaustion: back off.
    int err = errno;
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    if (err != EMFILE && err != ENFILE) return err;
    refused(Refusal::fd_exhaustion);
    return 0;
  }
  // The registry lock is held only for table updates, never across getpeername() or thread
  // creation: every cross-thread send in the process looks connections up under it.
  uint32_t slot;
  {
    std::unique_lock lock(registry_mutex_);
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else if (entries_.size() < ConnectionId::kMaxSlots) {
      slot = static_cast<uint32_t>(entries_.size());
      entries_.emplace_back();
    } else {
      ::close(wake_fd);
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
  }
  // Only this thread hands out slots, so the reserved one stays ours (and empty: lookups of it
  // fail) until the connection is put there.
  const ConnectionId id(0, slot, next_generation());
  auto connection =
      std::make_shared<detail::ThreadConnection>(*host_, std::move(socket), wake_fd, id, peer);
  {
    std::unique_lock lock(registry_mutex_);
    entries_[slot].connection = connection;
  }
  // Counted before the thread runs, so a client it has answered is always in the counts.
  active_.fetch_add(1, std::memory_order_relaxed);
  accepted_.fetch_add(1, std::memory_order_relaxed);
  threads_.fetch_add(1, std::memory_order_relaxed);
  std::jthread thread;
  try {
    thread = std::jthread([connection] { connection->run(); });
  } catch (const std::system_error& e) {         // out of threads (EAGAIN) or memory
    connection->close("no thread to serve it");  // its id is stale for anyone who found it
    {
      std::unique_lock lock(registry_mutex_);
      entries_[slot].connection.reset();
      free_slots_.push_back(slot);
    }
    active_.fetch_sub(1, std::memory_order_relaxed);
    accepted_.fetch_sub(1, std::memory_order_relaxed);
    threads_.fetch_sub(1, std::memory_order_relaxed);
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return e.code().value() ? e.code().value() : EAGAIN;
  }
  std::unique_lock lock(registry_mutex_);
  Entry& entry = entries_[slot];
  if (entry.connection == connection)
    entry.thread = std::move(thread);
  else  // it has finished already (connection_finished found no thread to hand over)
    finished_.push_back(std::move(thread));
  return 0;
}

void ThreadsEngine::connection_finished(ConnectionId id) {
  {
    std::unique_lock lock(registry_mutex_);
    Entry& entry = entries_[id.slot()];
    // Joined by the control thread (or stop()); empty when stop() has taken it already.
    finished_.push_back(std::move(entry.thread));
    entry.connection.reset();
    free_slots_.push_back(id.slot());
  }
  {
    // Under the lock: a waiter that sees 0 may go on to destroy the engine.
    std::lock_guard lock(idle_mutex_);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) idle_cv_.notify_all();
  }
  wake_control();
}

void ThreadsEngine::reap_finished() {
  std::vector<std::jthread> done;
  {
    std::unique_lock lock(registry_mutex_);
    done.swap(finished_);
  }
  for (std::jthread& t : done) {
    if (!t.joinable()) continue;
    t.join();  // the thread is past connection_finished(): this returns promptly
    threads_.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace keel
