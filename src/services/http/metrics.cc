#include "services/http/metrics.h"

#include <dirent.h>

#include <map>

#include "admin/admin_commands.h"
#include "keel/engine/engine.h"
#include "keel/net/event_loop.h"

namespace keel::http {
namespace {

// Prometheus label values: backslash, double quote and newline escaped.
std::string label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    text_ += help;
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type;
    text_ += '\n';
  }
  // labels: already formatted, e.g. service="echo",reason="reset" (may be empty).
  void sample(std::string_view name, const std::string& labels, double value) {
    text_ += name;
    if (!labels.empty()) {
      text_ += '{';
      text_ += labels;
      text_ += '}';
    }
    text_ += ' ';
    char buf[64];
    if (value == static_cast<double>(static_cast<uint64_t>(value)) && value < 1e18)
      snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(value));
    else
      snprintf(buf, sizeof buf, "%.9g", value);
    text_ += buf;
    text_ += '\n';
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

long long status_kib(const char* field) {
  std::string status = admin::read_proc_file("/proc/self/status");
  size_t at = status.find(field);
  return at == std::string::npos ? -1 : std::atoll(status.c_str() + at + std::strlen(field));
}

long long open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return -1;
  long long n = 0;
  while (dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n - 1;  // the directory's own descriptor
}

long long max_fds() {
  std::string limits = admin::read_proc_file("/proc/self/limits");
  size_t at = limits.find("Max open files");
  if (at == std::string::npos) return -1;
  return std::atoll(limits.c_str() + at + 14 + limits.substr(at + 14).find_first_not_of(' '));
}

std::string svc(Engine& engine) {
  return "service=\"" + label(engine.service().name()) + "\"";
}

}  // namespace

std::string metrics_text(const Api& api) {
  const std::vector<Engine*>& engines = api.scope.engines;
  std::vector<EngineStats> stats;
  std::vector<EngineTraffic> traffic;
  std::vector<MessageCounts> messages;
  for (Engine* e : engines) {
    stats.push_back(e->stats());
    traffic.push_back(e->traffic());
    messages.push_back(admin::message_counts(e->service(), traffic.back()));
  }
  // Live connections by state: one pass over each engine's clients.
  std::vector<std::map<std::string, uint64_t>> by_state(engines.size());
  for (size_t i = 0; i < engines.size(); ++i) {
    for (ConnectionState s :
         {ConnectionState::open, ConnectionState::draining, ConnectionState::half_closed})
      by_state[i][to_string(s)] = 0;
    engines[i]->visit([&](const ClientSnapshot& c) { ++by_state[i][to_string(c.state)]; });
  }

  Writer w;
  w.family("keel_connections", "gauge", "Live client connections, by service and state.");
  for (size_t i = 0; i < engines.size(); ++i)
    for (const auto& [state, n] : by_state[i])
      w.sample("keel_connections", svc(*engines[i]) + ",state=\"" + state + "\"",
               static_cast<double>(n));
  w.family("keel_accepted_total", "counter", "Connections accepted.");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_accepted_total", svc(*engines[i]), static_cast<double>(stats[i].accepted));
  w.family("keel_rejected_total", "counter",
           "Connections refused: over --max-connections (over_cap), over "
           "--max-connections-per-ip (per_ip), or accepted onto the last descriptors "
           "(fd_exhaustion).");
  for (size_t i = 0; i < engines.size(); ++i) {
    w.sample("keel_rejected_total", svc(*engines[i]) + ",reason=\"over_cap\"",
             static_cast<double>(stats[i].rejected_over_cap));
    w.sample("keel_rejected_total", svc(*engines[i]) + ",reason=\"per_ip\"",
             static_cast<double>(stats[i].rejected_per_ip));
    w.sample("keel_rejected_total", svc(*engines[i]) + ",reason=\"fd_exhaustion\"",
             static_cast<double>(stats[i].fd_exhaustion));
  }
  w.family("keel_accept_errors_total", "counter", "Failed accept calls other than EAGAIN.");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_accept_errors_total", svc(*engines[i]),
             static_cast<double>(stats[i].accept_errors));
  w.family("keel_open_failures_total", "counter",
           "Connections closed before they opened (TLS handshake, PROXY header, timeout).");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_open_failures_total", svc(*engines[i]),
             static_cast<double>(stats[i].open_failures));
  w.family("keel_closed_total", "counter", "Connections closed, by close reason.");
  for (size_t i = 0; i < engines.size(); ++i)
    for (size_t k = 0; k < CloseReason::kKinds; ++k)
      w.sample(
          "keel_closed_total",
          svc(*engines[i]) + ",reason=\"" + to_string(static_cast<CloseReason::Kind>(k)) + "\"",
          static_cast<double>(stats[i].closed[k]));
  w.family("keel_slow_consumer_drops_total", "counter",
           "Clients disconnected because their output passed the high-water mark.");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_slow_consumer_drops_total", svc(*engines[i]),
             static_cast<double>(stats[i].slow_consumer_drops));
  // Cluster nodes (--redis): the link to the other nodes, for services that have one.
  std::vector<std::pair<size_t, ClusterStatus>> clusters;
  for (size_t i = 0; i < engines.size(); ++i)
    if (auto c = operator_hooks(engines[i]->service()).cluster_status())
      clusters.emplace_back(i, std::move(*c));
  if (!clusters.empty()) {
    auto each = [&](const char* name, const char* type, const char* help, auto value) {
      w.family(name, type, help);
      for (const auto& [i, c] : clusters)
        w.sample(name, svc(*engines[i]) + ",node=\"" + label(c.node) + "\"",
                 static_cast<double>(value(c)));
    };
    each("keel_cluster_up", "gauge", "1 while the link to Redis answers, else 0.",
         [](const ClusterStatus& c) { return c.up ? 1 : 0; });
    each("keel_cluster_nodes", "gauge", "Nodes of the cluster this node knows of, itself included.",
         [](const ClusterStatus& c) { return c.nodes; });
    each("keel_cluster_published_events_total", "counter", "Events this node wrote to Redis.",
         [](const ClusterStatus& c) { return c.published; });
    each("keel_cluster_delivered_events_total", "counter", "Other nodes' events received.",
         [](const ClusterStatus& c) { return c.delivered; });
    each("keel_cluster_dropped_events_total", "counter",
         "This node's events not written to Redis (outage buffer full, or refused).",
         [](const ClusterStatus& c) { return c.dropped_events; });
    each("keel_cluster_lost_events_total", "counter",
         "Other nodes' events this node missed (a gap in a node's sequence).",
         [](const ClusterStatus& c) { return c.lost_events; });
    each("keel_cluster_buffered_bytes", "gauge", "Events waiting for the link to Redis, in bytes.",
         [](const ClusterStatus& c) { return c.buffered_bytes; });
    each("keel_cluster_reconnects_total", "counter", "Times the link to Redis came back.",
         [](const ClusterStatus& c) { return c.reconnects; });
  }
  w.family("keel_received_bytes_total", "counter", "Bytes received from clients.");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_received_bytes_total", svc(*engines[i]),
             static_cast<double>(traffic[i].bytes_in));
  w.family("keel_sent_bytes_total", "counter", "Bytes sent to clients.");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_sent_bytes_total", svc(*engines[i]), static_cast<double>(traffic[i].bytes_out));
  w.family("keel_received_messages_total", "counter",
           "Messages received: lines for chat, reads for echo (docs/operations.md).");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_received_messages_total", svc(*engines[i]), static_cast<double>(messages[i].in));
  w.family("keel_sent_messages_total", "counter",
           "Messages sent: lines delivered for chat, sends for echo (docs/operations.md).");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_sent_messages_total", svc(*engines[i]), static_cast<double>(messages[i].out));
  w.family("keel_queued_output_bytes", "gauge",
           "Output bytes waiting in live connections' buffers for their clients to read.");
  for (size_t i = 0; i < engines.size(); ++i)
    w.sample("keel_queued_output_bytes", svc(*engines[i]),
             static_cast<double>(traffic[i].queued_bytes));

  w.family("keel_loop_turn_seconds", "histogram",
           "Time an event-loop turn takes (events, timers, posted work), per service loop; "
           "one turn in 8 is timed.");
  for (size_t l = 0; l < api.loops.size(); ++l) {
    EventLoop::TurnHistogram h = api.loops[l]->turn_histogram();
    const std::string loop = "loop=\"" + std::to_string(l) + "\"";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < EventLoop::kTurnBucketsUs.size(); ++b) {
      cumulative += h.counts[b];
      char le[32];
      snprintf(le, sizeof le, "%g", EventLoop::kTurnBucketsUs[b] / 1e6);
      w.sample("keel_loop_turn_seconds_bucket", loop + ",le=\"" + le + "\"",
               static_cast<double>(cumulative));
    }
    w.sample("keel_loop_turn_seconds_bucket", loop + ",le=\"+Inf\"", static_cast<double>(h.count));
    w.sample("keel_loop_turn_seconds_sum", loop, static_cast<double>(h.sum_ns) / 1e9);
    w.sample("keel_loop_turn_seconds_count", loop, static_cast<double>(h.count));
  }

  w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  w.sample("process_resident_memory_bytes", "", static_cast<double>(status_kib("VmRSS:") * 1024));
  w.family("process_open_fds", "gauge", "Open file descriptors.");
  w.sample("process_open_fds", "", static_cast<double>(open_fds()));
  w.family("process_max_fds", "gauge", "The open-file limit (soft).");
  w.sample("process_max_fds", "", static_cast<double>(max_fds()));
  w.family("keel_http_event_streams", "gauge", "Open /api/events streams.");
  w.sample("keel_http_event_streams", "", static_cast<double>(api.event_streams()));
  w.family("keel_http_event_streams_dropped_total", "counter",
           "Event streams closed because their client did not read.");
  w.sample("keel_http_event_streams_dropped_total", "", static_cast<double>(api.streams_dropped()));
  return w.take();
}

}  // namespace keel::http
