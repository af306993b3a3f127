// FilesService: keel files, a file server for the directory tree beneath one root. The protocol
// (binary frames: LIST, STAT, GET from an offset, HASH of a prefix, PUT with resume and an
// atomic rename once the SHA-256 matches) is in docs/protocols.md, "keel files". Downloads go
// out with Server::send_file (sendfile on plain sockets); uploads are written as they arrive
// and hashed on the way. Every path resolves beneath the root (root.h).
// Thread safety: as every Service; its state is guarded by one mutex, hashing runs on a
// HashPool of its own, and a process-per-connection child opens the root for itself.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "keel/service.h"
#include "services/files/errors.h"
#include "services/files/hash_pool.h"
#include "services/files/protocol.h"
#include "services/files/root.h"

namespace keel::files {

struct FilesOptions {
  std::string root;
  bool writable = false;                                           // PUT allowed
  uint64_t max_file_bytes = std::numeric_limits<uint64_t>::max();  // largest upload
  size_t max_transfers = 0;  // GETs, PUTs and HASHes at once, all clients together; 0: no cap
  size_t hash_threads = 1;
};

class FilesService final : public Service {
 public:
  // Throws keel::Error when the root is not a directory that can be opened.
  explicit FilesService(FilesOptions options);
  ~FilesService() override;

  const char* name() const noexcept override { return "files"; }
  void on_open(Server& server, const ConnectionInfo& info) override;
  void on_data(Server& server, ConnectionId id, Buffer& in) override;
  // A client that ends its side mid-upload will send no more of it: the upload ends here, its
  // part file kept for a resume, before our FIN, so the name is free again by the time the
  // client sees the connection end (keel put starts over on a new connection after that).
  void on_peer_closed(Server& server, ConnectionId id) override;
  void on_close(Server& server, ConnectionId id, const CloseReason& reason) override;
  // Uploads meet only through the file system (a part file's lock, the rename), which works
  // across processes, so each connection may run in a process of its own. --max-transfers then
  // counts per process.
  bool connections_independent() const noexcept override { return true; }
  // A drain lets each transfer finish (bounded by the drain timeout).
  Drain drain() const noexcept override { return Drain::finish; }

  // Transfers running now (for tests and operators).
  size_t active_transfers() const noexcept { return active_transfers_.load(); }

  struct Session;

 private:
  const FileRoot& root();
  // Handles one whole request frame; false when the connection is being closed.
  bool handle_request(Server& server, ConnectionId id, Session& s, const Request& r);
  void list(Server& server, ConnectionId id, const Request& r);
  void stat(Server& server, ConnectionId id, const Request& r);
  void get(Server& server, ConnectionId id, Session& s, const Request& r);
  void hash(Server& server, ConnectionId id, Session& s, const Request& r);
  bool put(Server& server, ConnectionId id, Session& s, const Request& r);
  bool put_end(Server& server, ConnectionId id, Session& s, const Request& r);
  // Writes upload bytes from in; false when writing failed (the connection is being closed).
  bool take_upload_bytes(Server& server, ConnectionId id, Session& s, Buffer& in);
  bool take_transfer(Server& server, ConnectionId id, Session& s);
  void release_transfer(Session& s);
  void end_upload(Session& s, bool keep_part);
  // ERROR bad_request, then the connection ends.
  void reject(Server& server, ConnectionId id, Session& s, const std::string& why);

  const FilesOptions options_;
  std::mutex root_mutex_;
  std::unique_ptr<FileRoot> root_;
  pid_t root_pid_ = 0;  // the process root_ was opened in
  HashPool hashes_;
  std::atomic<size_t> active_transfers_{0};
  mutable std::mutex sessions_mutex_;
  std::unordered_map<ConnectionId, std::unique_ptr<Session>> sessions_;
};

}  // namespace keel::files
