// keel get EP REMOTE [LOCAL]: download into LOCAL.keel-part, verify the whole file's SHA-256
// against the server's, then rename to LOCAL. --resume continues a part file once the server
// confirms its bytes are the remote file's first bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
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

// Owns a descriptor.
struct LocalFile {
  int fd = -1;
  ~LocalFile() {
    if (fd >= 0) ::close(fd);
  }
};

// Hashes the first length bytes of fd into state. Throws on a read error.
void hash_prefix(int fd, uint64_t length, Sha256& state, const std::string& name) {
  std::vector<char> buf(kChunkBytes);
  for (uint64_t at = 0; at < length;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - at));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw TransferFailed(kExitFailure, "read " + name + ": " + errno_text(n ? errno : EIO));
    state.update(buf.data(), static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
  }
}

Digest remote_hash(FilesClient& client, const std::string& remote, uint64_t length) {
  Request r;
  r.type = Type::hash;
  r.path = remote;
  r.length = length;
  client.request(r);
  Reply reply = client.reply();
  if (reply.type == Type::error) fail_with(reply, "hash " + remote);
  if (reply.type != Type::hash_reply || reply.length != length)
    throw TransferFailed(kExitBroken, "hash " + remote + ": unexpected reply");
  return reply.digest;
}

}  // namespace

int run_get(const GetFlags& f) {
  std::string local = f.local.empty() ? last_component(f.remote) : f.local;
  if (local.empty())
    throw TransferFailed(kExitUsage, "get " + f.remote + ": name a file, not a directory");
  std::error_code ec;
  if (std::filesystem::is_directory(local, ec)) local += "/" + last_component(f.remote);
  if (std::filesystem::exists(local, ec) && !f.force)
    throw TransferFailed(kExitFailure, local + " exists (--force replaces it)");
  const std::string part = local + ".keel-part";

  FilesClient client(f.client);
  LocalFile out;
  out.fd = ::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (out.fd < 0) throw TransferFailed(kExitFailure, "open " + part + ": " + errno_text(errno));
  struct stat st {};
  ::fstat(out.fd, &st);
  uint64_t offset = 0;
  Sha256 hash;
  bool resume_rejected = false;
  if (f.resume && st.st_size > 0) {
    uint64_t held = static_cast<uint64_t>(st.st_size);
    hash_prefix(out.fd, held, hash, part);
    Request r;
    r.type = Type::hash;
    r.path = f.remote;
    r.length = held;
    client.request(r);
    Reply reply = client.reply();
    if (reply.type == Type::hash_reply && reply.digest == Sha256(hash).finish()) {
      offset = held;
    } else if (reply.type == Type::hash_reply || reply.code == files::ErrorCode::range) {
      resume_rejected = true;
      std::fprintf(stderr, "keel get: %s: its first %llu bytes are not %s's; starting over\n",
                   part.c_str(), static_cast<unsigned long long>(held), f.remote.c_str());
    } else {
      fail_with(reply, "get " + f.remote);
    }
  }
  if (offset == 0) {
    hash = Sha256();
    if (::ftruncate(out.fd, 0) != 0)
      throw TransferFailed(kExitFailure, "truncate " + part + ": " + errno_text(errno));
  }

  Request get;
  get.type = Type::get;
  get.path = f.remote;
  get.offset = offset;
  get.length = files::kToEnd;
  client.request(get);
  Reply data = client.reply();
  if (data.type == Type::error) {
    // Nothing is held (the part file was emptied above): a refused get leaves no file behind.
    if (offset == 0) ::unlink(part.c_str());
    fail_with(data, "get " + f.remote);
  }
  if (data.type != Type::data || data.offset != offset || data.offset + data.length != data.size)
    throw TransferFailed(kExitBroken, "get " + f.remote + ": unexpected reply");
  const uint64_t size = data.size;

  TransferProgress progress(last_component(f.remote), size, offset, show_progress(f.json, f.quiet));
  std::vector<char> buf(kChunkBytes);
  uint64_t at = offset;
  try {
    while (at < size) {
      size_t n = client.read_raw(buf.data(),
                                 static_cast<size_t>(std::min<uint64_t>(buf.size(), size - at)));
      for (size_t done = 0; done < n;) {
        ssize_t w = ::pwrite(out.fd, buf.data() + done, n - done, static_cast<off_t>(at + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw TransferFailed(kExitFailure, "write " + part + ": " + errno_text(errno));
        done += static_cast<size_t>(w);
      }
      hash.update(buf.data(), n);
      at += n;
      progress.update(at);
    }
  } catch (const TransferFailed& e) {
    progress.finish();
    throw TransferFailed(e.exit_code(), std::string(e.what()) + "; " + std::to_string(at) + " of " +
                                            std::to_string(size) + " bytes are in " + part +
                                            " (keel get --resume continues)");
  }
  progress.finish();
  const Digest mine = Sha256(hash).finish();
  const Digest theirs = remote_hash(client, f.remote, size);
  if (mine != theirs) {
    const std::string bad = local + ".keel-mismatch";
    ::rename(part.c_str(), bad.c_str());
    throw TransferFailed(kExitVerify, "get " + f.remote + ": SHA-256 mismatch: received " +
                                          files::to_hex(mine) + ", the server has " +
                                          files::to_hex(theirs) + "; the bytes are kept in " + bad);
  }
  if (::fsync(out.fd) != 0 || ::rename(part.c_str(), local.c_str()) != 0)
    throw TransferFailed(kExitFailure, "keep " + local + ": " + errno_text(errno));
  double seconds = progress.seconds();
  double moved = static_cast<double>(size - offset);
  if (f.json) {
    nlohmann::json j = {{"command", "get"},
                        {"remote", f.remote},
                        {"local", local},
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
    std::fprintf(stderr, "%s: %s in %s (%s/s), SHA-256 %s verified%s\n", local.c_str(),
                 TransferProgress::bytes_text(static_cast<double>(size)).c_str(),
                 TransferProgress::duration_text(seconds).c_str(),
                 TransferProgress::bytes_text(seconds > 0 ? moved / seconds : 0).c_str(),
                 files::to_hex(mine).c_str(),
                 offset ? (", resumed at " + std::to_string(offset)).c_str() : "");
  }
  return kExitOk;
}

}  // namespace keel::cli
