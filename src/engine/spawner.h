// Spawner: the fork server behind ProcessCore. A process that forks threads and then forks
// children from one of them hands each child every lock another thread held at that moment,
// locked forever (a malloc arena, ASan's allocator, a service's logger, the locale): the child
// deadlocks in its first allocation. So ProcessCore forks one spawner at start(), while the
// program is still single-threaded, and the spawner, single-threaded for its whole life, does
// every per-connection fork.
//
// The channel is an AF_UNIX SOCK_SEQPACKET socketpair. The parent sends a SpawnRequest per
// accepted connection (the socket and the stderr pipe's write end ride along via SCM_RIGHTS),
// and per signal it wants delivered; the spawner answers each spawn with a SpawnerEvent
// (spawned or spawn_failed) and reports every child it reaps (exited, with the waitpid status).
// The spawner signals children itself: it alone reaps them, so a pid it still has in its table
// is unreaped (at worst a zombie) and kill(-pid) cannot reach a recycled pid's group. A pidfd
// would be race-free too, but pidfd_send_signal reaches only the leader, not the programs an
// exec'd child started in its group.
//
// child_main is the closure as it was at start(): the spawner is a fork of the parent at that
// moment, and nothing the parent changes later reaches it. That is right for ProcessCore, whose
// options are immutable, and for the services it runs (processes-model services share no state
// across connections, so a child needs none of the parent's later memory).
//
// The spawner exits when the channel reaches EOF (ProcessCore::stop() closed it, or the parent
// died); children still serving their clients carry on. It never logs: in a library user's
// program another thread may have held the logger's mutex when start() forked it.
// Thread safety: start_spawner() from a thread of the parent, before that parent starts more
// threads if it can; the helpers from the thread that owns the parent's end.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "keel/net/connection_id.h"
#include "keel/net/endpoint.h"

namespace keel {

// What the forked child is given: its own process group, one thread, an empty signal mask,
// dispositions as the parent had them at start(). Open descriptors: stdin, stdout, stderr, and
// the two below (close-on-exec); nothing else of the parent's or the spawner's.
struct ChildContext {
  ConnectionId id;
  int socket_fd = -1;  // the accepted socket: non-blocking, close-on-exec
  int stderr_fd = -1;  // write end of the parent's stderr pipe (capture_stderr), else -1
  Endpoint peer;
  Endpoint local;
  std::optional<ucred> peer_cred;  // Unix sockets: the connecting process (SO_PEERCRED)
  int server_pid = 0;              // the server (ProcessCore's process), not the spawner
};

// Parent -> spawner. Fixed size; spawn carries 1 or 2 descriptors (socket, stderr write end).
struct SpawnRequest {
  enum Kind : uint32_t { spawn = 1, signal_one = 2, signal_all = 3 };
  uint32_t kind = spawn;
  int32_t signal_number = 0;
  uint64_t id = 0;  // ConnectionId value
  sockaddr_storage peer{};
  sockaddr_storage local{};
  uint32_t peer_len = 0;
  uint32_t local_len = 0;
  uint32_t has_cred = 0;
  ucred cred{};
};

// Spawner -> parent.
struct SpawnerEvent {
  enum Kind : uint32_t { spawned = 1, spawn_failed = 2, exited = 3 };
  uint32_t kind = spawned;
  int32_t pid = 0;
  int32_t status = 0;  // exited: wait status; spawn_failed: errno of fork
  uint64_t id = 0;
};

struct SpawnerHandle {
  int pid = -1;
  int fd = -1;  // the parent's end: non-blocking, close-on-exec
};

// Forks the spawner. Throws Error when the socketpair or the fork fails.
SpawnerHandle start_spawner(const std::function<void(const ChildContext&)>& child_main);

// Parent side. send_request returns 0 or errno (EAGAIN: try again when writable);
// read_event returns 1 with an event, 0 at EOF, -1 with errno (EAGAIN: nothing now).
int send_request(int fd, const SpawnRequest& request, const int* fds, int fd_count);
int read_event(int fd, SpawnerEvent& event);

}  // namespace keel
