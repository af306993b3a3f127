// keel doctor's verdicts: the limits read from this machine (or made up by a test) and a target
// connection count in, one row per check out (value, needed, ok/LOW/info, meaning, fix). Pure:
// no file, syscall or clock here; src/cli/doctor.cc reads the values and prints the rows.
// Thread safety: free functions on values; safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace keel::cli {

// Descriptors a keel process uses besides its connections: listeners, epoll and eventfds per
// loop, the admin endpoint, the EMFILE reserve, logs.
inline constexpr uint64_t kFdHeadroom = 100;
// keel's listen backlog (include/keel/net/socket.h), which the kernel caps at somaxconn.
inline constexpr uint64_t kKeelListenBacklog = 4096;
// keel's own memory per idle connection: bench/results measures 338 B of RSS; rounded up.
inline constexpr uint64_t kKeelBytesPerIdleConnection = 512;
// Kernel memory per idle TCP connection when it cannot be measured: on Linux 6.x a tcp_sock
// (2.3 KiB), its socket inode (0.8 KiB), file, dentry and epoll entry (0.5 KiB), rounded up.
inline constexpr uint64_t kEstimatedKernelBytesPerConnection = 4096;

// Kernel memory per connection and where the figure came from.
struct KernelCost {
  uint64_t bytes = kEstimatedKernelBytesPerConnection;
  bool measured = false;
  std::string how;  // "200 loopback connections: Slab +1.0 MiB" or why the estimate is used
};

// What doctor.cc reads; an empty optional is a value that could not be read.
struct DoctorInputs {
  std::optional<uint64_t> nofile_soft, nofile_hard;  // UINT64_MAX: unlimited
  std::optional<uint64_t> nr_open, file_max, files_in_use;
  std::optional<uint64_t> somaxconn, tcp_max_syn_backlog;
  std::optional<std::pair<uint64_t, uint64_t>> local_port_range;
  std::optional<uint64_t> tcp_tw_reuse, tcp_syncookies, tcp_fin_timeout_s;
  std::optional<uint64_t> rmem_max, wmem_max;
  std::optional<std::array<uint64_t, 3>> tcp_rmem, tcp_wmem;  // bytes: min default max
  std::optional<std::array<uint64_t, 3>> tcp_mem_pages;       // low pressure high
  std::optional<uint64_t> mem_available_bytes, mem_total_bytes;
  uint64_t page_bytes = 4096;
  KernelCost kernel_cost;
};

enum class Status { ok, low, info };  // info: reported, never decides the exit status
const char* status_text(Status s);    // "ok", "LOW", "info"

struct Check {
  std::string name;    // "net.core.somaxconn", "RLIMIT_NOFILE soft", ...
  std::string value;   // as read: "4096", "32768 60999 (28,232 ports)"
  std::string needed;  // for the target: "4,096", "-" when nothing is needed
  Status status = Status::info;
  std::string meaning;  // one sentence: what it bounds, and the verdict's reason
  std::string fix;      // the exact command or config line that changes it
};

struct DoctorReport {
  uint64_t target = 0;
  std::vector<Check> checks;
  uint64_t bytes_per_connection = 0;  // kernel + keel, per idle connection
  uint64_t capacity = 0;              // about how many idle connections the machine can hold
  bool fits = true;                   // no check is LOW
};

DoctorReport diagnose(const DoctorInputs& in, uint64_t target_connections);

// 10000 -> "10,000"; 23622460 KiB -> "22.5 GiB".
std::string with_commas(uint64_t n);
std::string human_bytes(uint64_t bytes);

}  // namespace keel::cli
