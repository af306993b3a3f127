// Subprocess: runs the built keel binary as a user would, with pipes on stdin, stdout and
// stderr collected by background threads (so a chatty child can never block on a full pipe).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace keel::test {

class Subprocess {
 public:
  // run_as_uid: when set (and we are root), the child drops to that user before exec.
  // in_child: runs in the child just before exec; system calls only (see below).
  explicit Subprocess(std::vector<std::string> args, std::optional<uid_t> run_as_uid = {},
                      void (*in_child)() = nullptr) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) std::abort();
    // argv is built before fork: the test process has threads (servers, other subprocesses'
    // readers), and the child may only make system calls until exec. A malloc there can find
    // the allocator's lock held by a thread that does not exist in the child (ASan's allocator,
    // unlike glibc's, is not reset at fork): the child then hangs before exec.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      if (run_as_uid && (::setgid(*run_as_uid) != 0 || ::setuid(*run_as_uid) != 0)) ::_exit(126);
      if (in_child) in_child();
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    stdin_fd_ = in[1];
    out_reader_ = std::thread([this, fd = out[0]] { collect(fd, out_); });
    err_reader_ = std::thread([this, fd = err[0]] { collect(fd, err_); });
  }

  ~Subprocess() {
    if (!exit_code_) {
      ::kill(pid_, SIGKILL);
      wait(std::chrono::seconds(5));
    }
    close_stdin();
    if (out_reader_.joinable()) out_reader_.join();
    if (err_reader_.joinable()) err_reader_.join();
  }

  pid_t pid() const { return pid_; }

  void write_stdin(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(stdin_fd_, data.data() + off, data.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  void close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
  void signal(int sig) { ::kill(pid_, sig); }

  // Exit code (128 + signal when killed by one), or nullopt if still running after timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (exit_code_) return exit_code_;
    eventually(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        },
        timeout);
    if (exit_code_) {  // the child is gone: let the readers reach EOF
      if (out_reader_.joinable()) out_reader_.join();
      if (err_reader_.joinable()) err_reader_.join();
    }
    return exit_code_;
  }

  std::string out() {
    std::lock_guard lock(mutex_);
    return out_;
  }
  std::string err() {
    std::lock_guard lock(mutex_);
    return err_;
  }

  // Waits for stderr to match pattern; returns the first capture group (or whole match).
  std::optional<std::string> wait_for_stderr(
      const std::string& pattern, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::regex re(pattern);
    std::smatch m;
    std::optional<std::string> found;
    eventually(
        [&] {
          std::string e = err();
          if (!std::regex_search(e, m, re)) return false;
          found = m.size() > 1 ? m[1].str() : m[0].str();
          return true;
        },
        timeout);
    return found;
  }

 private:
  void collect(int fd, std::string& into) {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::lock_guard lock(mutex_);
      into.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
  }

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::optional<int> exit_code_;
  std::mutex mutex_;
  std::string out_, err_;
  std::thread out_reader_, err_reader_;
};

// Starts `keel <args...> --listen 127.0.0.1:0`-style servers and returns the port they logged.
inline std::optional<int> logged_port(Subprocess& p) {
  auto port = p.wait_for_stderr(R"(listening on 127\.0\.0\.1:(\d+))");
  if (!port) return std::nullopt;
  return std::stoi(*port);
}

// A command that ran to its end: its exit code (-1: it did not exit in time) and its output.
struct CommandRun {
  int code = -1;
  std::string out, err;
};

// Runs args with input on stdin (then closed) and waits up to timeout for it to exit.
inline CommandRun run_command(std::vector<std::string> args, const std::string& input = {},
                              std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  Subprocess p(std::move(args));
  if (!input.empty()) p.write_stdin(input);
  p.close_stdin();
  CommandRun r;
  r.code = p.wait(timeout).value_or(-1);
  r.out = p.out();
  r.err = p.err();
  return r;
}

#ifdef KEEL_BINARY
// `keel <args...>` run to its end.
inline CommandRun run_keel(std::vector<std::string> args) {
  args.insert(args.begin(), KEEL_BINARY);
  return run_command(std::move(args));
}
#endif

}  // namespace keel::test
