#include "keel/net/tcp_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "keel/error.h"

namespace keel {

TcpClient::TcpClient(EventLoop& loop, Endpoint server, ClientOptions options,
                     ConnectionCallbacks callbacks, ConnectFailed on_connect_failed)
    : loop_(loop),
      server_(std::move(server)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      on_connect_failed_(std::move(on_connect_failed)),
      backoff_(options_.initial_backoff) {
  if (server_.is_udp())
    throw Error("connect " + server_.to_string() +
                ": a UDP endpoint carries datagrams, not a stream (use keel::UdpSocket)");
  wrapped_ = callbacks_;
  wrapped_.on_open = [this](TcpConnection& c) {
    attempts_ = 0;  // connected (and through the stream's handshake): the next failure starts over
    backoff_ = options_.initial_backoff;
    if (callbacks_.on_open) callbacks_.on_open(c);
  };
  wrapped_.on_close = [this](TcpConnection& c, const CloseReason& reason) {
    connection_ = ConnectionId();
    if (c.was_opened()) {
      if (callbacks_.on_close) callbacks_.on_close(c, reason);
    } else {
      fail(reason);  // the stream's pre-open stage (TLS handshake) failed
    }
  };
}

TcpClient::~TcpClient() {
  stop();
}

void TcpClient::connect() {
  loop_.assert_in_loop();
  stopped_ = false;
  attempts_ = 0;
  backoff_ = options_.initial_backoff;
  cancel_pending();
  // Never inside the caller's frame: the first attempt runs at the end of this turn.
  retry_timer_ = loop_.run_after(std::chrono::milliseconds(0), [this] {
    retry_timer_ = 0;
    attempt();
  });
}

void TcpClient::cancel_pending() {
  if (timeout_timer_) loop_.cancel_timer(std::exchange(timeout_timer_, 0));
  if (retry_timer_) loop_.cancel_timer(std::exchange(retry_timer_, 0));
  if (pending_.valid()) {
    loop_.unwatch(pending_.fd());
    pending_.reset();
  }
}

void TcpClient::stop() {
  loop_.assert_in_loop();
  stopped_ = true;
  cancel_pending();
  if (TcpConnection* c = loop_.find(connection_)) c->close_silently();
  connection_ = ConnectionId();
}

void TcpClient::attempt() {
  if (stopped_) return;
  try {
    pending_ = Socket::stream_for(server_);
    pending_.apply_connection_options(options_.socket);
    if (options_.bind_to) {
      int on = 1;
      ::setsockopt(pending_.fd(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
      if (::bind(pending_.fd(), options_.bind_to->sockaddr_ptr(),
                 options_.bind_to->sockaddr_len()) != 0)
        throw_system_error("bind", options_.bind_to->to_string(), errno);
    }
  } catch (const Error& e) {
    pending_.reset();
    fail({CloseReason::Kind::error, e.errno_value(), e.what()});
    return;
  }
  int rc = ::connect(pending_.fd(), server_.sockaddr_ptr(), server_.sockaddr_len());
  if (rc != 0 && errno != EINPROGRESS && errno != EINTR) {
    int err = errno;
    pending_.reset();
    // A full Unix listen queue answers EAGAIN: worth a retry like a refusal.
    fail({err == ECONNRESET ? CloseReason::Kind::reset : CloseReason::Kind::error, err,
          "connect " + server_.to_string()});
    return;
  }
  // Established or in progress: either way EPOLLOUT reports it.
  loop_.watch(pending_.fd(), EPOLLOUT, this);
  timeout_timer_ = loop_.run_after(options_.connect_timeout, [this] {
    timeout_timer_ = 0;
    loop_.unwatch(pending_.fd());
    pending_.reset();
    fail({CloseReason::Kind::timeout, ETIMEDOUT,
          "connect " + server_.to_string() + " took over " +
              std::to_string(options_.connect_timeout.count()) + " ms"});
  });
}

void TcpClient::handle_events(uint32_t) {
  loop_.unwatch(pending_.fd());
  if (timeout_timer_) loop_.cancel_timer(std::exchange(timeout_timer_, 0));
  int err = pending_.take_error();
  if (err != 0) {
    pending_.reset();
    fail({CloseReason::Kind::error, err, "connect " + server_.to_string()});
    return;
  }
  std::unique_ptr<Stream> stream = options_.stream.factory ? options_.stream.factory() : nullptr;
  auto connection = std::make_unique<TcpConnection>(loop_, std::move(pending_), wrapped_,
                                                    options_.high_water_bytes, std::move(stream),
                                                    options_.stream.open_timeout);
  TcpConnection* c = connection.get();
  ConnectionId id = loop_.add_connection(std::move(connection));
  if (!id.valid()) {
    fail({CloseReason::Kind::error, EMFILE, "no free connection slot"});
    return;
  }
  connection_ = id;
  c->start(id);
}

void TcpClient::fail(CloseReason reason) {
  ++attempts_;
  bool will_retry = !stopped_ && options_.retry &&
                    (options_.max_attempts == 0 || attempts_ < options_.max_attempts);
  if (will_retry) {
    retry_timer_ = loop_.run_after(backoff_, [this] {
      retry_timer_ = 0;
      attempt();
    });
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  }
  if (on_connect_failed_) on_connect_failed_(reason, attempts_, will_retry);
}

}  // namespace keel
