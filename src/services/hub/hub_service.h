// Hub: clients connect and are parked; what each sends is held for the operator, who takes one
// client at a time (`keel ctl attach`), sees what it sent while parked and then live, talks with
// it, and parks it again (detach). Protocol: docs/protocols.md, "Hub protocol".
//   client: any bytes (lines by default; 4-byte length frames with framing length; raw bytes
//           with binary). The hub never interprets them.
//   server: a greeting ("* keel hub: you are waiting for an operator", not in binary), then
//           only what operators send (attach's say, keel ctl send/broadcast), framed likewise.
// Guarantees: nothing a client sends is dropped. Held bytes are bounded per client: once a
// parked client has max_held_bytes held (or, attached, that many on their way to a slow
// operator), reading from it pauses and TCP pushes back; it resumes when the operator takes or
// reads them. (The read that reaches the bound is taken whole: at most 128 KiB over.) A client that
// finishes sending (FIN) has left: it is finished (FIN) once an operator has taken what is held for
// it, at once when nothing is; an attached operator sees "eof", then "closed". Thread safety: any
// loop thread, and the admin thread (Attachable, OperatorHooks); state is guarded by mutex_.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "keel/attachable.h"
#include "keel/operator.h"
#include "keel/service.h"
#include "services/chat/framing.h"

namespace keel::cluster {
class ClusterLink;
}  // namespace keel::cluster

namespace keel::hub {

enum class HubFraming { lines, length, binary };

struct HubOptions {
  HubFraming framing = HubFraming::lines;
  size_t max_held_bytes = 64 * 1024;
};

// "lines", "length", "binary"; parse_framing throws std::invalid_argument for anything else.
const char* to_string(HubFraming framing) noexcept;
HubFraming parse_framing(std::string_view text);

class HubService final : public Service, public OperatorHooks, public Attachable {
 public:
  explicit HubService(HubOptions options = {}) : options_(options) {}

  const char* name() const noexcept override { return "hub"; }
  void on_open(Server& server, const ConnectionInfo& info) override;
  void on_data(Server& server, ConnectionId id, Buffer& in) override;
  void on_peer_closed(Server& server, ConnectionId id) override;
  void on_close(Server& server, ConnectionId id, const CloseReason& reason) override;
  // A client that does not read what operators send is too slow: it is told and disconnected
  // (pausing its reading instead would fight the held-bytes bound).
  Overflow overflow() const noexcept override { return Overflow::disconnect; }
  std::string overflow_line(size_t queued_bytes) const override;
  std::string drain_line() const override;
  std::string refusal_line(Refusal reason) const override;

  // OperatorHooks: "held" and "attached" columns; operator text framed as the hub frames.
  void describe(ConnectionId id, Fields& fields) const override;
  std::string operator_line(std::string_view text) const override;
  std::string kick_line(std::string_view reason) const override;

  // Attachable.
  std::optional<Attached> attach(ConnectionId id, std::shared_ptr<OperatorStream> stream,
                                 std::string* refusal) override;
  const char* framing_name() const noexcept override { return to_string(options_.framing); }
  std::string frame_message(std::string_view message) const override;

  // Bytes held for id now (0 for an unknown id). For tests and list.
  size_t held_bytes(ConnectionId id) const;

  // A hub node of a cluster (--redis): the link whose state stats and /metrics show. The hub
  // shares nothing else through it; operators reach other nodes' clients by NODE/ID.
  void join_cluster(const cluster::ClusterLink& link) { cluster_ = &link; }
  std::optional<ClusterStatus> cluster_status() const override;

 private:
  struct Client {
    std::string held;        // sent while parked, not yet taken by an operator
    size_t in_flight = 0;    // attached: posted to the operator, not yet written to them
    bool paused = false;     // reading paused by the held-bytes bound
    bool eof = false;        // the client sent FIN
    bool finishing = false;  // our FIN asked for (shutdown)
    std::shared_ptr<OperatorStream> session;  // the attached operator, if any
  };

  // Each runs with mutex_ held.
  std::string framed_notice(std::string_view text) const;  // empty in binary
  void update_reading(ConnectionId id, Client& c);
  // The client has left and nothing is held for it: FIN once its output is out.
  void finish(ConnectionId id, Client& c);
  bool attached(const Client& c) const { return c.session && c.session->open(); }
  // The stream's callbacks (admin thread; take mutex_ themselves).
  void written(ConnectionId id, const OperatorStream* stream, size_t credit);
  void detach(ConnectionId id, const OperatorStream* stream);

  const HubOptions options_;
  mutable std::mutex mutex_;
  Server* server_ = nullptr;  // the engine, known from the first on_open
  std::unordered_map<ConnectionId, Client> clients_;
  const cluster::ClusterLink* cluster_ = nullptr;  // set before the engine starts
};

}  // namespace keel::hub
