// ProcessCore's side of the spawner's channel: spawn requests, signals, and the events that
// come back (spawned, spawn failed, exited). Loop thread unless a function says otherwise.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "keel/error.h"
#include "process_core_parts.h"

namespace keel {
namespace {}  // namespace

void ProcessCore::spawn(int fd) {
  Socket socket(fd);
  try {
    socket.apply_connection_options(options_.socket);
  } catch (const Error&) {
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  SpawnRequest r;
  r.kind = SpawnRequest::spawn;
  r.id = next_id_++;
  Endpoint peer = socket.peer_endpoint(), local = socket.local_endpoint();
  if (per_address_ && !per_address_->try_acquire(peer)) {
    rejected_per_ip_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_refused) options_.on_refused(Refusal::per_address);
    refuse_socket(std::move(socket), options_.refusal_line
                                         ? options_.refusal_line(Refusal::per_address)
                                         : std::string());
    return;
  }
  std::memcpy(&r.peer, peer.sockaddr_ptr(), peer.sockaddr_len());
  r.peer_len = peer.sockaddr_len();
  std::memcpy(&r.local, local.sockaddr_ptr(), local.sockaddr_len());
  r.local_len = local.sockaddr_len();
  if (local.is_unix()) {
    socklen_t len = sizeof r.cred;
    r.has_cred = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &r.cred, &len) == 0;
  }
  int err_pipe[2] = {-1, -1};
  if (options_.capture_stderr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    if (per_address_) per_address_->release(peer);
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return;  // the socket closes: the client sees the refusal at once
  }
  auto child = std::make_unique<Child>(*this);
  child->info =
      ChildInfo{ConnectionId::from_value(r.id), 0, peer, std::chrono::steady_clock::now()};
  child->stderr_fd = err_pipe[0];
  if (child->stderr_fd >= 0) {
    ::fcntl(child->stderr_fd, F_SETFL, O_NONBLOCK);
    loop_.watch(child->stderr_fd, EPOLLIN, &child->stderr_handler);
  }
  // The parent keeps its copy of the socket only for the idle clock.
  bool keep = options_.idle_timeout.count() > 0;
  int sock = keep ? socket.fd() : socket.release();
  if (keep) child->socket = std::move(socket);
  {
    std::lock_guard lock(mutex_);
    children_.emplace(r.id, std::move(child));
    last_requested_ = r.id;
  }
  // Not waiting for the answer: the spawner forks back to back while we accept.
  send(r, sock, !keep, err_pipe[1]);
}

// The spawner answers spawn requests in order: every id up to this one has its pid (or failed).
void ProcessCore::answered(uint64_t id) {
  std::lock_guard lock(mutex_);
  last_answered_ = std::max(last_answered_, id);
  answered_cv_.notify_all();
}

void ProcessCore::on_channel_ready(uint32_t events) {
  if (events & EPOLLOUT) flush();
  if (channel_->fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read_events();
}

void ProcessCore::read_events() {
  // Bounded per wake-up, so a burst of exits cannot starve accepting.
  for (int i = 0; i < 256 && channel_->fd >= 0; ++i) {
    SpawnerEvent e;
    int r = read_event(channel_->fd, e);
    if (r == 1) {
      handle_event(e);
      continue;
    }
    if (r < 0 && errno == EAGAIN) return;
    spawner_lost();  // EOF or an error: nobody will fork or reap for us any more
    return;
  }
}

// A spawn is marked answered only once the table shows its outcome: children() waits for the
// answer and must then find the pid (or no entry), never an entry still without one.
void ProcessCore::handle_event(const SpawnerEvent& e) {
  switch (e.kind) {
    case SpawnerEvent::spawned: {
      {
        std::lock_guard lock(mutex_);
        if (auto it = children_.find(e.id); it != children_.end()) it->second->info.pid = e.pid;
      }
      accepted_.fetch_add(1, std::memory_order_relaxed);
      answered(e.id);
      return;
    }
    case SpawnerEvent::spawn_failed:
      accept_errors_.fetch_add(1, std::memory_order_relaxed);
      remove_child(e.id, -1, false);
      answered(e.id);
      return;
    case SpawnerEvent::exited: remove_child(e.id, e.status, true); return;
  }
}

// Loop thread. Queues r (with its descriptors, closed once sent) and sends what it can.
void ProcessCore::send(const SpawnRequest& r, int socket_fd, bool close_socket, int stderr_fd) {
  Channel::Outgoing o{r, {socket_fd, stderr_fd}, close_socket};
  if (channel_->fd < 0) {
    o.release();
    return;
  }
  channel_->queue.push_back(o);
  flush();
}

void ProcessCore::flush() {
  Channel& ch = *channel_;
  while (!ch.queue.empty() && ch.fd >= 0) {
    Channel::Outgoing o = ch.queue.front();
    int count = o.fds[0] < 0 ? 0 : o.fds[1] < 0 ? 1 : 2;
    int err = send_request(ch.fd, o.request, o.fds, count);
    if (err == EAGAIN) break;
    ch.queue.pop_front();
    o.release();
    // A request the spawner will never see: a spawn then failed here (EPIPE: the read side
    // finds the spawner gone too).
    if (err != 0 && o.request.kind == SpawnRequest::spawn) {
      accept_errors_.fetch_add(1, std::memory_order_relaxed);
      answered(o.request.id);
      remove_child(o.request.id, -1, false);
    }
  }
  bool want_write = ch.fd >= 0 && !ch.queue.empty();
  if (want_write != ch.want_write && ch.fd >= 0) {
    uint32_t events = want_write ? EPOLLIN | EPOLLOUT : EPOLLIN;
    if (int err = loop_.rewatch(ch.fd, events, &ch)) {
      // An unwatchable channel never reports the spawner's answers: treat it as lost.
      std::fprintf(stderr, "keel: spawner channel: epoll_ctl modify: %s\n",
                   errno_text(err).c_str());
      spawner_lost();
      return;
    }
    ch.want_write = want_write;
  }
}

// Loop thread. The spawner exited or crashed: its children were re-parented to init, which
// reaps them; we can only forget them (status unknown) and stop accepting.
void ProcessCore::spawner_lost() {
  if (channel_->fd < 0) return;
  loop_.unwatch(channel_->fd);
  channel_->close();
  answered(UINT64_MAX);
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, c] : children_) ids.push_back(id);
  }
  for (uint64_t id : ids) remove_child(id, -1, true);
  update_listening();
}

// Loop thread. Takes id out of the table; report: call on_exit (a child that was forked).
void ProcessCore::remove_child(uint64_t id, int status, bool report) {
  std::unique_ptr<Child> child;
  {
    std::lock_guard lock(mutex_);
    auto it = children_.find(id);
    if (it == children_.end()) return;
    child = std::move(it->second);
    children_.erase(it);
    if (per_address_) per_address_->release(child->info.peer);
    if (children_.empty()) idle_cv_.notify_all();
  }
  child->reaped = true;
  if (child->stderr_fd >= 0) read_stderr(*child, true);  // the rest, then closed
  if (report && options_.on_exit) options_.on_exit(child->info, status, child->why);
  // Events for its descriptors may still be queued in this turn: free it after the turn.
  Child* raw = child.release();
  loop_.defer([raw] { delete raw; });
  update_listening();
}

void ProcessCore::check_idle() {
  auto limit = static_cast<uint32_t>(options_.idle_timeout.count());
  std::vector<uint64_t> idle;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, c] : children_) {
      if (!c->socket.valid() || !c->why.empty()) continue;
      tcp_info ti{};
      socklen_t len = sizeof ti;
      if (::getsockopt(c->socket.fd(), IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) continue;
      // Milliseconds since the last payload byte in each direction (ACKs do not count).
      if (std::min(ti.tcpi_last_data_recv, ti.tcpi_last_data_sent) < limit) continue;
      c->why = "idle timeout";
      idle.push_back(id);
    }
  }
  for (uint64_t id : idle) {
    SpawnRequest r;
    r.kind = SpawnRequest::signal_one;
    r.id = id;
    r.signal_number = SIGKILL;
    send(r);
  }
}

bool ProcessCore::kill(ConnectionId id, int signal_number, std::string_view why) {
  std::lock_guard lock(mutex_);
  auto it = children_.find(id.value());
  if (it == children_.end()) return false;
  if (it->second->why.empty()) it->second->why = why;
  SpawnRequest r;
  r.kind = SpawnRequest::signal_one;
  r.id = id.value();
  r.signal_number = signal_number;
  loop_.post([this, r] { send(r); });
  return true;
}

bool ProcessCore::terminate(ConnectionId id, std::chrono::milliseconds grace,
                            std::string_view why) {
  if (!kill(id, SIGTERM, why)) return false;
  // Ids are never reused, so a late SIGKILL for a child that has exited finds nothing.
  loop_.post([this, id, grace] { loop_.run_after(grace, [this, id] { kill(id, SIGKILL); }); });
  return true;
}

void ProcessCore::signal_all(int signal_number, const char* why) {
  {
    std::lock_guard lock(mutex_);
    if (children_.empty()) return;
    for (auto& [id, c] : children_)
      if (c->why.empty()) c->why = why;
  }
  SpawnRequest r;
  r.kind = SpawnRequest::signal_all;
  r.signal_number = signal_number;
  loop_.post([this, r] { send(r); });
}

}  // namespace keel
