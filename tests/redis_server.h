// RedisServer: a real redis-server (Debian's) for the cluster tests, on a Unix socket in a
// fresh directory (no TCP port: `--port 0`), with no persistence, so a restart forgets
// everything as a crashed Redis without a disk would. Stopped (SIGKILL) by the destructor.
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <memory>
#include <string>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test {

class RedisServer {
 public:
  // password: started with --requirepass, and the helper's own commands AUTH first.
  explicit RedisServer(std::string password = {}) : password_(std::move(password)) { start(); }
  ~RedisServer() { kill(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::string socket_path() const { return dir_.path() + "/redis.sock"; }
  std::string url() const { return "unix:" + socket_path(); }
  bool running() const { return process_ != nullptr; }

  // Starts (again) and waits until it answers PING. False when it did not.
  bool start() {
    std::vector<std::string> args{"/usr/bin/redis-server",
                                  "--port",
                                  "0",
                                  "--unixsocket",
                                  socket_path(),
                                  "--unixsocketperm",
                                  "700",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--dir",
                                  dir_.path(),
                                  "--logfile",
                                  ""};
    if (!password_.empty()) args.insert(args.end(), {"--requirepass", password_});
    process_ = std::make_unique<Subprocess>(args);
    return eventually([&] { return ping(); }, std::chrono::seconds(10));
  }
  // SIGKILL: the clients' connections break as in a crash.
  void kill() {
    if (!process_) return;
    process_->signal(SIGKILL);
    process_->wait(std::chrono::seconds(10));
    process_.reset();
    ::unlink(socket_path().c_str());
  }
  bool restart() {
    kill();
    return start();
  }
  // SIGSTOP / SIGCONT: connections stay open and nothing is answered (a stalled server).
  void pause() { process_->signal(SIGSTOP); }
  void resume() { process_->signal(SIGCONT); }

  // One command as a plain RESP request: the reply's first line ("+OK", ":3", "$-1"), or for a
  // bulk string its value (blocking, bounded).
  std::string command_line(const std::vector<std::string>& args) const {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = socket_path();
    if (path.size() >= sizeof addr.sun_path) return {};
    path.copy(addr.sun_path, path.size());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
    auto request = [](const std::vector<std::string>& words) {
      std::string req = "*" + std::to_string(words.size()) + "\r\n";
      for (const auto& w : words) req += "$" + std::to_string(w.size()) + "\r\n" + w + "\r\n";
      return req;
    };
    std::string req = request(args);
    if (!password_.empty()) req = request({"AUTH", password_}) + req;
    if (!write_all(fd.get(), req)) return {};
    auto read_line = [&] {
      std::string line;
      char c;
      while (wait_ready(fd.get(), POLLIN, std::chrono::seconds(2)) &&
             ::read(fd.get(), &c, 1) == 1) {
        if (c == '\n') break;
        if (c != '\r') line += c;
      }
      return line;
    };
    if (!password_.empty() && read_line() != "+OK") return {};
    std::string line = read_line();
    if (line.starts_with('$') && line != "$-1") return read_line();
    return line;
  }
  bool ping() const { return command_line({"PING"}) == "+PONG"; }

 private:
  TempDir dir_;
  std::string password_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace keel::test
