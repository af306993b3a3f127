// keel put EP LOCAL [REMOTE]: upload, hashing on the way; the server renames its part file to
// REMOTE only when the SHA-256 it computed matches ours. --resume continues the server's part
// file once its bytes are confirmed to be this file's first bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "cli/commands.h"
#include "cli/files_commands.h"
#include "cli/transfer_progress.h"
#include "keel/error.h"
#include "services/files/sha256.h"

namespace keel::cli {
namespace {

using files::Digest;
using files::Reply;
using files::Request;
using files::Sha256;
using files::Type;

constexpr size_t kChunkBytes = 256 * 1024;

// Reads exactly n bytes at offset (the file must not shrink while it is sent).
void read_at(int fd, char* buf, size_t n, uint64_t offset, const std::string& name) {
  for (size_t done = 0; done < n;) {
    ssize_t r = ::pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw TransferFailed(kExitFailure, "read " + name + ": " + errno_text(errno));
    if (r == 0) throw TransferFailed(kExitFailure, name + " shrank while it was sent");
    done += static_cast<size_t>(r);
  }
}

// PUT and its PUT_READY: the offset to send from. Throws for an ERROR reply.
Reply begin(FilesClient& client, const PutFlags& f, const std::string& remote, uint64_t size,
            bool resume) {
  Request r;
  r.type = Type::put;
  r.path = remote;
  r.size = size;
  r.flags =
      static_cast<uint8_t>((resume ? files::kPutResume : 0) | (f.force ? files::kPutReplace : 0));
  client.request(r);
  Reply ready = client.reply();
  if (ready.type == Type::error) {
    if (ready.code == files::ErrorCode::exists) ready.message += " (--force replaces it)";
    fail_with(ready, "put " + remote);
  }
  if (ready.type != Type::put_ready || ready.offset > size)
    throw TransferFailed(kExitBroken, "put " + remote + ": unexpected reply");
  return ready;
}

}  // namespace

int run_put(const PutFlags& f) {
  const std::string remote = f.remote.empty() ? last_component(f.local) : f.remote;
  if (remote.empty()) throw TransferFailed(kExitUsage, "put " + f.local + ": name a file");
  int fd = ::open(f.local.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw TransferFailed(kExitFailure, "open " + f.local + ": " + errno_text(errno));
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* p) { ::close(*p); });
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw TransferFailed(kExitFailure, f.local + ": not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);

  auto client = std::make_unique<FilesClient>(f.client);
  Reply ready = begin(*client, f, remote, size, f.resume);
  Sha256 hash;
  bool resume_rejected = false;
  std::vector<char> buf(kChunkBytes);
  for (uint64_t at = 0; at < ready.offset;) {  // our own first bytes, to compare
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), ready.offset - at));
    read_at(fd, buf.data(), n, at, f.local);
    hash.update(buf.data(), n);
    at += n;
  }
  if (ready.offset > 0 && Sha256(hash).finish() != ready.digest) {
    resume_rejected = true;
    std::fprintf(stderr,
                 "keel put: the server's partial %s (%llu bytes) is not the start of %s; "
                 "starting over\n",
                 remote.c_str(), static_cast<unsigned long long>(ready.offset), f.local.c_str());
    // The server is waiting for the rest of those bytes: only a new connection starts over,
    // once the old one has let go of the part file (else the new PUT would be told busy).
    client->finish();
    client = std::make_unique<FilesClient>(f.client);
    ready = begin(*client, f, remote, size, false);
    hash = Sha256();
  }
  const uint64_t offset = ready.offset;

  TransferProgress progress(remote, size, offset, show_progress(f.json, f.quiet));
  uint64_t at = offset;
  try {
    while (at < size) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - at));
      read_at(fd, buf.data(), n, at, f.local);
      hash.update(buf.data(), n);
      client->write_raw(buf.data(), n);
      at += n;
      progress.update(at);
    }
  } catch (const TransferFailed& e) {
    progress.finish();
    throw TransferFailed(e.exit_code(), std::string(e.what()) + "; the server keeps what " +
                                            "arrived (keel put --resume continues)");
  }
  progress.finish();
  const Digest mine = Sha256(hash).finish();
  Request end;
  end.type = Type::put_end;
  end.digest = mine;
  Reply done;
  try {
    client->request(end);
    done = client->reply();
  } catch (const TransferFailed& e) {
    // All bytes went into the socket, but the connection broke before the server confirmed:
    // the server may hold them in its part file.
    throw TransferFailed(e.exit_code(), std::string(e.what()) + " before confirming the " +
                                            "upload; the server keeps what arrived (keel put " +
                                            "--resume continues)");
  }
  if (done.type == Type::error && done.code == files::ErrorCode::mismatch)
    throw TransferFailed(kExitVerify, "put " + remote + ": " + done.message);
  if (done.type == Type::error) fail_with(done, "put " + remote);
  if (done.type != Type::put_done || done.digest != mine || done.size != size)
    throw TransferFailed(kExitVerify, "put " + remote + ": the server did not confirm the file");
  double seconds = progress.seconds();
  double moved = static_cast<double>(size - offset);
  if (f.json) {
    nlohmann::json j = {{"command", "put"},
                        {"local", f.local},
                        {"remote", remote},
                        {"size", size},
                        {"resumed_from", offset},
                        {"resume_rejected", resume_rejected},
                        {"bytes_transferred", size - offset},
                        {"seconds", seconds},
                        {"bytes_per_second", seconds > 0 ? moved / seconds : 0.0},
                        {"sha256", files::to_hex(mine)},
                        {"verified", true}};
    std::printf("%s\n", j.dump().c_str());
  } else if (!f.quiet) {
    std::fprintf(stderr, "%s: %s in %s (%s/s), SHA-256 %s verified by the server%s\n",
                 remote.c_str(), TransferProgress::bytes_text(static_cast<double>(size)).c_str(),
                 TransferProgress::duration_text(seconds).c_str(),
                 TransferProgress::bytes_text(seconds > 0 ? moved / seconds : 0).c_str(),
                 files::to_hex(mine).c_str(),
                 offset ? (", resumed at " + std::to_string(offset)).c_str() : "");
  }
  return kExitOk;
}

}  // namespace keel::cli
