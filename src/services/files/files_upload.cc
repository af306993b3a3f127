// FilesService's uploads: PUT (checks, the part file, resume), the raw bytes as they arrive,
// and PUT_END (SHA-256 check, then the atomic rename).
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "keel/error.h"
#include "services/files/files_service.h"
#include "services/files/files_session.h"

namespace keel::files {

bool FilesService::put(Server& server, ConnectionId id, Session& s, const Request& r) {
  if (!options_.writable) {
    server.send(id,
                error_frame(ErrorCode::not_allowed,
                            "this server is read-only (keel files --writable accepts uploads)"));
    return true;
  }
  if (r.size > options_.max_file_bytes) {
    server.send(id, error_frame(ErrorCode::too_large,
                                std::to_string(r.size) + " bytes is over this server's limit of " +
                                    std::to_string(options_.max_file_bytes) + " per file"));
    return true;
  }
  std::vector<std::string> path;
  Failure failure;
  if (!split_path(r.path, path, failure)) {
    server.send(id, error_frame(failure));
    return true;
  }
  if (!take_transfer(server, id, s)) return true;
  FileRoot::Upload upload;
  const bool replace = (r.flags & kPutReplace) != 0;
  if (!root().begin_upload(path, r.size, (r.flags & kPutResume) != 0, replace, upload, failure)) {
    release_transfer(s);
    server.send(id, error_frame(failure));
    return true;
  }
  const uint64_t held = upload.held;
  s.upload.emplace(std::move(upload));
  s.upload_size = r.size;
  s.received = held;
  s.replace = replace;
  s.hash = Sha256();
  const auto next = held == r.size ? Session::Phase::upload_end : Session::Phase::upload_data;
  if (held == 0) {
    s.phase = next;
    Reply ready;
    ready.type = Type::put_ready;
    ready.offset = 0;
    ready.digest = Sha256().finish();
    server.send(id, reply_frame(ready));
    return true;
  }
  // Resuming: the client checks the held prefix against its own file, and the running hash
  // goes on from that prefix. Both need it hashed: off the loop, with reading paused.
  int copy = ::fcntl(s.upload->part_fd.get(), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    end_upload(s, true);
    release_transfer(s);
    server.send(id, error_frame(ErrorCode::io, "fcntl F_DUPFD_CLOEXEC: " + errno_text(errno)));
    return true;
  }
  s.phase = Session::Phase::hashing;
  server.pause_reading(id);
  hashes_.submit(std::make_shared<const OpenFile>(copy), held, std::nullopt,
                 [this, &server, id, held, next](const Sha256& state, int error) {
                   std::lock_guard lock(sessions_mutex_);
                   auto it = sessions_.find(id);
                   if (it == sessions_.end()) return;  // closed meanwhile
                   Session& s = *it->second;
                   std::lock_guard session_lock(s.mutex);
                   if (error) {
                     end_upload(s, true);
                     release_transfer(s);
                     s.phase = Session::Phase::request;
                     server.send(id, error_frame(ErrorCode::io,
                                                 "reading the part file: " + errno_text(error)));
                   } else {
                     s.hash = state;
                     s.phase = next;
                     Reply ready;
                     ready.type = Type::put_ready;
                     ready.offset = held;
                     ready.digest = Sha256(state).finish();
                     server.send(id, reply_frame(ready));
                   }
                   server.resume_reading(id);
                 });
  return true;
}

bool FilesService::take_upload_bytes(Server& server, ConnectionId id, Session& s, Buffer& in) {
  uint64_t want = s.upload_size - s.received;
  size_t n = static_cast<size_t>(std::min<uint64_t>(want, in.readable_bytes()));
  const char* data = in.peek();
  for (size_t done = 0; done < n;) {
    ssize_t w = ::pwrite(s.upload->part_fd.get(), data + done, n - done,
                         static_cast<off_t>(s.received + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? errno : EIO;
      // The client is mid-stream and cannot be resynchronised: say why and end the
      // connection. The part file keeps what was written, for a resume.
      end_upload(s, true);
      release_transfer(s);
      s.phase = Session::Phase::closing;
      server.close_gracefully(id, error_frame(ErrorCode::io, "writing: " + errno_text(err)),
                              "upload write failed: " + errno_text(err), std::chrono::seconds(5));
      return false;
    }
    done += static_cast<size_t>(w);
  }
  s.hash.update(data, n);
  s.received += n;
  in.consume(n);
  if (s.received == s.upload_size) s.phase = Session::Phase::upload_end;
  return true;
}

bool FilesService::put_end(Server& server, ConnectionId id, Session& s, const Request& r) {
  s.phase = Session::Phase::request;
  const Digest got = Sha256(s.hash).finish();
  if (got != r.digest) {
    end_upload(s, false);
    release_transfer(s);
    server.send(id,
                error_frame(ErrorCode::mismatch, "the bytes that arrived hash to " + to_hex(got) +
                                                     ", not the client's " + to_hex(r.digest) +
                                                     ": the upload is discarded"));
    return true;
  }
  Failure failure;
  bool committed = root().commit_upload(*s.upload, s.replace, failure);
  s.upload.reset();
  release_transfer(s);
  if (!committed) {
    server.send(id, error_frame(failure));
    return true;
  }
  Reply done;
  done.type = Type::put_done;
  done.size = s.upload_size;
  done.digest = got;
  server.send(id, reply_frame(done));
  return true;
}

void FilesService::end_upload(Session& s, bool keep_part) {
  if (!s.upload) return;
  if (!keep_part) root().discard_upload(*s.upload);
  s.upload.reset();  // closes the part file: its lock goes with it
}

}  // namespace keel::files
