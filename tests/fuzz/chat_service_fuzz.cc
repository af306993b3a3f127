// libFuzzer: arbitrary bytes from several clients into the chat service (lines and frames).
// Checks that no input crashes it or makes it hold more than the line limit per client.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "services/chat/chat_service.h"

namespace {

class NullServer final : public keel::Server {
 public:
  bool send(keel::ConnectionId, std::string_view bytes) override {
    sent += bytes.size();
    return true;
  }
  bool shutdown(keel::ConnectionId) override { return true; }
  bool close(keel::ConnectionId, std::string_view) override { return true; }
  size_t sent = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  keel::chat::ChatOptions options;
  options.framing = data[0] & 1 ? keel::chat::Framing::length : keel::chat::Framing::lines;
  options.max_line_bytes = 64;
  keel::chat::ChatService chat(options);
  NullServer server;
  constexpr uint32_t kClients = 3;
  keel::Buffer in[kClients];
  for (uint32_t i = 0; i < kClients; ++i)
    chat.on_open(server, {keel::ConnectionId(0, i, 0), {}});
  // Each following byte pair: which client, how many bytes of the rest it sends now.
  size_t pos = 1;
  while (pos + 2 <= size) {
    uint32_t client = data[pos] % kClients;
    size_t n = std::min<size_t>(data[pos + 1], size - pos - 2);
    pos += 2;
    in[client].append(data + pos, n);
    pos += n;
    chat.on_data(server, keel::ConnectionId(0, client, 0), in[client]);
    // What stays buffered is at most one incomplete message (plus a length header).
    if (in[client].readable_bytes() > options.max_line_bytes + 5) std::abort();
  }
  for (uint32_t i = 0; i < kClients; ++i)
    chat.on_close(server, keel::ConnectionId(0, i, 0), keel::CloseReason{});
  return 0;
}
