// libFuzzer: arbitrary bytes from several clients into the chat service, lines or frames, so
// every command (/nick, /join, /msg, /me, /who, /rooms, /leave, /quit, /help, unknown ones) and
// plain text meet odd arguments. The first byte picks the framing; then each pair of bytes
// says which client sends and how many of the following bytes, in pieces as a socket delivers.
// Checks:
// - what stays buffered per client is at most one incomplete message (the line limit holds);
// - everything sent to a client is whole messages of its framing, each already clean (no
//   control character, bidi control or invalid UTF-8 from another client gets through: sanitize
//   leaves it unchanged) and bounded by the line limit plus the server's own words;
// - a client that was shut down (/quit, over-long line) is sent nothing more.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "services/chat/chat_service.h"

namespace {

using keel::ConnectionId;

constexpr size_t kMaxLineBytes = 64;
// The longest line the server writes: its own words around at most three times a sanitized line
// (invalid UTF-8 bytes become 3-byte U+FFFD), plus a 32-byte nick and room.
constexpr size_t kMaxOutBytes = 3 * kMaxLineBytes + 200;

class RecordingServer final : public keel::Server {
 public:
  explicit RecordingServer(keel::chat::Framing framing) : framing_(framing) {}

  bool send(ConnectionId id, std::string_view bytes) override {
    if (shut_.contains(id.value())) std::abort();  // nothing after /quit or an error close
    keel::Buffer& out = out_[id.value()];
    out.append(bytes);
    std::string message;
    for (;;) {
      auto status = keel::chat::decode(framing_, out, kMaxOutBytes, message);
      if (status == keel::chat::DecodeStatus::too_long) std::abort();
      if (status == keel::chat::DecodeStatus::need_more) break;
      if (keel::chat::sanitize(message) != message) std::abort();
    }
    if (!out.empty()) std::abort();  // each send is whole messages
    return true;
  }
  bool shutdown(ConnectionId id) override {
    shut_.insert(id.value());
    return true;
  }
  bool close(ConnectionId id, std::string_view) override { return shutdown(id); }
  bool close_gracefully(ConnectionId id, std::string_view last_line, std::string_view,
                        std::chrono::milliseconds) override {
    if (!last_line.empty()) send(id, last_line);
    return shutdown(id);
  }
  bool pause_reading(ConnectionId) override { return true; }
  bool resume_reading(ConnectionId) override { return true; }
  keel::TimerId start_timer(ConnectionId, std::chrono::milliseconds, TimerTask) override {
    return 0;
  }
  void cancel_timer(ConnectionId, keel::TimerId) override {}

 private:
  keel::chat::Framing framing_;
  std::unordered_map<uint64_t, keel::Buffer> out_;
  std::unordered_set<uint64_t> shut_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  keel::chat::ChatOptions options;
  options.framing = data[0] & 1 ? keel::chat::Framing::length : keel::chat::Framing::lines;
  options.max_line_bytes = kMaxLineBytes;
  keel::chat::ChatService chat(options);
  RecordingServer server(options.framing);
  constexpr uint32_t kClients = 3;
  keel::Buffer in[kClients];
  for (uint32_t i = 0; i < kClients; ++i) chat.on_open(server, {ConnectionId(0, i, 0), {}});
  size_t pos = 1;
  while (pos + 2 <= size) {
    uint32_t client = data[pos] % kClients;
    size_t n = std::min<size_t>(data[pos + 1], size - pos - 2);
    pos += 2;
    in[client].append(data + pos, n);
    pos += n;
    chat.on_data(server, ConnectionId(0, client, 0), in[client]);
    // What stays buffered is at most one incomplete message (plus "\r" or a length header).
    if (in[client].readable_bytes() > options.max_line_bytes + 4) std::abort();
  }
  for (uint32_t i = 0; i < kClients; ++i)
    chat.on_close(server, ConnectionId(0, i, 0), keel::CloseReason{});
  return 0;
}
