#include "cli/doctor_checks.h"

#include <algorithm>
#include <cstdio>

namespace keel::cli {
namespace {

constexpr uint64_t kUnlimited = UINT64_MAX;

// A round value at least `needed` for a fix line: the next power of two, at least 1,024.
uint64_t round_up(uint64_t needed) {
  uint64_t v = 1024;
  while (v < needed && v < (uint64_t{1} << 62)) v <<= 1;
  return std::max(v, needed);
}

std::string sysctl_fix(const std::string& key, const std::string& value) {
  bool quote = value.find(' ') != std::string::npos;
  return "sysctl -w " + key + "=" + (quote ? "\"" + value + "\"" : value);
}

std::string triple(const std::array<uint64_t, 3>& v) {
  return std::to_string(v[0]) + " " + std::to_string(v[1]) + " " + std::to_string(v[2]);
}

std::string count_or_unlimited(uint64_t n) {
  return n == kUnlimited ? "unlimited" : with_commas(n);
}

Check unreadable(std::string name, std::string needed, std::string meaning, std::string fix) {
  return {std::move(name),
          "unreadable",
          std::move(needed),
          Status::info,
          std::move(meaning) + " (could not be read here)",
          std::move(fix)};
}

// A limit that must be at least `needed`: ok or LOW, and a fix that sets a round value above it.
Check at_least(std::string name, std::optional<uint64_t> value, uint64_t needed,
               std::string meaning, const std::string& sysctl_key) {
  if (!value) return unreadable(name, with_commas(needed), meaning, sysctl_fix(sysctl_key, "N"));
  bool ok = *value >= needed;
  return {
      std::move(name),     count_or_unlimited(*value),
      with_commas(needed), ok ? Status::ok : Status::low,
      std::move(meaning),  sysctl_fix(sysctl_key, std::to_string(ok ? *value : round_up(needed)))};
}

Check nofile_soft(const DoctorInputs& in, uint64_t needed) {
  std::string meaning =
      "open files this process may have: each connection is one (--model threads: two); keel "
      "sheds connections beyond it";
  if (!in.nofile_soft) return unreadable("RLIMIT_NOFILE soft", with_commas(needed), meaning, "");
  bool ok = *in.nofile_soft >= needed;
  uint64_t to = ok ? *in.nofile_soft : round_up(needed);
  if (!ok && in.nofile_hard && *in.nofile_hard >= needed) to = std::min(to, *in.nofile_hard);
  std::string fix = "ulimit -n " + std::to_string(to) + " (in the shell that starts keel)";
  if (!ok && in.nofile_hard && *in.nofile_hard < needed) fix += ", after raising the hard limit";
  return {"RLIMIT_NOFILE soft",
          count_or_unlimited(*in.nofile_soft),
          with_commas(needed),
          ok ? Status::ok : Status::low,
          meaning,
          fix};
}

Check nofile_hard(const DoctorInputs& in, uint64_t needed) {
  std::string meaning =
      "how far the soft limit may be raised without root: no one process holds more "
      "connections (keel echo --workers N gives each worker its own)";
  if (!in.nofile_hard) return unreadable("RLIMIT_NOFILE hard", with_commas(needed), meaning, "");
  bool ok = *in.nofile_hard >= needed;
  uint64_t to = ok ? *in.nofile_hard : round_up(needed);
  std::string fix = "systemd: LimitNOFILE=" + std::to_string(to) + "; or \"* hard nofile " +
                    std::to_string(to) + "\" in /etc/security/limits.conf";
  if (!ok && *in.nofile_hard > kFdHeadroom) {
    uint64_t per_worker = *in.nofile_hard - kFdHeadroom;
    uint64_t workers = (needed - kFdHeadroom + per_worker - 1) / per_worker;
    fix += "; or keel echo --workers " + std::to_string(workers);
  }
  return {"RLIMIT_NOFILE hard",
          count_or_unlimited(*in.nofile_hard),
          with_commas(needed),
          ok ? Status::ok : Status::low,
          meaning,
          fix};
}

Check file_max(const DoctorInputs& in, uint64_t target) {
  uint64_t in_use = in.files_in_use.value_or(0);
  Check c = at_least("fs.file-max", in.file_max, in_use + target + kFdHeadroom,
                     "open files the whole system may have (needed: those open now plus the "
                     "target's)",
                     "fs.file-max");
  if (in.file_max && in.files_in_use) c.value += " (" + with_commas(in_use) + " in use)";
  return c;
}

Check syn_backlog(const DoctorInputs& in, uint64_t backlog_needed) {
  bool cookies = in.tcp_syncookies && *in.tcp_syncookies >= 1;
  std::string meaning =
      "half-open connections a listener keeps while handshakes finish; used only when "
      "tcp_syncookies is 0 (beyond 3/4 of it the kernel drops SYNs)";
  Check c = at_least("net.ipv4.tcp_max_syn_backlog", in.tcp_max_syn_backlog, backlog_needed,
                     meaning, "net.ipv4.tcp_max_syn_backlog");
  if (cookies && c.status == Status::low) {
    c.status = Status::ok;
    c.meaning += "; below the target's, but syncookies are on";
  }
  return c;
}

Check syncookies(const DoctorInputs& in) {
  std::string meaning =
      "answers SYNs with cookies when a listen queue overflows (a connect burst, a SYN flood) "
      "instead of dropping them";
  std::string fix = sysctl_fix("net.ipv4.tcp_syncookies", "1");
  if (!in.tcp_syncookies) return unreadable("net.ipv4.tcp_syncookies", "1", meaning, fix);
  uint64_t v = *in.tcp_syncookies;
  std::string value = std::to_string(v) + (v == 0   ? " (off)"
                                           : v == 1 ? " (on overflow)"
                                                    : " (always)");
  return {"net.ipv4.tcp_syncookies", value, "1", v >= 1 ? Status::ok : Status::low, meaning, fix};
}

Check port_range(const DoctorInputs& in, uint64_t target) {
  const std::string name = "net.ipv4.ip_local_port_range";
  std::string meaning =
      "clients and load generators only, not servers: each outgoing connection from here to one "
      "server address and port takes a local port";
  std::string wide = sysctl_fix(name, "1024 65535");
  if (!in.local_port_range) return unreadable(name, with_commas(target), meaning, wide);
  auto [lo, hi] = *in.local_port_range;
  uint64_t ports = hi >= lo ? hi - lo + 1 : 0;
  bool enough = ports >= target;
  meaning += enough ? "; enough for " + with_commas(target) + " from one client machine"
                    : "; a client machine here opens at most " + with_commas(ports) +
                          " to one server port";
  std::string fix = enough ? sysctl_fix(name, std::to_string(lo) + " " + std::to_string(hi)) : wide;
  if (!enough && target > 64512) fix += ", and connect to several server ports or addresses";
  return {name,
          std::to_string(lo) + " " + std::to_string(hi) + " (" + with_commas(ports) + " ports)",
          with_commas(target) + " (clients)",
          Status::info,
          meaning,
          fix};
}

Check tw_reuse(const DoctorInputs& in) {
  const std::string name = "net.ipv4.tcp_tw_reuse";
  std::string meaning =
      "clients: 1 lets a new outgoing connection take a port still in TIME_WAIT, so a load "
      "generator that opens and closes many connections does not run out of ports; no effect on "
      "accepted connections";
  std::string fix = sysctl_fix(name, "1");
  if (!in.tcp_tw_reuse) return unreadable(name, "-", meaning, fix);
  uint64_t v = *in.tcp_tw_reuse;
  std::string value = std::to_string(v) + (v == 0   ? " (off)"
                                           : v == 1 ? " (on)"
                                                    : " (loopback only)");
  return {name, value, "-", Status::info, meaning, fix};
}

Check fin_timeout(const DoctorInputs& in) {
  const std::string name = "net.ipv4.tcp_fin_timeout";
  std::string meaning =
      "seconds a connection the server closed waits in FIN_WAIT_2 for a peer that never closes "
      "its side, holding a socket; 15-30 suits servers with many clients";
  if (!in.tcp_fin_timeout_s) return unreadable(name, "-", meaning, sysctl_fix(name, "15"));
  uint64_t v = *in.tcp_fin_timeout_s;
  return {name,    std::to_string(v) + " s",
          "-",     Status::info,
          meaning, sysctl_fix(name, v > 30 ? "15" : std::to_string(v))};
}

Check buffer_cap(const std::string& name, std::optional<uint64_t> v, const char* option) {
  std::string meaning = std::string("largest buffer a program may ask for with ") + option +
                        "; TCP autotuning is bounded by tcp_rmem/tcp_wmem instead (keel sets no "
                        "TCP buffer sizes); matters for bursts of UDP datagrams";
  if (!v) return unreadable(name, "-", meaning, sysctl_fix(name, "16777216"));
  return {name,    with_commas(*v) + " (" + human_bytes(*v) + ")",
          "-",     Status::info,
          meaning, sysctl_fix(name, std::to_string(*v))};
}

Check socket_buffers(const std::string& name, const std::optional<std::array<uint64_t, 3>>& v,
                     const char* which, uint64_t target) {
  std::string meaning = std::string(which) +
                        " buffer per TCP connection in bytes, min/default/max (autotuned in "
                        "between); an idle connection holds none";
  if (!v) return unreadable(name, "-", meaning, sysctl_fix(name, "4096 131072 6291456"));
  meaning += ", " + with_commas(target) + " busy ones up to " + human_bytes(target * (*v)[1]) +
             " at the default";
  return {name, triple(*v), "-", Status::info, meaning, sysctl_fix(name, triple(*v))};
}

Check tcp_mem(const DoctorInputs& in, uint64_t target) {
  const std::string name = "net.ipv4.tcp_mem";
  std::string meaning =
      "all TCP buffers together, in pages: above the middle value the kernel shrinks buffers, "
      "above the last each connection is held to its minimum";
  if (!in.tcp_mem_pages)
    return unreadable(name, "-", meaning, sysctl_fix(name, "LOW PRESSURE HIGH"));
  const auto& p = *in.tcp_mem_pages;
  meaning += " (here " + human_bytes(p[0] * in.page_bytes) + " / " +
             human_bytes(p[1] * in.page_bytes) + " / " + human_bytes(p[2] * in.page_bytes) + ")";
  if (in.tcp_rmem && in.tcp_wmem) {
    uint64_t busy = target * ((*in.tcp_rmem)[1] + (*in.tcp_wmem)[1]);
    meaning += "; " + with_commas(target) +
               " busy connections at the default buffers: " + human_bytes(busy);
  }
  return {name, triple(p), "-", Status::info, meaning, sysctl_fix(name, triple(p))};
}

std::string cost_text(const DoctorInputs& in) {
  const KernelCost& k = in.kernel_cost;
  return human_bytes(k.bytes) + " in the kernel (" + (k.measured ? "measured: " : "estimate: ") +
         k.how + ") and " + human_bytes(kKeelBytesPerIdleConnection) + " in keel";
}

Check memory(const DoctorInputs& in, uint64_t target, uint64_t per_conn) {
  std::string meaning = "MemAvailable; an idle connection costs about " + cost_text(in) +
                        "; a busy one also its socket buffers and keel's output (--high-water)";
  uint64_t needed = target * per_conn;
  std::string fix = "add memory, or spread the clients over more machines";
  if (!in.mem_available_bytes) return unreadable("memory", human_bytes(needed), meaning, fix);
  std::string value = human_bytes(*in.mem_available_bytes) + " available";
  if (in.mem_total_bytes) value += " of " + human_bytes(*in.mem_total_bytes);
  bool ok = *in.mem_available_bytes >= needed;
  return {"memory", value, human_bytes(needed), ok ? Status::ok : Status::low, meaning, fix};
}

Check capacity(const DoctorInputs& in, uint64_t target, uint64_t per_conn, uint64_t& figure) {
  std::string meaning = "about how many idle connections this machine can hold: ";
  figure = UINT64_MAX;
  if (in.mem_available_bytes) {
    figure = *in.mem_available_bytes / per_conn;
    meaning += "MemAvailable / " + human_bytes(per_conn) + " = " + with_commas(figure);
  }
  if (in.file_max) {
    uint64_t in_use = in.files_in_use.value_or(0);
    uint64_t files = *in.file_max > in_use ? *in.file_max - in_use : 0;
    if (files < figure) {
      figure = files;
      meaning += std::string(in.mem_available_bytes ? ", " : "") + "bounded by fs.file-max to " +
                 with_commas(files);
    }
  }
  if (figure == UINT64_MAX) figure = 0;
  std::string fix = "-";
  if (in.nofile_hard && *in.nofile_hard != kUnlimited) {
    meaning += "; one process: " + with_commas(*in.nofile_hard) + " (RLIMIT_NOFILE hard)";
    uint64_t hard = *in.nofile_hard;
    if (hard < target + kFdHeadroom && hard > kFdHeadroom) {
      uint64_t per_worker = hard - kFdHeadroom;
      fix = "keel echo --workers " + std::to_string((target + per_worker - 1) / per_worker);
    }
  }
  return {"connections this machine can hold",
          "~" + with_commas(figure),
          with_commas(target),
          Status::info,
          meaning,
          fix};
}

}  // namespace

const char* status_text(Status s) {
  switch (s) {
    case Status::ok: return "ok";
    case Status::low: return "LOW";
    case Status::info: return "info";
  }
  return "info";
}

std::string with_commas(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string human_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1000 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

DoctorReport diagnose(const DoctorInputs& in, uint64_t target) {
  DoctorReport r;
  r.target = target;
  uint64_t fds = target + kFdHeadroom;
  uint64_t backlog = std::min(target, kKeelListenBacklog);
  r.bytes_per_connection = in.kernel_cost.bytes + kKeelBytesPerIdleConnection;

  r.checks.push_back(nofile_soft(in, fds));
  r.checks.push_back(nofile_hard(in, fds));
  r.checks.push_back(at_least("fs.nr_open", in.nr_open, fds,
                              "ceiling for any process's open-file limit (RLIMIT_NOFILE hard)",
                              "fs.nr_open"));
  r.checks.push_back(file_max(in, target));
  r.checks.push_back(at_least("net.core.somaxconn", in.somaxconn, backlog,
                              "cap on every listen backlog (keel asks 4,096): connects that "
                              "arrive faster than keel accepts wait there; beyond it SYNs are "
                              "dropped and clients retry a second later",
                              "net.core.somaxconn"));
  r.checks.push_back(syn_backlog(in, backlog));
  r.checks.push_back(syncookies(in));
  r.checks.push_back(port_range(in, target));
  r.checks.push_back(tw_reuse(in));
  r.checks.push_back(fin_timeout(in));
  r.checks.push_back(buffer_cap("net.core.rmem_max", in.rmem_max, "SO_RCVBUF"));
  r.checks.push_back(buffer_cap("net.core.wmem_max", in.wmem_max, "SO_SNDBUF"));
  r.checks.push_back(socket_buffers("net.ipv4.tcp_rmem", in.tcp_rmem, "receive", target));
  r.checks.push_back(socket_buffers("net.ipv4.tcp_wmem", in.tcp_wmem, "send", target));
  r.checks.push_back(tcp_mem(in, target));
  r.checks.push_back(memory(in, target, r.bytes_per_connection));
  r.checks.push_back(capacity(in, target, r.bytes_per_connection, r.capacity));

  r.fits = std::none_of(r.checks.begin(), r.checks.end(),
                        [](const Check& c) { return c.status == Status::low; });
  return r;
}

}  // namespace keel::cli
