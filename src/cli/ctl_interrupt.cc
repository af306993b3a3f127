// SIGINT as a readable descriptor (cli/ctl_interrupt.h): the self-pipe trick.
#include "cli/ctl_interrupt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace keel::cli {
namespace {

int g_pipe[2] = {-1, -1};

void on_sigint(int) {
  int saved = errno;
  char c = 1;
  [[maybe_unused]] ssize_t n = ::write(g_pipe[1], &c, 1);
  errno = saved;
}

}  // namespace

int interrupt_fd() {
  if (g_pipe[0] >= 0) return g_pipe[0];
  if (::pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking read returns EINTR
  if (::sigaction(SIGINT, &sa, nullptr) != 0) {
    ::close(g_pipe[0]);
    ::close(g_pipe[1]);
    g_pipe[0] = g_pipe[1] = -1;
    return -1;
  }
  return g_pipe[0];
}

void clear_interrupts() {
  if (g_pipe[0] < 0) return;
  char buf[64];
  while (::read(g_pipe[0], buf, sizeof buf) > 0) {
  }
}

}  // namespace keel::cli
