// keel ctl watch ID|ADDR: follows one client's traffic read-only over an admin stream
// (docs/protocols.md, "watch") until the client closes or Ctrl-C.
#include <errno.h>

#include "cli/commands.h"
#include "cli/ctl_client.h"
#include "cli/ctl_console.h"
#include "cli/ctl_interrupt.h"
#include "cli/watch_format.h"
#include "keel/error.h"

namespace keel::cli {

int run_watch(AdminClient& client, const std::string& target, std::FILE* out, std::FILE* err) {
  using Json = nlohmann::ordered_json;
  if (target.empty()) {
    std::fprintf(err, "keel ctl: watch: which client? (an id or address from list)\n");
    return kExitUsage;
  }
  int cancel = interrupt_fd();
  clear_interrupts();
  CtlResult start = client.open_stream(Json{{"cmd", "watch"}, {"to", target}});
  if (start.code != kExitOk) {
    client.disconnect();
    return print_result("watch", start, false, out, err);
  }
  auto field = [&](const char* key) {
    auto it = start.reply.find(key);
    if (it == start.reply.end()) return std::string("-");
    return escape_bytes(it->is_string() ? it->get<std::string>() : it->dump());
  };
  // Said once the tap is in place ("started"): from then on nothing the client says is missed.
  const std::string header = "watching " + field("watching") + " (" + field("service") + ", " +
                             field("peer") + "); Ctrl-C stops\n";
  int code = kExitOk;
  for (;;) {
    std::string line;
    int e = client.next_line(line, cancel);
    if (e == ECANCELED) {
      clear_interrupts();
      std::fprintf(out, "stopped watching\n");
      break;
    }
    if (e) {
      std::fprintf(err, "keel ctl: watch: admin connection %s\n",
                   e == EPIPE ? "closed" : errno_text(e).c_str());
      code = kExitBroken;
      break;
    }
    Json event = Json::parse(line, nullptr, false);
    if (!event.is_object()) continue;
    auto kind = event.find("event");
    if (kind != event.end() && *kind == "started") std::fputs(header.c_str(), out);
    std::fputs(render_watch_event(event).c_str(), out);
    std::fflush(out);
    if (kind != event.end() && *kind == "closed") break;
  }
  client.disconnect();
  return code;
}

}  // namespace keel::cli
