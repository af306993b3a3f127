// keel doctor: reads the limits that decide how many connections a server can hold on this
// machine (getrlimit, /proc/sys, /proc/meminfo; no external commands), measures the kernel memory
// of an idle connection, and prints one row per check with its verdict for a target count
// (src/cli/doctor_checks.h). Exit 0 when everything fits the target, 1 when a check is LOW.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/doctor_checks.h"
#include "keel/net/socket.h"

namespace keel::cli {
namespace {

// Loopback connections opened to measure the kernel's cost of one.
constexpr size_t kMeasureConnections = 200;
// A measured cost outside this range is noise, not a socket: a tcp_sock and its inode alone are
// 3.1 KiB on Linux 6.x, so less means free slab space left by closed sockets was reused.
constexpr uint64_t kMinPlausibleBytes = 3 * 1024;
constexpr uint64_t kMaxPlausibleBytes = 64 * 1024;

struct DoctorFlags {
  uint64_t connections = 10000;
  bool json = false;
};

// The whitespace-separated numbers of a /proc/sys file, or nothing if unreadable.
std::optional<std::vector<uint64_t>> read_numbers(const std::string& path, size_t count) {
  std::ifstream in(path);
  std::vector<uint64_t> v(count);
  for (auto& n : v)
    if (!(in >> n)) return std::nullopt;
  return v;
}

std::optional<uint64_t> read_number(const std::string& path) {
  auto v = read_numbers(path, 1);
  return v ? std::optional<uint64_t>((*v)[0]) : std::nullopt;
}

std::optional<std::array<uint64_t, 3>> read_triple(const std::string& path) {
  auto v = read_numbers(path, 3);
  if (!v) return std::nullopt;
  return std::array<uint64_t, 3>{(*v)[0], (*v)[1], (*v)[2]};
}

// A /proc/meminfo field ("MemAvailable", "Slab") in bytes.
std::optional<uint64_t> meminfo_bytes(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") != 0) continue;
    std::istringstream fields(line.substr(field.size() + 1));
    uint64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

// Opens kMeasureConnections loopback pairs, each end in an epoll set as a server's would be, and
// reads the change in the kernel's Slab. Pairs are two sockets, so one socket is half of it.
KernelCost measure_kernel_cost() {
  KernelCost cost;
  auto estimate = [&](const std::string& why) {
    cost.how = "documented figure for Linux 6.x; " + why;
    return cost;
  };
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < 2 * kMeasureConnections + 16)
    return estimate("too few descriptors to measure");

  Socket listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Socket epoll(::epoll_create1(EPOLL_CLOEXEC));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sin;
  auto* addr = reinterpret_cast<sockaddr*>(&sin);
  if (!listener.valid() || !epoll.valid() || ::bind(listener.fd(), addr, len) != 0 ||
      ::listen(listener.fd(), static_cast<int>(kMeasureConnections)) != 0 ||
      ::getsockname(listener.fd(), addr, &len) != 0)
    return estimate("could not listen on 127.0.0.1");
  auto before = meminfo_bytes("Slab");
  if (!before) return estimate("no Slab in /proc/meminfo");
  std::vector<Socket> sockets;
  sockets.reserve(2 * kMeasureConnections);
  for (size_t i = 0; i < kMeasureConnections; ++i) {
    Socket client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!client.valid() || ::connect(client.fd(), addr, len) != 0)
      return estimate("could not connect on loopback");
    Socket server(::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!server.valid()) return estimate("could not accept on loopback");
    for (Socket* s : {&client, &server}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = s->fd();
      if (::epoll_ctl(epoll.fd(), EPOLL_CTL_ADD, s->fd(), &ev) != 0)
        return estimate("epoll_ctl failed");
      sockets.push_back(std::move(*s));
    }
  }
  auto after = meminfo_bytes("Slab");
  if (!after) return estimate("no Slab in /proc/meminfo");
  int64_t delta = static_cast<int64_t>(*after) - static_cast<int64_t>(*before);
  int64_t each = delta / static_cast<int64_t>(sockets.size());
  std::string seen = std::to_string(kMeasureConnections) +
                     " loopback connections changed Slab by " + (delta < 0 ? "-" : "+") +
                     human_bytes(static_cast<uint64_t>(std::abs(delta)));
  if (each < static_cast<int64_t>(kMinPlausibleBytes) ||
      each > static_cast<int64_t>(kMaxPlausibleBytes))
    return estimate("a noisy measurement: " + seen + ", " +
                    (each < 0 ? "less than 0" : human_bytes(static_cast<uint64_t>(each))) +
                    " a socket");
  cost.bytes = static_cast<uint64_t>(each);
  cost.measured = true;
  cost.how = seen;
  return cost;
}

DoctorInputs read_inputs() {
  DoctorInputs in;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    auto value = [](rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : uint64_t{v}; };
    in.nofile_soft = value(lim.rlim_cur);
    in.nofile_hard = value(lim.rlim_max);
  }
  in.nr_open = read_number("/proc/sys/fs/nr_open");
  in.file_max = read_number("/proc/sys/fs/file-max");
  in.files_in_use = read_number("/proc/sys/fs/file-nr");  // allocated, free (0), max
  in.somaxconn = read_number("/proc/sys/net/core/somaxconn");
  in.tcp_max_syn_backlog = read_number("/proc/sys/net/ipv4/tcp_max_syn_backlog");
  if (auto r = read_numbers("/proc/sys/net/ipv4/ip_local_port_range", 2))
    in.local_port_range = std::pair((*r)[0], (*r)[1]);
  in.tcp_tw_reuse = read_number("/proc/sys/net/ipv4/tcp_tw_reuse");
  in.tcp_syncookies = read_number("/proc/sys/net/ipv4/tcp_syncookies");
  in.tcp_fin_timeout_s = read_number("/proc/sys/net/ipv4/tcp_fin_timeout");
  in.rmem_max = read_number("/proc/sys/net/core/rmem_max");
  in.wmem_max = read_number("/proc/sys/net/core/wmem_max");
  in.tcp_rmem = read_triple("/proc/sys/net/ipv4/tcp_rmem");
  in.tcp_wmem = read_triple("/proc/sys/net/ipv4/tcp_wmem");
  in.tcp_mem_pages = read_triple("/proc/sys/net/ipv4/tcp_mem");
  in.mem_available_bytes = meminfo_bytes("MemAvailable");
  in.mem_total_bytes = meminfo_bytes("MemTotal");
  long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) in.page_bytes = static_cast<uint64_t>(page);
  in.kernel_cost = measure_kernel_cost();
  return in;
}

std::string to_json(const DoctorReport& r, const KernelCost& cost) {
  nlohmann::ordered_json j;
  j["target_connections"] = r.target;
  j["fits"] = r.fits;
  j["capacity_connections"] = r.capacity;
  j["bytes_per_connection"] = r.bytes_per_connection;
  j["kernel_bytes_per_connection"] = cost.bytes;
  j["kernel_bytes_measured"] = cost.measured;
  j["kernel_bytes_how"] = cost.how;
  j["checks"] = nlohmann::ordered_json::array();
  for (const Check& c : r.checks) {
    j["checks"].push_back({{"name", c.name},
                           {"value", c.value},
                           {"needed", c.needed},
                           {"status", status_text(c.status)},
                           {"meaning", c.meaning},
                           {"fix", c.fix}});
  }
  return j.dump(2) + "\n";
}

std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

// One row per check (CHECK VALUE NEEDED STATUS FIX) with its meaning indented below it.
std::string to_table(const DoctorReport& r) {
  size_t w_name = 5, w_value = 5, w_needed = 6;
  for (const Check& c : r.checks) {
    w_name = std::max(w_name, c.name.size() + 2);
    w_value = std::max(w_value, c.value.size() + 2);
    w_needed = std::max(w_needed, c.needed.size() + 2);
  }
  std::string out = "keel doctor: this machine's limits for " + with_commas(r.target) +
                    " concurrent connections\n\n";
  out += pad("CHECK", w_name) + pad("VALUE", w_value) + pad("NEEDED", w_needed) + "STATUS  FIX\n";
  for (const Check& c : r.checks) {
    out += pad(c.name, w_name) + pad(c.value, w_value) + pad(c.needed, w_needed) +
           pad(status_text(c.status), 8) + c.fix + "\n";
    out += "    " + c.meaning + "\n";
  }
  std::vector<std::string> low;
  for (const Check& c : r.checks)
    if (c.status == Status::low) low.push_back(c.name);
  out += "\n";
  if (low.empty()) {
    out += "Everything fits " + with_commas(r.target) + " connections.\n";
  } else {
    out += std::to_string(low.size()) + (low.size() == 1 ? " check is" : " checks are") +
           " LOW for " + with_commas(r.target) + " connections:";
    for (size_t i = 0; i < low.size(); ++i) out += (i ? ", " : " ") + low[i];
    out += ".\n";
  }
  return out;
}

int run_doctor(const DoctorFlags& f) {
  DoctorInputs in = read_inputs();
  DoctorReport report = diagnose(in, f.connections);
  std::string text = f.json ? to_json(report, in.kernel_cost) : to_table(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return report.fits ? kExitOk : kExitFailure;
}

}  // namespace

void add_doctor_command(CLI::App& app, Action& action) {
  auto f = std::make_shared<DoctorFlags>();
  CLI::App* doctor = app.add_subcommand(
      "doctor", "Check this machine's limits (open files, backlogs, ports, memory) for a target");
  doctor->add_option("--connections", f->connections, "Target number of concurrent connections")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40))
      ->capture_default_str();
  doctor->add_flag("--json", f->json, "Print the checks as JSON");
  doctor->footer("Exit status: 0 everything fits the target, 1 a check is LOW, 2 usage error.\n");
  doctor->callback([&action, f] { action = [f] { return run_doctor(*f); }; });
}

}  // namespace keel::cli
