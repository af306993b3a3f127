// keel ctl's reply handling (cli/ctl.h): collecting the reply line and rendering it for a person.
// Apart from ctl.cc so it builds without the command line and sockets (tests/fuzz/ctl_reply_fuzz).
#include <algorithm>
#include <string>
#include <vector>

#include "cli/ctl.h"

namespace keel::cli {
namespace {

using Json = nlohmann::ordered_json;

// Text from a reply with its control characters shown as '?': a value can neither start a line
// of its own (a forged table row) nor drive the operator's terminal (escape sequences).
std::string printable(std::string text) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return text;
}

// A table cell: strings as they are (but printable), numbers as JSON writes them, "-" for absent
// or empty.
std::string cell(const Json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end() || it->is_null()) return "-";
  if (it->is_string())
    return it->get<std::string>().empty() ? "-" : printable(it->get<std::string>());
  return it->dump();
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

std::string render_list(const Json& reply) {
  std::vector<std::vector<std::string>> rows{
      {"ID", "SERVICE", "PEER", "NICK", "ROOM", "SINCE", "IN", "OUT", "QUEUED"}};
  auto clients = reply.find("clients");
  // The TRANSPORT column (TLS version and cipher) only when some client has one.
  bool transport = false;
  if (clients != reply.end() && clients->is_array())
    for (const Json& c : *clients) transport = transport || c.contains("transport");
  if (transport) rows[0].push_back("TRANSPORT");
  // HELD and ATTACHED (hub clients) only when some client is a hub client.
  bool hub = false;
  if (clients != reply.end() && clients->is_array())
    for (const Json& c : *clients) hub = hub || c.contains("held");
  if (hub) rows[0].insert(rows[0].end(), {"HELD", "ATTACHED"});
  if (clients != reply.end() && clients->is_array())
    for (const Json& c : *clients) {
      // A cluster-wide list (--cluster): the id as the operator writes it, NODE/ID.
      const std::string id =
          c.contains("node") ? cell(c, "node") + "/" + cell(c, "id") : cell(c, "id");
      rows.push_back({id, cell(c, "service"), cell(c, "peer"), cell(c, "nick"), cell(c, "room"),
                      cell(c, "connected_since"), cell(c, "bytes_in"), cell(c, "bytes_out"),
                      cell(c, "queued")});
      if (transport) rows.back().push_back(cell(c, "transport"));
      if (hub) rows.back().insert(rows.back().end(), {cell(c, "held"), cell(c, "attached")});
    }
  return table(rows);
}

std::string render_stats(const Json& reply) {
  std::string out =
      "uptime " + cell(reply, "uptime_s") + " s, rss " + cell(reply, "rss_kib") + " KiB\n";
  std::vector<std::vector<std::string>> rows{{"SERVICE", "ENDPOINTS", "CONNECTIONS", "ACCEPTED",
                                              "REJECTED", "REJECTED_PER_IP", "ACCEPT_ERRORS",
                                              "FD_EXHAUSTION", "OPEN_FAILED"}};
  auto services = reply.find("services");
  if (services != reply.end() && services->is_array())
    for (const Json& s : *services) {
      std::string endpoints;
      if (auto eps = s.find("endpoints"); eps != s.end() && eps->is_array())
        for (const Json& ep : *eps)
          if (ep.is_string())
            endpoints += (endpoints.empty() ? "" : ",") + printable(ep.get<std::string>());
      rows.push_back({cell(s, "service"), endpoints.empty() ? "-" : endpoints,
                      cell(s, "connections"), cell(s, "accepted"), cell(s, "rejected_over_cap"),
                      cell(s, "rejected_per_ip"), cell(s, "accept_errors"),
                      cell(s, "fd_exhaustion"), cell(s, "open_failures")});
    }
  out += table(rows);
  // Closes by reason, the ones that happened: "echo closed: finished 120, idle_timeout 3".
  if (services != reply.end() && services->is_array())
    for (const Json& s : *services) {
      auto closed = s.find("closed");
      if (closed == s.end() || !closed->is_object()) continue;
      std::string line;
      for (auto it = closed->begin(); it != closed->end(); ++it)
        if (it.value().is_number_unsigned() && it.value().get<uint64_t>() > 0)
          line += (line.empty() ? " " : ", ") + printable(it.key()) + " " + it.value().dump();
      if (!line.empty()) out += cell(s, "service") + " closed:" + line + "\n";
    }
  // A cluster node (--redis): "chat cluster: node n1, link up, 3 nodes, ...".
  if (services != reply.end() && services->is_array())
    for (const Json& s : *services) {
      auto c = s.find("cluster");
      if (c == s.end() || !c->is_object()) continue;
      const bool up = c->value("up", false);
      out += cell(s, "service") + " cluster: node " + cell(*c, "node") +
             (up ? ", link up" : ", LINK DOWN (" + cell(*c, "last_error") + ")") + ", " +
             cell(*c, "nodes") + " nodes, events published " + cell(*c, "published") +
             ", dropped " + cell(*c, "dropped_events") + ", delivered " + cell(*c, "delivered") +
             ", lost " + cell(*c, "lost_events") + ", waiting " + cell(*c, "buffered_bytes") +
             " bytes, reconnects " + cell(*c, "reconnects") + "\n";
    }
  // A --workers supervisor: one row per worker process.
  std::vector<std::vector<std::string>> workers{
      {"SERVICE", "WORKER", "PID", "RESTARTS", "ACCEPTED", "ACTIVE"}};
  if (services != reply.end() && services->is_array())
    for (const Json& s : *services)
      if (auto ws = s.find("workers"); ws != s.end() && ws->is_array())
        for (size_t i = 0; i < ws->size(); ++i)
          workers.push_back({cell(s, "service"), std::to_string(i), cell((*ws)[i], "pid"),
                             cell((*ws)[i], "restarts"), cell((*ws)[i], "accepted"),
                             cell((*ws)[i], "active")});
  if (workers.size() > 1) out += "\n" + table(workers);
  return out;
}

}  // namespace

bool ReplyLine::append(std::string_view bytes) {
  if (complete_) return true;
  // Only the new bytes are searched: what came before held no "\n".
  if (size_t nl = bytes.find('\n'); nl != std::string_view::npos) {
    scanned_ += nl + 1;
    line_.append(bytes.substr(0, nl));
    complete_ = true;
  } else {
    scanned_ += bytes.size();
    line_.append(bytes);
  }
  return complete_;
}

std::string render_reply(const std::string& cmd, const nlohmann::ordered_json& reply) {
  if (cmd == "list") return render_list(reply);
  if (cmd == "stats" && reply.contains("totals")) {  // --cluster: each node, then the sums
    std::string out;
    if (auto nodes = reply.find("nodes"); nodes != reply.end() && nodes->is_array())
      for (const Json& n : *nodes) out += "node " + cell(n, "node") + ": " + render_stats(n) + "\n";
    const Json& t = reply["totals"];
    out += "cluster: " + cell(t, "connections") + " connections, " + cell(t, "accepted") +
           " accepted, messages in " + cell(t, "messages_in") + ", out " + cell(t, "messages_out") +
           "\n";
    if (auto missing = reply.find("missing"); missing != reply.end() && !missing->empty())
      out += "did not answer: " + printable(missing->dump()) + "\n";
    return out;
  }
  if (cmd == "stats") return render_stats(reply);
  if (cmd == "send") {
    std::string ids;
    if (auto to = reply.find("sent_to"); to != reply.end() && to->is_array())
      for (const Json& id : *to) ids += (ids.empty() ? "" : ", ") + id.dump();
    return "sent to " + (ids.empty() ? std::string("-") : ids) + "\n";
  }
  if (cmd == "broadcast") {
    std::string n = cell(reply, "recipients");
    return "sent to " + n + (n == "1" ? " client\n" : " clients\n");
  }
  if (cmd == "kick") return "kicked " + cell(reply, "kicked") + "\n";
  return "ok\n";
}

}  // namespace keel::cli
