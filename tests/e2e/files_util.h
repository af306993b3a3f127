// What the keel files tests share: a scratch tree per test (removed with everything beneath
// it), files written and read whole, SHA-256 computed by OpenSSL itself (not by keel's code),
// a `keel files` server on port 0, `keel get/put/ls` runs with their JSON summaries, a raw
// protocol client built on keel's codec (for what the CLI cannot send, or a transfer that must
// stall), and a loopback proxy that cuts a connection for real after N bytes.
// Thread safety: each object has one owner; CuttingProxy forwards on a thread of its own.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "e2e/subprocess.h"
#include "services/files/protocol.h"
#include "test_util.h"

namespace keel::test::files_e2e {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

inline const std::string kKeel = KEEL_BINARY;
inline constexpr size_t kMiB = 1024 * 1024;

// A fresh mkdtemp directory; the destructor removes it and everything beneath it (symlinks
// themselves, never what they point to).
class ScratchTree {
 public:
  ScratchTree() {
    std::string pattern = "/tmp/keel-files-test-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScratchTree() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  ScratchTree(const ScratchTree&) = delete;
  ScratchTree& operator=(const ScratchTree&) = delete;

  // Empty when mkdtemp failed.
  const std::string& path() const noexcept { return path_; }
  // path()/name, made as a directory.
  std::string dir(const std::string& name) const {
    fs::create_directories(path_ + "/" + name);
    return path_ + "/" + name;
  }

 private:
  std::string path_;
};

inline bool write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out.flush());
}

// The whole file; nullopt when it cannot be opened.
inline std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Writes size pseudo-random bytes (xorshift64, 8 at a time: fast enough for 256 MiB) in 1 MiB
// chunks, never holding the file in memory.
inline bool write_big_file(const std::string& path, uint64_t size, uint64_t seed) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> chunk(kMiB / 8);
  uint64_t x = seed | 1;
  for (uint64_t left = size; left > 0 && out;) {
    for (uint64_t& word : chunk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      word = x;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, kMiB));
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n));
    left -= n;
  }
  return static_cast<bool>(out.flush());
}

inline std::string lower_hex(const unsigned char* bytes, unsigned int length) {
  std::string hex;
  char two[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(two, sizeof two, "%02x", bytes[i]);
    hex += two;
  }
  return hex;
}

// Lowercase hex SHA-256 of bytes, by OpenSSL directly.
inline std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return lower_hex(digest, length);
}

// Lowercase hex SHA-256 of a file, read in chunks by OpenSSL's digest; "" when unreadable.
inline std::string file_sha256_hex(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> chunk(kMiB);
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    EVP_DigestUpdate(ctx.get(), chunk.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  return lower_hex(digest, length);
}

// The names in a directory (hidden ones too), sorted.
inline std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    names.insert(entry.path().filename().string());
  return names;
}

inline uint64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

// Whether nobody holds an upload's flock on path now: we take it (not blocking) and let go.
inline bool unlocked(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return false;
  ::flock(fd.get(), LOCK_UN);
  return true;
}

// ".NAME.keel-part" beside root/NAME: the server's file for an upload of NAME in progress.
inline std::string part_of(const std::string& root, const std::string& name) {
  return root + "/" + files::part_name(name);
}

// `keel files --root ROOT --listen 127.0.0.1:0 --admin none EXTRA...`, stopped with SIGTERM.
class FilesServer {
 public:
  explicit FilesServer(const std::string& root, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{kKeel,      "files",       "--root",  root,
                                  "--listen", "127.0.0.1:0", "--admin", "none"};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Subprocess>(std::move(args));
    if (auto port = logged_port(*process_)) target_ = "127.0.0.1:" + std::to_string(*port);
  }
  ~FilesServer() { stop(); }

  bool ok() const { return !target_.empty(); }
  // HOST:PORT for keel get/put/ls.
  const std::string& target() const { return target_; }
  Endpoint endpoint() const { return Endpoint::parse(target_); }
  std::string log() { return process_ ? process_->err() : std::string(); }
  // SIGTERM; the exit code (0 after a clean drain).
  int stop() {
    if (!process_) return -1;
    process_->signal(SIGTERM);
    int code = process_->wait(10s).value_or(-1);
    process_.reset();
    return code;
  }

 private:
  std::unique_ptr<Subprocess> process_;
  std::string target_;
};

// A client command run to its end, with its --json summary when it printed one.
struct ClientRun {
  int code = -1;
  std::string out, err;
  Json json;  // an empty object when stdout was not one JSON object
};

inline ClientRun keel_client(std::vector<std::string> args) {
  CommandRun r = run_keel(std::move(args));
  ClientRun c{r.code, r.out, r.err, Json::parse(r.out, nullptr, false)};
  if (!c.json.is_object()) c.json = Json::object();
  return c;
}

// A summary that says the transfer ended verified, with size and SHA-256 as given.
inline void expect_verified(const ClientRun& r, uint64_t size, const std::string& sha256) {
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.json.empty()) << "no JSON summary: " << r.out << r.err;
  EXPECT_EQ(r.json.value("verified", false), true) << r.out;
  EXPECT_EQ(r.json.value("size", uint64_t{0} - 1), size) << r.out;
  EXPECT_EQ(r.json.value("sha256", std::string()), sha256) << r.out;
}

// One connection speaking the files protocol frame by frame, with keel's codec.
class RawFilesClient {
 public:
  explicit RawFilesClient(const Endpoint& server) : fd_(connect_to(server)) {}

  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  bool send(const files::Request& r) {
    std::string frame;
    files::append_request(frame, r);
    return send_raw(frame);
  }
  bool send_raw(std::string_view bytes) { return write_all(fd_.get(), bytes, 10s); }
  // The next reply frame; nullopt at the end of the stream, on a malformed frame or after
  // timeout.
  std::optional<files::Reply> reply(std::chrono::milliseconds timeout = 10s) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      files::Frame frame;
      std::string why;
      files::Parse p = files::peek_frame(input_, files::kMaxReplyPayload, frame, why);
      if (p == files::Parse::malformed) return std::nullopt;
      if (p == files::Parse::ok) {
        files::Reply reply;
        if (!files::parse_reply(frame, reply, why)) return std::nullopt;
        input_.erase(0, frame.bytes);
        return reply;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || !wait_ready(fd_.get(), POLLIN, left)) return std::nullopt;
      char buf[65536];
      ssize_t n = read_some(fd_.get(), buf, sizeof buf);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return std::nullopt;
      input_.append(buf, static_cast<size_t>(n));
    }
  }
  // How the server ended the connection (what it sent meanwhile is dropped).
  StreamEnd wait_closed(std::chrono::milliseconds timeout = 10s) {
    return read_until_end(fd_.get(), nullptr, timeout);
  }
  void close() { fd_.reset(); }

 private:
  Fd fd_;
  std::string input_;
};

inline files::Request put_request(const std::string& path, uint64_t size, uint8_t flags = 0) {
  files::Request r;
  r.type = files::Type::put;
  r.path = path;
  r.size = size;
  r.flags = flags;
  return r;
}

inline files::Request path_request(files::Type type, const std::string& path) {
  files::Request r;
  r.type = type;
  r.path = path;
  r.length = type == files::Type::get ? files::kToEnd : 0;
  return r;
}

// A loopback TCP proxy for one connection: it forwards both ways until `after_bytes` have gone
// in the cut direction, then closes both sides at once (the bytes past the cut are dropped).
// The cut is real: the client and the server each see their own connection end mid-stream.
class CuttingProxy {
 public:
  enum class Cut { client_to_server, server_to_client };

  CuttingProxy(const Endpoint& server, Cut cut, uint64_t after_bytes)
      : server_(server), cut_(cut), after_bytes_(after_bytes) {
    Endpoint any = Endpoint::parse("127.0.0.1:0");
    listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (!listener_.valid() || ::bind(listener_.get(), any.sockaddr_ptr(), any.sockaddr_len()) ||
        ::listen(listener_.get(), 4) ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&ss), &len))
      return;
    target_ = "127.0.0.1:" +
              std::to_string(Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).port());
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
  }

  bool ok() const { return !target_.empty(); }
  const std::string& target() const { return target_; }
  // Whether the cut happened (after_bytes went through, then both sides were closed).
  bool cut_done() const { return cut_done_.load(); }

 private:
  void run(std::stop_token stop) {
    const auto deadline = Clock::now() + 30s;  // bounded whatever the peers do
    Fd client;
    while (!client.valid() && !stop.stop_requested() && Clock::now() < deadline)
      if (wait_ready(listener_.get(), POLLIN, 100ms))
        client.reset(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client.valid()) return;
    Fd server = connect_to(server_);
    if (!server.valid()) return;
    uint64_t forwarded = 0;  // in the cut direction
    char buf[65536];
    while (!stop.stop_requested() && Clock::now() < deadline) {
      pollfd p[2] = {{client.get(), POLLIN, 0}, {server.get(), POLLIN, 0}};
      if (::poll(p, 2, 100) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!p[i].revents) continue;
        int from = i == 0 ? client.get() : server.get();
        int to = i == 0 ? server.get() : client.get();
        bool counted = (i == 0) == (cut_ == Cut::client_to_server);
        size_t want = sizeof buf;
        if (counted) want = static_cast<size_t>(std::min<uint64_t>(want, after_bytes_ - forwarded));
        ssize_t n = read_some(from, buf, want);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0 || !write_all(to, std::string_view(buf, static_cast<size_t>(n)), 10s)) return;
        if (counted) forwarded += static_cast<uint64_t>(n);
        if (counted && forwarded == after_bytes_) {
          // FIN where nothing is left unread, RST where something is: both are a cut.
          ::shutdown(client.get(), SHUT_RDWR);
          ::shutdown(server.get(), SHUT_RDWR);
          cut_done_ = true;
          return;
        }
      }
    }
  }

  Endpoint server_;
  Cut cut_;
  uint64_t after_bytes_;
  Fd listener_;
  std::string target_;
  std::atomic<bool> cut_done_{false};
  std::jthread thread_;  // last: joined before the members it uses go
};

}  // namespace keel::test::files_e2e
