// Tmux: drives an interactive program as a person at a terminal would, for the e2e tests: a
// tmux server on a private socket (-L), one detached 200x50 session running the command,
// send-keys to type, capture-pane to read. The server is killed when the object goes, whatever
// the test's outcome.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test {

class Tmux {
 public:
  // command: one shell command line, run in the session's only pane.
  explicit Tmux(const std::string& command)
      : socket_("keel-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(next_id())) {
    started_ = tmux({"new-session", "-d", "-x", "200", "-y", "50", "-s", "t", command}).code == 0;
  }
  ~Tmux() { tmux({"kill-server"}); }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  bool started() const { return started_; }
  // Keys as tmux names them ("Enter", "Tab", "Up", "C-c"); literal text with literal().
  bool keys(std::vector<std::string> keys) {
    keys.insert(keys.begin(), {"send-keys", "-t", "t"});
    return tmux(std::move(keys)).code == 0;
  }
  bool literal(const std::string& text) {
    return tmux({"send-keys", "-t", "t", "-l", text}).code == 0;
  }
  // The visible screen, one line per row (trailing blanks trimmed by tmux).
  std::string screen() { return tmux({"capture-pane", "-p", "-t", "t"}).out; }
  // Polls the screen (every 50 ms, up to timeout) until pred holds; the last screen in *last.
  bool wait_screen(const std::function<bool(const std::string&)>& pred, std::string* last,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return eventually(
        [&] {
          *last = screen();
          return pred(*last);
        },
        timeout);
  }
  bool wait_text(const std::string& text, std::string* last,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return wait_screen([&](const std::string& s) { return s.find(text) != std::string::npos; },
                       last, timeout);
  }

 private:
  static int next_id() {
    static std::atomic<int> id{0};
    return id++;
  }
  CommandRun tmux(std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/tmux", "-L", socket_, "-f", "/dev/null"});
    return run_command(std::move(args), {}, std::chrono::seconds(10));
  }

  std::string socket_;
  bool started_ = false;
};

}  // namespace keel::test
