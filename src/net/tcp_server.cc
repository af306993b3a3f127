#include "keel/net/tcp_server.h"

#include <unistd.h>

#include <cstdio>

#include "acceptor.h"
#include "keel/error.h"

namespace keel {

TcpServer::TcpServer(LoopPool& pool, ServerOptions options, ConnectionCallbacks callbacks)
    : pool_(pool), options_(std::move(options)), callbacks_(std::move(callbacks)) {
  closed_traffic_.resize(pool_.size());
  if (options_.max_connections_per_ip)
    per_address_ = std::make_unique<PerAddressLimit>(options_.max_connections_per_ip);
  wrapped_ = callbacks_;
  wrapped_.on_open = [this](TcpConnection& c) {
    // Here and not at accept: only now is the client's address known (a PROXY header's).
    if (per_address_ && !per_address_->try_acquire(c.peer())) {
      c.set_user_tag(kRefusedTag);
      std::string line = refused(Refusal::per_address);
      if (!line.empty()) {
        c.send(line);
        discard_received(c.fd());  // so the close below is a FIN behind the line, not a reset
      }
      c.force_close(to_string(Refusal::per_address));
      return;
    }
    if (callbacks_.on_open) callbacks_.on_open(c);
  };
  wrapped_.on_close = [this](TcpConnection& c, const CloseReason& reason) {
    closed_[static_cast<size_t>(reason.kind)].fetch_add(1, std::memory_order_relaxed);
    if (c.loop().index() < closed_traffic_.size()) {
      ServerTraffic& t = closed_traffic_[c.loop().index()];
      t.bytes_in += c.bytes_received();
      t.bytes_out += c.bytes_sent();
      t.reads += c.reads();
      t.sends += c.sends();
    }
    if (c.was_opened()) {
      if (c.user_tag() != kRefusedTag) {
        if (per_address_) per_address_->release(c.peer());
        if (callbacks_.on_close) callbacks_.on_close(c, reason);
      }
    } else {
      open_failures_.fetch_add(1, std::memory_order_relaxed);
      if (options_.stream.on_open_failed)
        options_.stream.on_open_failed(c.peer(), reason.to_string());
    }
    // Under the lock: once a waiter sees 0 it may destroy the server, so nothing of the server
    // may be touched after the count drops without holding the mutex the waiter also takes.
    std::lock_guard lock(idle_mutex_);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) idle_cv_.notify_all();
  };
}

TcpServer::~TcpServer() {
  stop();
}

void TcpServer::start() {
  if (started_) return;
  if (options_.listen.empty()) throw Error("server: no endpoint to listen on");
  // Bind everything first, so a failure leaves nothing half-started.
  std::vector<std::pair<EventLoop*, Socket>> listeners;
  for (const Endpoint& ep : options_.listen) {
    if (options_.listener_per_loop && !ep.is_unix()) {
      SocketOptions opts = options_.socket;
      opts.reuse_port = true;
      Endpoint target = ep;
      for (size_t i = 0; i < pool_.size(); ++i) {
        Socket s = Socket::listen_on(target, opts);
        if (i == 0) target = s.local_endpoint();  // port 0: the others join the chosen port
        listeners.emplace_back(&pool_.loop(i), std::move(s));
      }
      bound_.push_back(target);
    } else {
      Socket s = Socket::listen_on(ep, options_.socket);
      bound_.push_back(ep.is_unix() ? ep : s.local_endpoint());
      listeners.emplace_back(&pool_.loop(0), std::move(s));
    }
  }
  for (auto& [loop, socket] : listeners) {
    auto acceptor = std::make_unique<Acceptor>(*this, *loop, std::move(socket));
    Acceptor* a = acceptor.get();
    acceptors_.push_back(std::move(acceptor));
    pool_.run_on_and_wait(*loop, [a] { a->start(); });
  }
  started_ = true;
}

std::string TcpServer::refused(Refusal reason) {
  (reason == Refusal::per_address ? rejected_per_ip_ : rejected_)
      .fetch_add(1, std::memory_order_relaxed);
  if (options_.on_refused) options_.on_refused(reason);
  return options_.refusal_line ? options_.refusal_line(reason) : std::string();
}

void TcpServer::release_slot() {
  // As in on_close: a waiter that sees 0 may destroy the server.
  std::lock_guard lock(idle_mutex_);
  if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) idle_cv_.notify_all();
}

bool TcpServer::take_slot() {
  if (!options_.max_connections) {
    active_.fetch_add(1, std::memory_order_acq_rel);
    return true;
  }
  // Check and take in one step: with a listener per loop several loops accept at once, and a
  // check before a separate increment would let each of them take the last slot. The count
  // never passes the cap, not even for a moment.
  size_t n = active_.load(std::memory_order_relaxed);
  do {
    if (n >= options_.max_connections) return false;
  } while (!active_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  return true;
}

void TcpServer::on_accepted(EventLoop& loop, Socket socket, const Endpoint& peer) {
  if (!take_slot()) {
    std::string line = refused(Refusal::max_connections);
    // Closing the socket tells the client at once; a stream's stage (TLS) has not run yet, so
    // only a plain connection can be told why.
    refuse_socket(std::move(socket), options_.stream.factory ? std::string_view() : line);
    return;
  }
  try {
    socket.apply_connection_options(options_.socket);
  } catch (const Error&) {
    release_slot();
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  accepted_.fetch_add(1, std::memory_order_relaxed);
  EventLoop& target = options_.listener_per_loop ? loop : pool_.next_loop();
  if (&target == &loop) {
    register_connection(loop, std::move(socket), peer);
  } else {
    target.post([this, &target, fd = socket.release(), peer] {
      register_connection(target, Socket(fd), peer);
    });
  }
}

void TcpServer::adopt(Socket socket) {
  socket.apply_connection_options(options_.socket);
  active_.fetch_add(1, std::memory_order_relaxed);
  accepted_.fetch_add(1, std::memory_order_relaxed);
  EventLoop& target = pool_.next_loop();
  target.post([this, &target, fd = socket.release()] {
    register_connection(target, Socket(fd), Endpoint());
  });
}

void TcpServer::register_connection(EventLoop& loop, Socket socket, const Endpoint& peer) {
  std::unique_ptr<Stream> stream = options_.stream.factory ? options_.stream.factory() : nullptr;
  auto connection = std::make_unique<TcpConnection>(
      loop, std::move(socket), wrapped_, options_.high_water_bytes, std::move(stream),
      options_.stream.open_timeout, options_.timeouts);
  TcpConnection* c = connection.get();
  ConnectionId id = loop.add_connection(std::move(connection));
  if (!id.valid()) {  // every slot of this loop is taken; the socket closes with the object
    release_slot();
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  c->start(id, peer);
}

void TcpServer::stop_accepting() {
  for (auto& acceptor : acceptors_) {
    Acceptor* a = acceptor.get();
    pool_.run_on_and_wait(a->loop(), [a] { a->stop(); });
  }
  acceptors_.clear();
  for (const Endpoint& ep : bound_)
    if (ep.is_unix()) ::unlink(ep.unix_path().c_str());
}

void TcpServer::close_all(bool graceful, std::string_view reason, std::string_view last_line) {
  pool_.run_on_all_and_wait([&](EventLoop& loop) {
    loop.for_each_connection([&](TcpConnection& c) {
      if (&c.callbacks() != &wrapped_) return;
      if (graceful) {
        if (!last_line.empty()) c.send(last_line);
        c.close_gracefully(reason);
      } else {
        c.force_close(reason);
      }
    });
  });
}

bool TcpServer::wait_for_no_connections(std::chrono::milliseconds timeout) {
  std::unique_lock lock(idle_mutex_);
  return idle_cv_.wait_for(lock, timeout,
                           [this] { return active_.load(std::memory_order_acquire) == 0; });
}

size_t TcpServer::drain(std::chrono::milliseconds timeout, const DrainPolicy& policy) {
  stop_accepting();
  if (!pool_.running()) return 0;
  if (!policy.wait_for_clients) close_all(true, "server stopping", policy.last_line);
  if (wait_for_no_connections(timeout)) return 0;
  size_t left = active_.load();
  close_all(false, "drain timeout");
  wait_for_no_connections(std::chrono::seconds(5));
  return left;
}

void TcpServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_accepting();
  if (!pool_.running()) {
    // Loops are not running: connections die with their loop, without callbacks.
    pool_.run_on_all_and_wait([&](EventLoop& loop) {
      loop.for_each_connection([&](TcpConnection& c) {
        if (&c.callbacks() == &wrapped_) c.close_silently();
      });
    });
    return;
  }
  close_all(false, "server stopped");
  // Every connection of this server calls back into it (wrapped_) until its on_close has run, so
  // returning earlier would let the server be freed under it. A slow on_close or a busy loop
  // delays stop(); it is said on stderr, and anything registered meanwhile is closed too.
  while (!wait_for_no_connections(std::chrono::seconds(5))) {
    std::fprintf(stderr, "keel: server stop: waiting for %zu connection(s) to finish closing\n",
                 static_cast<size_t>(active_.load()));
    close_all(false, "server stopped");
  }
}

ServerTraffic TcpServer::traffic() {
  std::mutex mutex;
  ServerTraffic total;
  pool_.run_on_all_and_wait([&](EventLoop& loop) {
    ServerTraffic here;
    if (loop.index() < closed_traffic_.size()) here = closed_traffic_[loop.index()];
    here.queued_bytes = 0;
    loop.for_each_connection([&](TcpConnection& c) {
      if (c.state() == ConnectionState::closed || !owns(c)) return;
      here.bytes_in += c.bytes_received();
      here.bytes_out += c.bytes_sent();
      here.reads += c.reads();
      here.sends += c.sends();
      here.queued_bytes += c.queued_output_bytes();
    });
    std::lock_guard lock(mutex);
    total.bytes_in += here.bytes_in;
    total.bytes_out += here.bytes_out;
    total.reads += here.reads;
    total.sends += here.sends;
    total.queued_bytes += here.queued_bytes;
  });
  return total;
}

ServerStats TcpServer::stats() const noexcept {
  ServerStats s;
  s.accepted = accepted_.load(std::memory_order_relaxed);
  s.rejected_over_cap = rejected_.load(std::memory_order_relaxed);
  s.rejected_per_ip = rejected_per_ip_.load(std::memory_order_relaxed);
  s.accept_errors = accept_errors_.load(std::memory_order_relaxed);
  s.fd_exhaustion = fd_exhaustion_.load(std::memory_order_relaxed);
  s.open_failures = open_failures_.load(std::memory_order_relaxed);
  s.active = active_.load(std::memory_order_relaxed);
  for (size_t k = 0; k < s.closed.size(); ++k)
    s.closed[k] = closed_[k].load(std::memory_order_relaxed);
  return s;
}

}  // namespace keel
