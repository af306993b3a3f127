#include "keel/engine/threads.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <utility>

#include "keel/error.h"
#include "thread_connection.h"

namespace keel {

ThreadsOptions ThreadsOptions::from(const ServerOptions& server) {
  ThreadsOptions o;
  o.listen = server.listen;
  o.socket = server.socket;
  o.max_connections = server.max_connections;
  o.max_connections_per_ip = server.max_connections_per_ip;
  o.on_refused = server.on_refused;
  o.high_water_bytes = server.high_water_bytes;
  o.accept_backoff = server.accept_backoff;
  o.fd_headroom = server.fd_headroom;
  o.stream = server.stream;
  o.timeouts = server.timeouts;
  return o;
}

ThreadsEngine::ThreadsEngine(ThreadsOptions options, Service& service)
    : service_(service), options_(std::move(options)) {
  // Count connections closed before they opened, then tell whoever asked to hear of them.
  options_.stream.on_open_failed = [this, report = std::move(options_.stream.on_open_failed)](
                                       const Endpoint& peer, const std::string& reason) {
    open_failures_.fetch_add(1, std::memory_order_relaxed);
    if (report) report(peer, reason);
  };
  // Plain new: clang 14 has no parenthesised aggregate initialisation for make_unique.
  host_.reset(new detail::ConnectionHost{*this, service_, options_.high_water_bytes, kEvictGrace,
                                         options_.stream,
                                         [this](ConnectionId id) { connection_finished(id); }});
  host_->timeouts = options_.timeouts;
  host_->closed = &closed_;
  if (options_.max_connections_per_ip) {
    per_address_ = std::make_unique<PerAddressLimit>(options_.max_connections_per_ip);
    host_->admit = [this](const Endpoint& peer) {
      if (per_address_->try_acquire(peer)) return true;
      refused(Refusal::per_address);
      return false;
    };
    host_->release = [this](const Endpoint& peer) { per_address_->release(peer); };
  }
}

ThreadsEngine::~ThreadsEngine() {
  stop();
  if (control_wake_fd_ >= 0) ::close(control_wake_fd_);
}

void ThreadsEngine::start() {
  if (started_) return;
  descriptor_ceiling_ = descriptor_ceiling(options_.fd_headroom);
  if (options_.listen.empty()) throw Error("server: no endpoint to listen on");
  // Bind everything first, so a failure leaves nothing half-started.
  std::vector<Socket> listeners;
  std::vector<Endpoint> bound;
  for (const Endpoint& ep : options_.listen) {
    Socket s = Socket::listen_on(ep, options_.socket);
    bound.push_back(ep.is_unix() ? ep : s.local_endpoint());
    listeners.push_back(std::move(s));
  }
  control_wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (control_wake_fd_ < 0) throw_system_error("eventfd", "threads engine", errno);
  listeners_ = std::move(listeners);
  bound_ = std::move(bound);
  {
    std::lock_guard lock(control_mutex_);
    listening_ = true;
  }
  control_ = std::jthread([this] { control_loop(); });
  started_ = true;
}

void ThreadsEngine::stop_accepting() {
  if (!started_) return;
  {
    std::unique_lock lock(control_mutex_);
    if (!listening_) return;
    accept_wanted_ = false;
  }
  wake_control();
  {
    std::unique_lock lock(control_mutex_);
    control_cv_.wait(lock, [this] { return !listening_; });
  }
  for (const Endpoint& ep : bound_)
    if (ep.is_unix()) ::unlink(ep.unix_path().c_str());
}

std::vector<std::shared_ptr<detail::ThreadConnection>> ThreadsEngine::live_connections() const {
  std::vector<std::shared_ptr<detail::ThreadConnection>> out;
  std::shared_lock lock(registry_mutex_);
  for (const Entry& e : entries_)
    if (e.connection) out.push_back(e.connection);
  return out;
}

void ThreadsEngine::close_all(bool graceful, std::string_view reason) {
  for (const auto& c : live_connections()) {
    if (graceful)
      c->close_gracefully(service_.drain_line(), reason, std::nullopt);
    else
      c->close(reason);
  }
}

bool ThreadsEngine::wait_for_no_connections(std::chrono::milliseconds timeout) {
  std::unique_lock lock(idle_mutex_);
  return idle_cv_.wait_for(lock, timeout,
                           [this] { return active_.load(std::memory_order_acquire) == 0; });
}

size_t ThreadsEngine::drain(std::chrono::milliseconds timeout) {
  if (!started_ || stopped_) return 0;
  stop_accepting();
  // Drain::finish leaves each connection to its client; Drain::close ends it with a last line.
  if (service_.drain() == Service::Drain::close) close_all(true, "server stopping");
  if (wait_for_no_connections(timeout)) return 0;
  size_t left = active_.load();
  close_all(false, "drain timeout");
  wait_for_no_connections(std::chrono::seconds(5));
  return left;
}

void ThreadsEngine::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;
  stop_accepting();
  close_all(false, "server stopped");
  {
    std::lock_guard lock(control_mutex_);
    stop_wanted_ = true;
  }
  wake_control();
  control_.join();
  // No thread is started from here on: join every connection thread, live or finished.
  std::vector<std::jthread> all;
  {
    std::unique_lock lock(registry_mutex_);
    for (Entry& e : entries_)
      if (e.thread.joinable()) all.push_back(std::move(e.thread));
    for (std::jthread& t : finished_) all.push_back(std::move(t));
    finished_.clear();
  }
  for (std::jthread& t : all) {
    if (!t.joinable()) continue;
    t.join();
    threads_.fetch_sub(1, std::memory_order_relaxed);
  }
}

EngineStats ThreadsEngine::stats() const {
  EngineStats s;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.rejected_over_cap = rejected_.load(std::memory_order_relaxed);
  s.rejected_per_ip = rejected_per_ip_.load(std::memory_order_relaxed);
  s.accept_errors = accept_errors_.load(std::memory_order_relaxed);
  s.fd_exhaustion = fd_exhaustion_.load(std::memory_order_relaxed);
  s.open_failures = open_failures_.load(std::memory_order_relaxed);
  for (size_t k = 0; k < s.closed.size(); ++k)
    s.closed[k] = closed_[k].load(std::memory_order_relaxed);
  s.active = active_.load(std::memory_order_relaxed);
  s.threads = threads_.load(std::memory_order_relaxed);
  return s;
}

void ThreadsEngine::visit(const std::function<void(const ClientSnapshot&)>& fn) {
  // Copied under the registry lock; fn runs after it, so it may use the engine freely.
  std::vector<ClientSnapshot> all;
  {
    std::shared_lock lock(registry_mutex_);
    all.reserve(entries_.size());
    for (const Entry& e : entries_)
      if (e.connection)
        if (auto s = e.connection->snapshot()) all.push_back(*s);
  }
  for (const ClientSnapshot& s : all) fn(s);
}

std::shared_ptr<detail::ThreadConnection> ThreadsEngine::find(ConnectionId id) const {
  std::shared_lock lock(registry_mutex_);
  if (!id.valid() || id.loop() != 0 || id.slot() >= entries_.size()) return nullptr;
  const auto& c = entries_[id.slot()].connection;
  return c && c->id() == id ? c : nullptr;
}

namespace {
// The connection whose thread is calling, if it is id: a service replying to its own client
// (the common case) skips the lookup.
// The connection whose callback runs on this thread, if it is id of this engine (host). Threads
// engines draw generations from one process-wide counter, so two of them give equal ids only
// after it wraps (2^32 connections); the host check keeps this right past that, as the
// reactor's loop check does for its per-engine ids.
detail::ThreadConnection* current_if(ConnectionId id, const detail::ConnectionHost& host) {
  detail::ThreadConnection* c = detail::ThreadConnection::current();
  return c && c->id() == id && c->hosted_by(host) ? c : nullptr;
}
}  // namespace

bool ThreadsEngine::send(ConnectionId id, std::string_view bytes) {
  if (auto* c = current_if(id, *host_)) return c->send(bytes);
  auto c = find(id);
  return c && c->send(bytes);
}

bool ThreadsEngine::send_file(ConnectionId id, FileRegion region) {
  if (auto* c = current_if(id, *host_)) return c->send_file(std::move(region));
  auto c = find(id);
  return c && c->send_file(std::move(region));
}

size_t ThreadsEngine::send_many(const std::vector<ConnectionId>& ids, std::string_view bytes) {
  std::vector<std::shared_ptr<detail::ThreadConnection>> targets;
  targets.reserve(ids.size());
  {
    std::shared_lock lock(registry_mutex_);
    for (ConnectionId id : ids) {
      if (!id.valid() || id.loop() != 0 || id.slot() >= entries_.size()) continue;
      const auto& c = entries_[id.slot()].connection;
      if (c && c->id() == id) targets.push_back(c);
    }
  }
  size_t n = 0;
  for (const auto& c : targets) n += c->send(bytes) ? 1 : 0;
  return n;
}

bool ThreadsEngine::shutdown(ConnectionId id) {
  if (auto* c = current_if(id, *host_)) return c->shutdown();
  auto c = find(id);
  return c && c->shutdown();
}

bool ThreadsEngine::close(ConnectionId id, std::string_view reason) {
  if (auto* c = current_if(id, *host_)) return c->close(reason);
  auto c = find(id);
  return c && c->close(reason);
}

bool ThreadsEngine::close_gracefully(ConnectionId id, std::string_view last_line,
                                     std::string_view reason, std::chrono::milliseconds grace) {
  if (auto* c = current_if(id, *host_)) return c->close_gracefully(last_line, reason, grace);
  auto c = find(id);
  return c && c->close_gracefully(last_line, reason, grace);
}

bool ThreadsEngine::pause_reading(ConnectionId id) {
  if (auto* c = current_if(id, *host_)) return c->pause_reading();
  auto c = find(id);
  return c && c->pause_reading();
}

bool ThreadsEngine::resume_reading(ConnectionId id) {
  if (auto* c = current_if(id, *host_)) return c->resume_reading();
  auto c = find(id);
  return c && c->resume_reading();
}

bool ThreadsEngine::set_tap(ConnectionId id, std::unique_ptr<ConnectionTap> tap) {
  auto c = find(id);
  if (!c || !tap) return false;
  c->set_tap(std::move(tap));
  return true;
}

bool ThreadsEngine::clear_tap(ConnectionId id, const ConnectionTap* tap) {
  auto c = find(id);
  if (!c) return false;
  c->clear_tap(tap);
  return true;
}

TimerId ThreadsEngine::start_timer(ConnectionId id, std::chrono::milliseconds delay, TimerTask fn) {
  auto* c = current_if(id, *host_);
  return c ? c->start_timer(delay, std::move(fn)) : 0;
}

void ThreadsEngine::cancel_timer(ConnectionId id, TimerId timer) {
  if (auto* c = current_if(id, *host_)) c->cancel_timer(timer);
}

}  // namespace keel
