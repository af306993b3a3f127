// The parts of ProcessCore shared by process_core.cc (listening, accepting, stderr, stopping)
// and process_core_channel.cc (everything that goes through the spawner). Private to them.
#pragma once

#include <unistd.h>

#include <deque>
#include <string>
#include <utility>

#include "process_core.h"

namespace keel {

struct ProcessCore::Child {
  struct Stderr final : IoHandler {
    explicit Stderr(Child& c) : child(c) {}
    void handle_events(uint32_t) override {
      if (!child.reaped) child.core.read_stderr(child, false);
    }
    Child& child;
  };

  explicit Child(ProcessCore& c) : core(c) {}
  ~Child() {
    if (stderr_fd >= 0) ::close(stderr_fd);
  }

  ProcessCore& core;
  ChildInfo info;       // pid 0 until the spawner has forked it
  int stderr_fd = -1;   // read end, non-blocking
  std::string partial;  // stderr bytes after the last newline
  Socket socket;        // the parent's copy, kept only for the idle clock
  std::string why;      // set when the core killed it
  bool reaped = false;
  Stderr stderr_handler{*this};
};

// The parent's end of the spawner's socketpair, and what waits to be sent on it.
struct ProcessCore::Channel final : IoHandler {
  struct Outgoing {
    SpawnRequest request;
    int fds[2] = {-1, -1};  // socket, stderr write end
    bool close_socket = false;
    void release() {
      if (close_socket && fds[0] >= 0) ::close(fds[0]);
      if (fds[1] >= 0) ::close(fds[1]);
    }
  };
  Channel(ProcessCore& c, int f) : core(c), fd(f) {}
  ~Channel() { close(); }
  void handle_events(uint32_t events) override { core.on_channel_ready(events); }
  void close() {
    for (Outgoing& o : queue) o.release();
    queue.clear();
    if (fd >= 0) ::close(std::exchange(fd, -1));
  }
  ProcessCore& core;
  int fd;
  std::deque<Outgoing> queue;  // in order; the front is sent first
  bool want_write = false;     // EPOLLOUT armed
};

}  // namespace keel
