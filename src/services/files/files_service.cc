#include "services/files/files_service.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "keel/error.h"
#include "services/files/files_session.h"

namespace keel::files {

FilesService::FilesService(FilesOptions options)
    : options_(std::move(options)), hashes_(options_.hash_threads) {
  root_ = std::make_unique<FileRoot>(options_.root);  // throws for a bad root, at start-up
  root_pid_ = ::getpid();
}

FilesService::~FilesService() = default;

const FileRoot& FilesService::root() {
  std::lock_guard lock(root_mutex_);
  // A process-per-connection child closed every descriptor it inherited: open the root anew.
  // The old root's number is not ours to close here: it may be the connection's socket now.
  if (root_pid_ != ::getpid()) {
    root_->forget_descriptor();
    root_ = std::make_unique<FileRoot>(options_.root);
    root_pid_ = ::getpid();
  }
  return *root_;
}

void FilesService::on_open(Server&, const ConnectionInfo& info) {
  std::lock_guard lock(sessions_mutex_);
  sessions_[info.id] = std::make_unique<Session>();
}

void FilesService::on_close(Server&, ConnectionId id, const CloseReason& reason) {
  std::unique_ptr<Session> s;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    s = std::move(it->second);
    sessions_.erase(it);
  }
  // A cut connection keeps its part file for a resumed PUT; one that stalled past the idle
  // timeout has it removed (nobody is coming back for it soon, and it holds disk). Not when the
  // server was the one silent, hashing the part file for a resume: the client did nothing wrong.
  const bool stalled =
      reason.kind == CloseReason::Kind::idle_timeout && s->phase != Session::Phase::hashing;
  end_upload(*s, !stalled);
  release_transfer(*s);
}

void FilesService::on_peer_closed(Server& server, ConnectionId id) {
  Session* s;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(id);
    s = it == sessions_.end() ? nullptr : it->second.get();
  }
  if (s) {
    std::lock_guard lock(s->mutex);
    if (s->phase == Session::Phase::upload_data || s->phase == Session::Phase::upload_end) {
      end_upload(*s, true);
      release_transfer(*s);
      s->phase = Session::Phase::closing;
    }
  }
  server.shutdown(id);
}

void FilesService::on_data(Server& server, ConnectionId id, Buffer& in) {
  Session* s;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(id);
    s = it == sessions_.end() ? nullptr : it->second.get();
  }
  if (!s) return in.consume_all();
  std::lock_guard lock(s->mutex);
  for (;;) {
    switch (s->phase) {
      case Session::Phase::closing: return in.consume_all();
      // Reading is paused; what arrived with the request waits (a client sends one request
      // at a time, so nothing should).
      case Session::Phase::hashing: return;
      case Session::Phase::upload_data:
        if (!take_upload_bytes(server, id, *s, in)) return;
        if (s->phase == Session::Phase::upload_data) return;  // wants more
        continue;
      case Session::Phase::request:
      case Session::Phase::upload_end: break;
    }
    Frame frame;
    std::string why;
    Parse p = peek_frame(in.view(), kMaxRequestPayload, frame, why);
    if (p == Parse::incomplete) return;
    if (p == Parse::malformed) return reject(server, id, *s, why);
    Request r;
    if (!parse_request(frame, r, why)) return reject(server, id, *s, why);
    in.consume(frame.bytes);
    if (s->phase == Session::Phase::upload_end) {
      if (r.type != Type::put_end)
        return reject(server, id, *s, "expected PUT_END after the upload's bytes");
      if (!put_end(server, id, *s, r)) return;
      continue;
    }
    if (!handle_request(server, id, *s, r)) return;
  }
}

void FilesService::reject(Server& server, ConnectionId id, Session& s, const std::string& why) {
  s.phase = Session::Phase::closing;
  server.close_gracefully(id, error_frame(ErrorCode::bad_request, why), "bad request: " + why,
                          std::chrono::seconds(5));
}

bool FilesService::handle_request(Server& server, ConnectionId id, Session& s, const Request& r) {
  if (s.transfer_is_get) release_transfer(s);
  switch (r.type) {
    case Type::list: list(server, id, r); return true;
    case Type::stat: stat(server, id, r); return true;
    case Type::get: get(server, id, s, r); return true;
    case Type::hash: hash(server, id, s, r); return true;
    case Type::put: return put(server, id, s, r);
    case Type::put_end: reject(server, id, s, "PUT_END without an upload"); return false;
    default: reject(server, id, s, "not a request"); return false;
  }
}

bool FilesService::take_transfer(Server& server, ConnectionId id, Session& s) {
  size_t most = options_.max_transfers;
  size_t now = active_transfers_.load();
  do {
    if (most && now >= most) {
      server.send(id, error_frame(ErrorCode::busy, "the server's " + std::to_string(most) +
                                                       " transfers are all in use; try again"));
      return false;
    }
  } while (!active_transfers_.compare_exchange_weak(now, now + 1));
  s.holds_transfer = true;
  s.transfer_is_get = false;
  return true;
}

void FilesService::release_transfer(Session& s) {
  if (!s.holds_transfer) return;
  s.holds_transfer = false;
  s.transfer_is_get = false;
  active_transfers_.fetch_sub(1);
}

void FilesService::list(Server& server, ConnectionId id, const Request& r) {
  std::vector<std::string> path;
  Failure failure;
  std::vector<Entry> entries;
  bool truncated = false;
  if (!split_path(r.path, path, failure) ||
      !root().list(path, kMaxListEntries, entries, truncated, failure))
    return void(server.send(id, error_frame(failure)));
  std::string out;
  Reply e;
  e.type = Type::entry;
  for (const Entry& entry : entries) {
    e.kind = entry.kind;
    e.size = entry.size;
    e.mtime_ns = entry.mtime_ns;
    e.name = entry.name;
    append_reply(out, e);
  }
  Reply end;
  end.type = Type::list_end;
  end.count = entries.size();
  end.truncated = truncated;
  append_reply(out, end);
  server.send(id, out);
}

void FilesService::stat(Server& server, ConnectionId id, const Request& r) {
  std::vector<std::string> path;
  Failure failure;
  Entry entry;
  if (!split_path(r.path, path, failure) || !root().stat(path, entry, failure))
    return void(server.send(id, error_frame(failure)));
  Reply reply;
  reply.type = Type::stat_reply;
  reply.kind = entry.kind;
  reply.size = entry.size;
  reply.mtime_ns = entry.mtime_ns;
  server.send(id, reply_frame(reply));
}

void FilesService::get(Server& server, ConnectionId id, Session& s, const Request& r) {
  std::vector<std::string> path;
  Failure failure;
  FileRoot::OpenedFile f;
  if (!split_path(r.path, path, failure) || !root().open_file(path, f, failure))
    return void(server.send(id, error_frame(failure)));
  auto file = std::make_shared<const OpenFile>(f.fd.release());
  if (r.offset > f.size)
    return void(
        server.send(id, error_frame(ErrorCode::range, "offset " + std::to_string(r.offset) +
                                                          " is past the end of the file (" +
                                                          std::to_string(f.size) + " bytes)")));
  if (!take_transfer(server, id, s)) return;
  s.transfer_is_get = true;
  Reply data;
  data.type = Type::data;
  data.size = f.size;
  data.offset = r.offset;
  data.length = std::min(r.length, f.size - r.offset);
  server.send(id, reply_frame(data));
  // keel get asks for the whole file's hash once the bytes are in: start it now, alongside the
  // transfer, so the answer is ready (or nearly) by then.
  if (r.offset == 0 && data.length == f.size && f.size > 0) {
    HashKey key{f.device, f.inode, f.size, f.mtime_ns, f.size};
    if (!hashes_.cached(key)) hashes_.submit(file, f.size, key, {});
  }
  server.send_file(id, {std::move(file), data.offset, data.length});
}

void FilesService::hash(Server& server, ConnectionId id, Session& s, const Request& r) {
  std::vector<std::string> path;
  Failure failure;
  FileRoot::OpenedFile f;
  if (!split_path(r.path, path, failure) || !root().open_file(path, f, failure))
    return void(server.send(id, error_frame(failure)));
  auto file = std::make_shared<const OpenFile>(f.fd.release());
  if (r.length > f.size)
    return void(server.send(
        id, error_frame(ErrorCode::range, "cannot hash " + std::to_string(r.length) +
                                              " bytes of a file of " + std::to_string(f.size))));
  HashKey key{f.device, f.inode, f.size, f.mtime_ns, r.length};
  Reply reply;
  reply.type = Type::hash_reply;
  reply.length = r.length;
  if (auto digest = hashes_.cached(key)) {
    reply.digest = *digest;
    return void(server.send(id, reply_frame(reply)));
  }
  if (!take_transfer(server, id, s)) return;
  s.phase = Session::Phase::hashing;
  server.pause_reading(id);
  hashes_.submit(std::move(file), r.length, key,
                 [this, &server, id, reply](const Sha256& state, int error) mutable {
                   std::lock_guard lock(sessions_mutex_);
                   auto it = sessions_.find(id);
                   if (it == sessions_.end()) return;  // closed meanwhile
                   Session& s = *it->second;
                   std::lock_guard session_lock(s.mutex);
                   release_transfer(s);
                   s.phase = Session::Phase::request;
                   if (error) {
                     server.send(
                         id, error_frame(ErrorCode::io, "reading the file: " + errno_text(error)));
                   } else {
                     reply.digest = Sha256(state).finish();
                     server.send(id, reply_frame(reply));
                   }
                   server.resume_reading(id);
                 });
}

}  // namespace keel::files
