#include "cluster/node_event.h"

namespace keel::cluster {
namespace {

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool be(int bytes, uint64_t& v) {
    if (b_.size() < static_cast<size_t>(bytes)) return false;
    v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(b_[i]);
    b_.remove_prefix(static_cast<size_t>(bytes));
    return true;
  }
  bool take(size_t n, std::string& out) {
    if (b_.size() < n) return false;
    out.assign(b_.substr(0, n));
    b_.remove_prefix(n);
    return true;
  }
  size_t left() const { return b_.size(); }

 private:
  std::string_view b_;
};

}  // namespace

const char* to_string(EventKind kind) {
  switch (kind) {
    case EventKind::hello: return "hello";
    case EventKind::heartbeat: return "heartbeat";
    case EventKind::roster: return "roster";
    case EventKind::joined: return "joined";
    case EventKind::left: return "left";
    case EventKind::renamed: return "renamed";
    case EventKind::room_line: return "room_line";
    case EventKind::private_line: return "private_line";
    case EventKind::gone: return "gone";
    case EventKind::op_request: return "op_request";
    case EventKind::op_reply: return "op_reply";
    case EventKind::op_session: return "op_session";
  }
  return "unknown";
}

std::string encode(const NodeEvent& e) {
  std::string out = "K1";
  size_t size = 2 + 1 + 8 + 1 + e.node.size() + 4;
  for (const auto& a : e.args) size += 4 + a.size();
  out.reserve(size);
  put_be(out, static_cast<uint8_t>(e.kind), 1);
  put_be(out, e.seq, 8);
  put_be(out, e.node.size(), 1);
  out += e.node;
  put_be(out, e.args.size(), 4);
  for (const auto& a : e.args) {
    put_be(out, a.size(), 4);
    out += a;
  }
  return out;
}

std::optional<NodeEvent> decode_event(std::string_view bytes, std::string* why) {
  auto fail = [&](const char* what) -> std::optional<NodeEvent> {
    if (why) *why = what;
    return std::nullopt;
  };
  if (bytes.size() > kMaxEventBytes) return fail("event too large");
  if (!bytes.starts_with("K1")) return fail("not a keel event (bad magic or version)");
  Reader r(bytes.substr(2));
  NodeEvent e;
  uint64_t kind = 0, node_len = 0, count = 0;
  if (!r.be(1, kind) || !r.be(8, e.seq) || !r.be(1, node_len)) return fail("truncated header");
  if (kind == 0 || kind > kLastEventKind) return fail("unknown event kind");
  e.kind = static_cast<EventKind>(kind);
  if (node_len == 0 || node_len > kMaxNodeNameBytes) return fail("bad node name length");
  if (!r.take(node_len, e.node)) return fail("truncated node name");
  if (!r.be(4, count)) return fail("truncated argument count");
  if (count > kMaxEventArgs) return fail("too many arguments");
  // Each argument needs at least its 4-byte length: a count the bytes cannot hold is refused
  // before anything is reserved for it.
  if (count > r.left() / 4) return fail("more arguments than bytes");
  e.args.resize(count);
  for (auto& a : e.args) {
    uint64_t len = 0;
    if (!r.be(4, len)) return fail("truncated argument length");
    if (!r.take(len, a)) return fail("truncated argument");
  }
  if (r.left() != 0) return fail("bytes after the last argument");
  return e;
}

}  // namespace keel::cluster
