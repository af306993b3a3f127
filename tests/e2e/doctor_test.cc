// keel doctor run as a user would: its JSON agrees with this machine's /proc and getrlimit, its
// exit status agrees with its rows, and an impossible target is LOW with exit 1.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/doctor_checks.h"
#include "e2e/subprocess.h"

namespace keel::test {
namespace {

const std::string kKeel = KEEL_BINARY;
using Json = nlohmann::json;

uint64_t proc_number(const std::string& path) {
  std::ifstream in(path);
  uint64_t n = 0;
  in >> n;
  EXPECT_TRUE(in) << path;
  return n;
}

uint64_t soft_nofile() {
  rlimit lim{};
  EXPECT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  return lim.rlim_cur;
}

const Json& check(const Json& report, const std::string& name) {
  for (const Json& c : report["checks"])
    if (c["name"] == name) return c;
  static const Json missing = Json::object();
  ADD_FAILURE() << "no check named " << name;
  return missing;
}

int count_low(const Json& report) {
  int low = 0;
  for (const Json& c : report["checks"]) low += c["status"] == "LOW";
  return low;
}

// Runs keel doctor --json with a target; returns its exit code and parsed stdout.
std::pair<int, Json> doctor_json(const std::string& connections) {
  Subprocess doctor({kKeel, "doctor", "--json", "--connections", connections});
  auto code = doctor.wait();
  EXPECT_TRUE(code.has_value());
  EXPECT_EQ(doctor.err(), "");
  Json j = Json::parse(doctor.out(), nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << doctor.out();
  return {code.value_or(-1), j};
}

TEST(Doctor, JsonForAHundredAgreesWithThisMachineAndItsExitStatus) {
  auto [code, r] = doctor_json("100");
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["target_connections"], 100);
  ASSERT_EQ(r["checks"].size(), 17u);
  for (const Json& c : r["checks"]) {
    for (const char* key : {"name", "value", "needed", "status", "meaning", "fix"})
      EXPECT_TRUE(c[key].is_string()) << c.dump();
    std::string s = c["status"];
    EXPECT_TRUE(s == "ok" || s == "LOW" || s == "info") << c.dump();
  }
  // Exit 0 exactly when no row is LOW, and "fits" says the same.
  EXPECT_EQ(code, count_low(r) == 0 ? 0 : 1) << r.dump(2);
  EXPECT_EQ(r["fits"], count_low(r) == 0);

  // The values are this machine's, and the verdicts follow from them.
  uint64_t somaxconn = proc_number("/proc/sys/net/core/somaxconn");
  EXPECT_EQ(check(r, "net.core.somaxconn").value("value", ""), cli::with_commas(somaxconn));
  EXPECT_EQ(check(r, "net.core.somaxconn").value("status", ""), somaxconn >= 100 ? "ok" : "LOW");
  uint64_t soft = soft_nofile();
  EXPECT_EQ(check(r, "RLIMIT_NOFILE soft").value("value", ""), cli::with_commas(soft));
  EXPECT_EQ(check(r, "RLIMIT_NOFILE soft").value("status", ""), soft >= 200 ? "ok" : "LOW");
  EXPECT_EQ(check(r, "fs.nr_open").value("value", ""),
            cli::with_commas(proc_number("/proc/sys/fs/nr_open")));
  uint64_t cookies = proc_number("/proc/sys/net/ipv4/tcp_syncookies");
  EXPECT_EQ(check(r, "net.ipv4.tcp_syncookies").value("status", ""), cookies >= 1 ? "ok" : "LOW");
  EXPECT_EQ(check(r, "net.ipv4.ip_local_port_range").value("status", ""), "info");

  // The per-connection figure says where it came from, and the capacity follows from it.
  EXPECT_FALSE(r["kernel_bytes_how"].get<std::string>().empty());
  EXPECT_GE(r["kernel_bytes_per_connection"].get<uint64_t>(), 1024u);
  EXPECT_GT(r["capacity_connections"].get<uint64_t>(), 0u);
}

TEST(Doctor, AHundredMillionConnectionsIsLowAndExitsOne) {
  auto [code, r] = doctor_json("100000000");
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(code, 1);
  EXPECT_EQ(r["fits"], false);
  EXPECT_GE(count_low(r), 1);
  if (soft_nofile() < 100000100) {
    const Json& soft = check(r, "RLIMIT_NOFILE soft");
    EXPECT_EQ(soft["status"], "LOW");
    EXPECT_NE(soft["fix"].get<std::string>().find("ulimit -n "), std::string::npos);
  }
}

TEST(Doctor, TableHasOneRowPerCheckAndASummary) {
  Subprocess doctor({kKeel, "doctor", "--connections", "100"});
  auto code = doctor.wait();
  ASSERT_TRUE(code);
  std::string out = doctor.out();
  EXPECT_NE(out.find("CHECK"), std::string::npos) << out;
  EXPECT_NE(out.find("STATUS  FIX"), std::string::npos) << out;
  for (const char* row :
       {"\nRLIMIT_NOFILE soft ", "\nnet.core.somaxconn ", "\nnet.ipv4.ip_local_port_range ",
        "\nmemory ", "\nconnections this machine can hold "})
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  const char* summary =
      *code == 0 ? "Everything fits 100 connections.\n" : "LOW for 100 connections:";
  EXPECT_NE(out.find(summary), std::string::npos) << out;

  Subprocess big({kKeel, "doctor", "--connections", "100000000"});
  EXPECT_EQ(big.wait(), 1);
  EXPECT_NE(big.out().find(" LOW "), std::string::npos) << big.out();
}

TEST(Doctor, UsageErrorsExitTwo) {
  for (const char* bad : {"0", "many", "-5"}) {
    Subprocess doctor({kKeel, "doctor", "--connections", bad});
    EXPECT_EQ(doctor.wait(), 2) << bad;
    EXPECT_EQ(doctor.out(), "") << bad;
  }
  Subprocess help({kKeel, "doctor", "--help"});
  EXPECT_EQ(help.wait(), 0);
  EXPECT_NE(help.out().find("--connections"), std::string::npos) << help.out();
}

}  // namespace
}  // namespace keel::test
