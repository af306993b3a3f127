// keel ctl's admin connection and requests (cli/ctl_client.h), with poll(2) timeouts like
// keel cat.
#include "cli/ctl_client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>

#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "cli/commands.h"
#include "cli/ctl.h"
#include "keel/error.h"

namespace keel::cli {
namespace {

using Json = nlohmann::ordered_json;
using SteadyClock = std::chrono::steady_clock;

// A reply longer than this is not from keel.
constexpr size_t kMaxReplyBytes = 256u << 20;

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// Milliseconds left until deadline, at least 0; -1 (no limit) for time_point::max().
int left_ms(SteadyClock::time_point deadline) {
  if (deadline == SteadyClock::time_point::max()) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
}

// 0, ETIMEDOUT, ECANCELED (cancel_fd readable), or the errno of a failed poll.
int wait_for(int fd, short events, SteadyClock::time_point deadline, int cancel_fd = -1) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {cancel_fd, POLLIN, 0}};
    int rc = ::poll(p, cancel_fd >= 0 ? 2 : 1, left_ms(deadline));
    if (rc > 0 && cancel_fd >= 0 && p[1].revents) return ECANCELED;
    if (rc > 0) return 0;
    if (rc == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

int send_all(int fd, std::string_view data, SteadyClock::time_point deadline) {
  while (!data.empty()) {
    if (int err = wait_for(fd, POLLOUT, deadline)) return err;
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return errno;
    if (n > 0) data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// Reads up to the first "\n" (not included), keeping what follows in pending. 0, ETIMEDOUT,
// ECANCELED, EPIPE for a close before the end of the line, EMSGSIZE, or a socket errno.
int read_line(int fd, std::string& pending, std::string& line, SteadyClock::time_point deadline,
              int cancel_fd) {
  ReplyLine reply;
  if (!pending.empty()) {
    std::string held = std::move(pending);
    pending.clear();
    if (reply.append(held)) {
      line = reply.line();
      pending = held.substr(reply.bytes_scanned());
      return 0;
    }
  }
  char buf[65536];
  for (;;) {
    if (reply.size() > kMaxReplyBytes) return EMSGSIZE;
    if (int err = wait_for(fd, POLLIN, deadline, cancel_fd)) return err;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return EPIPE;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return errno;
    if (n <= 0) continue;
    std::string_view got(buf, static_cast<size_t>(n));
    size_t before = reply.bytes_scanned();
    if (reply.append(got)) {
      line = reply.line();
      pending.assign(got.substr(reply.bytes_scanned() - before));
      return 0;
    }
  }
}

CtlResult failure(int code, std::string error) {
  CtlResult r;
  r.code = code;
  r.error = std::move(error);
  return r;
}

}  // namespace

std::optional<Json> build_request(const CtlCommand& c, std::string* problem) {
  Json req{{"cmd", c.cmd}};
  if (c.cmd == "send") {
    req["to"] = c.target;
    req["text"] = join(c.words);
  } else if (c.cmd == "broadcast") {
    req["text"] = join(c.words);
    if (!c.room.empty()) req["room"] = c.room;
    if (!c.service.empty()) req["service"] = c.service;
  } else if (c.cmd == "kick") {
    if (auto id = admin::parse_client_id(c.target)) {
      req["id"] = *id;
    } else if (admin::parse_node_client_id(c.target)) {
      req["id"] = c.target;  // NODE/ID: a client of another cluster node
    } else {
      *problem =
          "kick: the client id is digits, or NODE/ID on a cluster (see keel ctl list), "
          "not '" +
          c.target + "'";
      return std::nullopt;
    }
    if (!c.words.empty()) req["reason"] = join(c.words);
  } else if ((c.cmd == "list" || c.cmd == "stats") && c.cluster) {
    req["cluster"] = true;
  } else if (c.cmd == "watch") {
    req["to"] = c.target;
  }
  return req;
}

int print_result(const std::string& cmd, const CtlResult& result, bool json, std::FILE* out,
                 std::FILE* err) {
  if (json && !result.line.empty()) std::fprintf(out, "%s\n", result.line.c_str());
  if (result.code != kExitOk) {
    std::fprintf(err, "keel ctl: %s\n", result.error.c_str());
  } else if (!json) {
    std::fputs(render_reply(cmd, result.reply).c_str(), out);
  }
  std::fflush(out);
  return result.code;
}

std::string admin_endpoint_text(const CtlOptions& options) {
  return options.admin.empty() ? default_admin_endpoint() : options.admin;
}

AdminClient::AdminClient(CtlOptions options) : options_(std::move(options)) {}

void AdminClient::disconnect() noexcept {
  socket_.reset();
  pending_.clear();
}

bool AdminClient::add_token(Json& req, std::string& error) {
  if (options_.token_file.empty()) return true;
  if (!token_) {
    // The first line, as keel reads --admin-token-file.
    std::ifstream in(options_.token_file);
    if (!in) {
      error = "token file " + options_.token_file + ": " + errno_text(errno);
      return false;
    }
    std::string token;
    if (!std::getline(in, token) || token.empty()) {
      error = "token file " + options_.token_file + ": empty";
      return false;
    }
    token_ = token;
  }
  req["token"] = *token_;
  return true;
}

int AdminClient::connect(SteadyClock::time_point deadline, std::string& error) {
  if (socket_.valid()) return kExitOk;
  try {
    endpoint_ = Endpoint::parse(admin_endpoint_text(options_));
  } catch (const Error& e) {
    error = e.what();
    return kExitFailure;
  }
  Socket s = Socket::stream_for(endpoint_);
  int err = 0;
  if (::connect(s.fd(), endpoint_.sockaddr_ptr(), endpoint_.sockaddr_len()) != 0) {
    err = errno;
    if (err == EINPROGRESS || err == EINTR || err == EAGAIN) {
      err = wait_for(s.fd(), POLLOUT, deadline);
      if (!err) err = s.take_error();
    }
  }
  if (err) {
    error = "connect " + endpoint_.to_string() + ": " + errno_text(err) +
            " (is keel running with --admin?)";
    return err == ETIMEDOUT ? kExitTimeout : kExitFailure;
  }
  socket_ = std::move(s);
  pending_.clear();
  return kExitOk;
}

CtlResult AdminClient::request(Json req) {
  std::string error;
  if (!add_token(req, error)) return failure(kExitFailure, error);
  auto deadline = SteadyClock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000));
  if (int code = connect(deadline, error)) return failure(code, error);
  std::string line;
  int err = send_all(socket_.fd(), req.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n",
                     deadline);
  if (!err) err = read_line(socket_.fd(), pending_, line, deadline, -1);
  const std::string where = endpoint_.to_string();
  if (err) disconnect();  // a late reply must not answer the next request
  if (err == ETIMEDOUT) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", options_.timeout_s);
    return failure(kExitTimeout, where + ": no reply within " + secs + " s");
  }
  if (err == EPIPE) return failure(kExitBroken, where + ": closed without a reply");
  if (err) return failure(kExitBroken, where + ": " + errno_text(err));
  CtlResult r;
  r.line = std::move(line);
  r.reply = Json::parse(r.line, nullptr, false);
  if (r.reply.is_discarded() || !r.reply.is_object()) {
    disconnect();
    r.code = kExitFailure;
    r.error = where + ": reply is not a JSON object";
    return r;
  }
  auto ok = r.reply.find("ok");
  if (ok == r.reply.end() || *ok != true) {
    auto e = r.reply.find("error");
    r.code = kExitFailure;
    r.error = e != r.reply.end() && e->is_string() ? e->get<std::string>() : "request failed";
  }
  return r;
}

CtlResult AdminClient::open_stream(Json req) {
  disconnect();
  return request(std::move(req));
}

int AdminClient::next_line(std::string& line, int cancel_fd) {
  if (!socket_.valid()) return EPIPE;
  return read_line(socket_.fd(), pending_, line, SteadyClock::time_point::max(), cancel_fd);
}

}  // namespace keel::cli
