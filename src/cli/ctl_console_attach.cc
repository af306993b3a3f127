// The console's attach: keel ctl attach's session (run_attach, ctl_attach.cc) with the console's
// input. run_attach reads the operator's lines from a descriptor; the console hands it a pipe
// that a thread fills, so that Ctrl-C can end the session (the pipe's end: run_attach detaches)
// and, from a pipe, the session's lines are those up to "~." (the console reads on after it).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/ctl_attach.h"
#include "cli/ctl_console.h"
#include "cli/ctl_interrupt.h"

namespace keel::cli {
namespace {

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Terminal: what the operator types, until Ctrl-C or stop_fd. The terminal is in cooked mode
// (the line editor is out of the way), so Ctrl-D reaches run_attach as the end of the input.
void forward_terminal(int to_fd, int stop_fd) {
  const int cancel = interrupt_fd();
  for (;;) {
    pollfd p[3] = {{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}, {cancel, POLLIN, 0}};
    if (::poll(p, cancel >= 0 ? 3 : 2, -1) < 0) continue;
    if (p[1].revents || (cancel >= 0 && p[2].revents)) return;
    char buf[4096];
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n <= 0) return;
    write_all(to_fd, std::string_view(buf, static_cast<size_t>(n)));
  }
}

}  // namespace

int run_console_attach(const CtlOptions& options, const std::string& target, bool terminal) {
  std::string error;
  std::optional<CtlConnection> conn =
      connect_ctl(options.admin, options.token_file, options.timeout_s, &error);
  if (!conn) {
    std::fprintf(stderr, "keel ctl: %s\n", error.c_str());
    return kExitFailure;
  }
  int input[2], stop[2];
  if (::pipe2(input, O_CLOEXEC) != 0) return kExitFailure;
  if (::pipe2(stop, O_CLOEXEC) != 0) {
    ::close(input[0]);
    ::close(input[1]);
    return kExitFailure;
  }
  clear_interrupts();
  std::thread feeder([&] {
    if (terminal) {
      forward_terminal(input[1], stop[0]);
    } else {
      // The session's lines: those up to "~." (or the end of the input).
      std::string line;
      while (std::getline(std::cin, line) && line != "~.") write_all(input[1], line + "\n");
    }
    ::close(input[1]);
  });
  std::fflush(stdout);
  int code = run_attach(*conn, target, input[0], STDOUT_FILENO, STDERR_FILENO);
  write_all(stop[1], "x");  // the session is over: the feeder stops (terminal)
  feeder.join();
  ::close(input[0]);
  ::close(stop[0]);
  ::close(stop[1]);
  clear_interrupts();
  return code;
}

}  // namespace keel::cli
