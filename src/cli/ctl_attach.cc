// keel ctl attach (cli/ctl_attach.h): one poll(2) loop over the operator's input and the admin
// connection; requests are queued and written as the socket takes them, so a server that is
// busy writing events to us never deadlocks with us writing requests to it.
#include "cli/ctl_attach.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "admin/admin_server.h"
#include "admin/base64.h"
#include "cli/attach_view.h"
#include "cli/commands.h"
#include "keel/error.h"
#include "services/chat/framing.h"

namespace keel::cli {
namespace {

using Json = nlohmann::ordered_json;
using SteadyClock = std::chrono::steady_clock;

// An event line longer than this is not from keel (events carry at most a read's worth).
constexpr size_t kMaxLineBytes = 64u << 20;
// A line of input longer than this is not sent (its request would pass the admin endpoint's
// 64 KiB limit once base64-encoded).
constexpr size_t kMaxInputLine = 45 * 1024;

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the reader is gone: nothing more to show
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void tell(int fd, const std::string& text) {
  write_all(fd, "keel: " + text + "\n");
}

int wait_for(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (rc > 0) return 0;
    if (rc == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

class Session {
 public:
  Session(const CtlConnection& conn, int in_fd, int out_fd, int msg_fd)
      : conn_(conn), in_(in_fd), out_(out_fd), msg_(msg_fd) {}

  int run(const std::string& target, const std::string& operator_name);

 private:
  void request(Json req) {
    if (conn_.token) req["token"] = *conn_.token;
    outbox_ += req.dump(-1, ' ', false, Json::error_handler_t::replace);
    outbox_ += '\n';
  }
  // One line the operator typed: to the client, or "~." to detach.
  void input_line(std::string line);
  void detach() {
    if (detaching_) return;
    detaching_ = true;
    request(Json{{"cmd", "detach"}});
  }
  // One line from the admin endpoint. Returns an exit status once the session is over.
  std::optional<int> server_line(const std::string& line);
  std::optional<int> read_server();
  void read_input();

  const CtlConnection& conn_;
  int in_, out_, msg_;
  std::optional<AttachView> view_;
  std::string framing_;
  std::string client_;     // "17", or "n2/17" for a client of another cluster node
  std::string inbox_;      // bytes from the admin endpoint, up to a line
  std::string outbox_;     // requests not yet written
  std::string typed_;      // input up to a line
  bool skipping_ = false;  // dropping the rest of a line that was too long
  bool input_done_ = false;
  bool detaching_ = false;
};

void Session::input_line(std::string line) {
  if (line == "~.") return detach();
  if (framing_ != "binary" && !line.empty() && line.back() == '\r') line.pop_back();
  if (framing_ == "binary") line += '\n';  // raw bytes: the line as it was typed
  Json req{{"cmd", "say"}};
  uint32_t cp = 0;
  bool utf8 = true;
  for (size_t i = 0; i < line.size() && utf8;) {
    if (static_cast<unsigned char>(line[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = chat::utf8_sequence(std::string_view(line).substr(i), cp);
    utf8 = len > 0;
    i += len;
  }
  if (utf8 && framing_ != "binary")
    req["text"] = line;
  else
    req["base64"] = admin::base64_encode(line);
  request(std::move(req));
}

void Session::read_input() {
  char buf[16384];
  ssize_t n = ::read(in_, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {  // end of input (Ctrl-D) detaches; a last unterminated line goes first
    input_done_ = true;
    if (!typed_.empty() && !skipping_) input_line(std::move(typed_));
    typed_.clear();
    return detach();
  }
  std::string_view data(buf, static_cast<size_t>(n));
  while (!data.empty() && !detaching_) {
    size_t nl = data.find('\n');
    std::string_view part = data.substr(0, nl);
    if (!skipping_) typed_.append(part);
    if (typed_.size() > kMaxInputLine) {
      if (!skipping_)
        tell(msg_, "line too long (max " + std::to_string(kMaxInputLine) + " bytes): not sent");
      typed_.clear();
      skipping_ = true;
    }
    if (nl == std::string_view::npos) break;
    data.remove_prefix(nl + 1);
    if (!skipping_) input_line(std::move(typed_));
    typed_.clear();
    skipping_ = false;
  }
}

std::optional<int> Session::server_line(const std::string& line) {
  Json msg = Json::parse(line, nullptr, false);
  if (!msg.is_object()) {
    tell(msg_, "the admin endpoint sent something that is not a JSON object");
    return kExitBroken;
  }
  const std::string event = msg.value("event", std::string());
  if (event == "data") {
    std::optional<std::string> bytes = admin::base64_decode(msg.value("data", std::string()));
    if (!bytes) {
      tell(msg_, "the admin endpoint sent bad base64");
      return kExitBroken;
    }
    write_all(out_, view_->feed(*bytes));
    return std::nullopt;
  }
  if (event == "eof") {
    write_all(out_, view_->finish());
    tell(msg_, "client " + client_ + " finished sending");
    return std::nullopt;
  }
  if (event == "closed") {
    write_all(out_, view_->finish());
    tell(msg_, "client " + client_ + " left: " +
                   escape_for_terminal(msg.value("reason", std::string("closed")), false));
    return kExitOk;
  }
  if (!event.empty()) return std::nullopt;  // an event of a later version
  if (msg.value("ok", false) != true) {
    tell(msg_, escape_for_terminal(msg.value("error", std::string("request failed")), false));
    return std::nullopt;  // e.g. a say refused: the session goes on
  }
  if (msg.contains("detached")) {
    write_all(out_, view_->finish());
    tell(msg_, "detached; client " + client_ + " is parked again");
    return kExitOk;
  }
  return std::nullopt;  // a say's reply
}

std::optional<int> Session::read_server() {
  char buf[65536];
  ssize_t n = ::recv(conn_.socket.fd(), buf, sizeof buf, 0);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return std::nullopt;
  if (n <= 0) {
    if (view_) write_all(out_, view_->finish());
    tell(msg_, "the admin endpoint closed the connection" +
                   (n < 0 ? ": " + errno_text(errno) : std::string()));
    return kExitBroken;
  }
  size_t scanned = inbox_.size();
  inbox_.append(buf, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t nl; (nl = inbox_.find('\n', scanned)) != std::string::npos; scanned = start) {
    std::string line = inbox_.substr(start, nl - start);
    start = nl + 1;
    if (auto done = server_line(line)) return done;
  }
  inbox_.erase(0, start);
  if (inbox_.size() > kMaxLineBytes) {
    tell(msg_, "the admin endpoint sent a line over 64 MiB");
    return kExitBroken;
  }
  return std::nullopt;
}

int Session::run(const std::string& target, const std::string& operator_name) {
  const int fd = conn_.socket.fd();
  Json req{{"cmd", "attach"}, {"to", target}};
  if (!operator_name.empty()) req["operator"] = operator_name;
  request(std::move(req));
  // The attach reply, within ctl's --timeout (the session has no timeout after it).
  auto deadline = SteadyClock::now() + conn_.reply_timeout;
  std::string reply;
  while (true) {
    int err =
        wait_for(fd, static_cast<short>(outbox_.empty() ? POLLIN : POLLIN | POLLOUT), deadline);
    if (err) {
      write_all(msg_, "keel ctl: " + conn_.endpoint.to_string() + ": " + errno_text(err) + "\n");
      return err == ETIMEDOUT ? kExitTimeout : kExitBroken;
    }
    if (!outbox_.empty()) {
      ssize_t n = ::send(fd, outbox_.data(), outbox_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) outbox_.erase(0, static_cast<size_t>(n));
    }
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      write_all(msg_, "keel ctl: " + conn_.endpoint.to_string() + ": closed without a reply\n");
      return kExitBroken;
    }
    if (n > 0) inbox_.append(buf, static_cast<size_t>(n));
    size_t nl = inbox_.find('\n');
    if (nl == std::string::npos) continue;
    reply = inbox_.substr(0, nl);
    inbox_.erase(0, nl + 1);
    break;
  }
  Json r = Json::parse(reply, nullptr, false);
  if (!r.is_object() || r.value("ok", false) != true) {
    std::string error = r.is_object() ? r.value("error", std::string("attach failed"))
                                      : std::string("reply is not a JSON object");
    write_all(msg_, "keel ctl: " + escape_for_terminal(error, false) + "\n");
    return kExitFailure;
  }
  client_ = std::to_string(r.value("attached", uint64_t{0}));
  if (r.contains("node") && r["node"].is_string())
    client_ = escape_for_terminal(r["node"].get<std::string>(), false) + "/" + client_;
  framing_ = r.value("framing", std::string("lines"));
  view_.emplace(framing_ == "length"   ? AttachView::Framing::length
                : framing_ == "binary" ? AttachView::Framing::binary
                                       : AttachView::Framing::lines);
  tell(msg_, "attached to client " + client_ + " (" +
                 escape_for_terminal(r.value("service", std::string()), false) + ", " +
                 escape_for_terminal(r.value("peer", std::string()), false) + ", " + framing_ +
                 "); " + std::to_string(r.value("held", uint64_t{0})) +
                 " bytes were held. Lines you type go to it; ~. or Ctrl-D detaches.");
  // Events that came with the reply.
  std::string early = std::move(inbox_);
  inbox_.clear();
  size_t start = 0;
  for (size_t nl; (nl = early.find('\n', start)) != std::string::npos; start = nl + 1)
    if (auto done = server_line(early.substr(start, nl - start))) return *done;
  inbox_ = early.substr(start);

  for (;;) {
    pollfd p[2] = {{fd, static_cast<short>(POLLIN | (outbox_.empty() ? 0 : POLLOUT)), 0},
                   {input_done_ || detaching_ ? -1 : in_, POLLIN, 0}};
    int rc = ::poll(p, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      tell(msg_, "poll: " + errno_text(errno));
      return kExitBroken;
    }
    if (p[0].revents & POLLOUT) {
      ssize_t n = ::send(fd, outbox_.data(), outbox_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) outbox_.erase(0, static_cast<size_t>(n));
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
      if (auto done = read_server()) return *done;
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) read_input();
  }
}

}  // namespace

std::optional<CtlConnection> connect_ctl(const std::string& admin, const std::string& token_file,
                                         double timeout_s, std::string* error) {
  CtlConnection conn;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::string token;
    if (!in) {
      *error = "token file " + token_file + ": " + errno_text(errno);
      return std::nullopt;
    }
    if (!std::getline(in, token) || token.empty()) {
      *error = "token file " + token_file + ": empty";
      return std::nullopt;
    }
    conn.token = token;
  }
  try {
    conn.endpoint = Endpoint::parse(admin.empty() ? default_admin_endpoint() : admin);
  } catch (const Error& e) {
    *error = e.what();
    return std::nullopt;
  }
  conn.reply_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  auto deadline = SteadyClock::now() + conn.reply_timeout;
  conn.socket = Socket::stream_for(conn.endpoint);
  int err = 0;
  if (::connect(conn.socket.fd(), conn.endpoint.sockaddr_ptr(), conn.endpoint.sockaddr_len()) !=
      0) {
    err = errno;
    if (err == EINPROGRESS || err == EINTR || err == EAGAIN) {
      err = wait_for(conn.socket.fd(), POLLOUT, deadline);
      if (!err) err = conn.socket.take_error();
    }
  }
  if (err) {
    *error = "connect " + conn.endpoint.to_string() + ": " + errno_text(err) +
             " (is keel running with --admin?)";
    return std::nullopt;
  }
  return conn;
}

int run_attach(const CtlConnection& conn, const std::string& target, int in_fd, int out_fd,
               int msg_fd, const std::string& operator_name) {
  std::string name = operator_name;
  if (name.empty())
    if (const char* user = std::getenv("USER")) name = user;
  // A name the endpoint would refuse is not worth failing the session for.
  if (name.size() > 64 || name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                                                 "TUVWXYZ0123456789_-.@") != std::string::npos)
    name.clear();
  Session session(conn, in_fd, out_fd, msg_fd);
  return session.run(target, name);
}

}  // namespace keel::cli

namespace keel::cli {

void add_attach_subcommand(CLI::App& ctl, std::function<void()> chosen,
                           std::function<int()>& action, const std::string& admin,
                           const std::string& token_file, const double& timeout_s) {
  struct Args {
    std::string target;
    std::string name;
  };
  auto args = std::make_shared<Args>();
  CLI::App* attach = ctl.add_subcommand(
      "attach",
      "Talk with one hub client: print what it sent while parked, then live; send each line "
      "typed; ~. or Ctrl-D detaches (exit 0, also when the client leaves; 1 refused; 3 the "
      "admin connection broke; 4 no reply to the attach within --timeout)");
  attach->add_option("client", args->target, "Client id (from list) or address")->required();
  attach->add_option("--operator", args->name,
                     "Your name as other operators see it (who holds the client); default $USER");
  attach->callback([&action, chosen, args, &admin, &token_file, &timeout_s] {
    chosen();
    action = [args, &admin, &token_file, &timeout_s] {
      std::string error;
      std::optional<CtlConnection> conn = connect_ctl(admin, token_file, timeout_s, &error);
      if (!conn) {
        std::fprintf(stderr, "keel ctl: %s\n", error.c_str());
        return kExitFailure;
      }
      return run_attach(*conn, args->target, 0, 1, 2, args->name);
    };
  });
}

}  // namespace keel::cli
