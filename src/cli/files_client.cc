#include "cli/files_client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>

#include "cli/commands.h"
#include "keel/error.h"

namespace keel::cli {

using files::Reply;
using files::Request;

FilesClient::FilesClient(const FilesClientOptions& options)
    : endpoint_(Endpoint::parse(options.target)),
      io_timeout_ms_(static_cast<int>(std::max(0.001, options.io_timeout_s) * 1000)) {
  if (endpoint_.is_udp()) throw TransferFailed(kExitUsage, options.target + ": keel files is TCP");
  socket_ = Socket::stream_for(endpoint_);
  if (int err = connect_with_timeout(socket_, endpoint_, options.connect_timeout_ms)) {
    if (err == ETIMEDOUT)
      throw TransferFailed(kExitTimeout, "connect " + endpoint_.to_string() + ": timed out after " +
                                             std::to_string(options.connect_timeout_ms) + " ms");
    throw TransferFailed(kExitFailure, "connect " + endpoint_.to_string() + ": " + errno_text(err));
  }
  if (!endpoint_.is_unix()) socket_.set_no_delay(true);
  if (auto context = client_tls_context(options.tls, options.target, endpoint_)) {
    tls_ = context->make_stream();
    std::string failed = tls_handshake(*tls_, socket_, endpoint_, options.connect_timeout_ms);
    if (!failed.empty()) throw TransferFailed(kExitFailure, endpoint_.to_string() + ": " + failed);
  }
}

void FilesClient::broken(int err, const std::string& doing) {
  if (err == ETIMEDOUT)
    throw TransferFailed(kExitTimeout, endpoint_.to_string() + ": no progress for " +
                                           std::to_string(io_timeout_ms_ / 1000.0) + " s while " +
                                           doing);
  std::string why = err == EPROTO && tls_ ? tls_->error_detail() : errno_text(err);
  throw TransferFailed(kExitBroken, endpoint_.to_string() + ": " + doing + ": " + why);
}

void FilesClient::wait_for(short events) {
  pollfd p{socket_.fd(), events, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, io_timeout_ms_);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) broken(ETIMEDOUT, events == POLLIN ? "waiting for the server" : "sending");
  if (rc < 0) broken(errno, "poll");
}

void FilesClient::write_raw(const char* data, size_t n) {
  while (n > 0) {
    ssize_t w =
        tls_ ? tls_->write(socket_.fd(), data, n) : ::send(socket_.fd(), data, n, MSG_NOSIGNAL);
    if (w > 0) {
      data += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      wait_for(POLLOUT);
      continue;
    }
    broken(w < 0 ? errno : EPIPE, "sending");
  }
}

size_t FilesClient::read_raw(char* data, size_t n) {
  if (input_at_ < input_.size()) {  // bytes read ahead with the last reply
    size_t k = std::min(n, input_.size() - input_at_);
    std::copy_n(input_.data() + input_at_, k, data);
    input_at_ += k;
    return k;
  }
  for (;;) {
    ssize_t r = tls_ ? tls_->read(socket_.fd(), data, n) : ::recv(socket_.fd(), data, n, 0);
    if (r > 0) return static_cast<size_t>(r);
    if (r == 0) broken(ECONNRESET, "the server closed the connection mid-transfer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      wait_for(POLLIN);
      continue;
    }
    broken(errno, "receiving");
  }
}

void FilesClient::finish() noexcept {
  if (tls_)
    tls_->shutdown_write(socket_.fd());
  else
    ::shutdown(socket_.fd(), SHUT_WR);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(io_timeout_ms_);
  char sink[16 * 1024];
  for (;;) {  // whatever the server still sends is dropped; its end, or an error, is the end
    ssize_t r = tls_ ? tls_->read(socket_.fd(), sink, sizeof sink)
                     : ::recv(socket_.fd(), sink, sizeof sink, 0);
    if (r > 0 || (r < 0 && errno == EINTR)) continue;
    if (r == 0 || errno != EAGAIN) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{socket_.fd(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) return;
  }
}

void FilesClient::request(const Request& r) {
  std::string frame;
  files::append_request(frame, r);
  write_raw(frame.data(), frame.size());
}

Reply FilesClient::reply() {
  char chunk[16 * 1024];
  for (;;) {
    std::string_view pending(input_.data() + input_at_, input_.size() - input_at_);
    files::Frame frame;
    std::string why;
    files::Parse p = files::peek_frame(pending, files::kMaxReplyPayload, frame, why);
    if (p == files::Parse::malformed)
      throw TransferFailed(kExitBroken, endpoint_.to_string() + ": bad reply: " + why);
    if (p == files::Parse::ok) {
      Reply reply;
      if (!files::parse_reply(frame, reply, why))
        throw TransferFailed(kExitBroken, endpoint_.to_string() + ": bad reply: " + why);
      input_at_ += frame.bytes;
      if (input_at_ == input_.size()) {
        input_.clear();
        input_at_ = 0;
      }
      return reply;
    }
    // Only the bytes not yet parsed stay; a reply frame is at most 64 KiB.
    input_.erase(0, input_at_);
    input_at_ = 0;
    ssize_t r;
    for (;;) {
      r = tls_ ? tls_->read(socket_.fd(), chunk, sizeof chunk)
               : ::recv(socket_.fd(), chunk, sizeof chunk, 0);
      if (r > 0) break;
      if (r == 0)
        throw TransferFailed(kExitBroken,
                             endpoint_.to_string() + ": the server closed the connection");
      if (errno == EINTR) continue;
      if (errno != EAGAIN) broken(errno, "waiting for a reply");
      wait_for(POLLIN);
    }
    input_.append(chunk, static_cast<size_t>(r));
  }
}

void fail_with(const Reply& error, const std::string& what) {
  throw TransferFailed(kExitFailure,
                       what + ": " + files::to_string(error.code) + ": " + error.message);
}

}  // namespace keel::cli
