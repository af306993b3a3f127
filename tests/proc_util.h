// What /proc says about a test's child processes: for the process-per-connection tests (keel
// exec, ProcessesEngine), which must leave no child and no zombie behind, and about its own
// threads (a processes engine is started while the test has only one).
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace keel::test {

struct ChildProcess {
  pid_t pid = 0;
  char state = '?';  // R, S, Z (zombie), ... from /proc/PID/stat
};

// Processes whose parent is `parent`, from /proc/*/stat (ppid is the 4th field).
inline std::vector<ChildProcess> children_of(pid_t parent) {
  std::vector<ChildProcess> out;
  DIR* dir = ::opendir("/proc");
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    size_t paren = stat.rfind(')');  // the command name may contain spaces and parentheses
    if (paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(paren + 2));
    char state = '?';
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back({static_cast<pid_t>(std::stol(e->d_name)), state});
  }
  ::closedir(dir);
  return out;
}

inline std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// The processes a server forked for connections: the children of its fork server
// ("keel-spawner"), plus any other child of the server's own (which would be a leak too).
inline std::vector<ChildProcess> connection_processes(pid_t server) {
  std::vector<ChildProcess> out;
  for (const ChildProcess& c : children_of(server)) {
    if (comm_of(c.pid) != "keel-spawner") {
      out.push_back(c);
      continue;
    }
    for (const ChildProcess& g : children_of(c.pid)) out.push_back(g);
  }
  return out;
}

// Threads of this process (/proc/self/task): a fork is safe only when it is 1.
inline size_t threads_in_this_process() {
  size_t n = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return 0;
  while (dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
  ::closedir(dir);
  return n;
}

// "pid state" per process, for failure messages.
inline std::string describe(const std::vector<ChildProcess>& processes) {
  std::string out;
  for (const ChildProcess& p : processes)
    out += (out.empty() ? "" : ", ") + std::to_string(p.pid) + " " + p.state;
  return out.empty() ? "none" : out;
}

}  // namespace keel::test
