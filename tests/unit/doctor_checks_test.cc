// keel doctor's verdicts on made-up machines: enough or not for a target, and each fix line.
#include "cli/doctor_checks.h"

#include <gtest/gtest.h>

#include <string>

namespace keel::cli {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

// A machine tuned for many connections.
DoctorInputs roomy() {
  DoctorInputs in;
  in.nofile_soft = 1048576;
  in.nofile_hard = 1048576;
  in.nr_open = 1048576;
  in.file_max = 9223372036854775807ull;
  in.files_in_use = 2000;
  in.somaxconn = 4096;
  in.tcp_max_syn_backlog = 4096;
  in.local_port_range = std::pair<uint64_t, uint64_t>(1024, 65535);
  in.tcp_tw_reuse = 1;
  in.tcp_syncookies = 1;
  in.tcp_fin_timeout_s = 15;
  in.rmem_max = 16777216;
  in.wmem_max = 16777216;
  in.tcp_rmem = std::array<uint64_t, 3>{4096, 131072, 6291456};
  in.tcp_wmem = std::array<uint64_t, 3>{4096, 16384, 4194304};
  in.tcp_mem_pages = std::array<uint64_t, 3>{100000, 200000, 300000};
  in.mem_available_bytes = 16 * kGiB;
  in.mem_total_bytes = 32 * kGiB;
  in.kernel_cost = {3584, true, "200 loopback connections changed Slab by +1.4 MiB"};
  return in;
}

// A desktop's defaults: 1,024 open files, small backlogs, no syncookies.
DoctorInputs stock() {
  DoctorInputs in = roomy();
  in.nofile_soft = 1024;
  in.nofile_hard = 4096;
  in.somaxconn = 128;
  in.tcp_max_syn_backlog = 128;
  in.tcp_syncookies = 0;
  in.local_port_range = std::pair<uint64_t, uint64_t>(32768, 60999);
  in.tcp_tw_reuse = 2;
  in.tcp_fin_timeout_s = 60;
  return in;
}

const Check& find(const DoctorReport& r, const std::string& name) {
  for (const Check& c : r.checks)
    if (c.name == name) return c;
  static Check missing{"missing", "", "", Status::info, "", ""};
  ADD_FAILURE() << "no check named " << name;
  return missing;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(DoctorChecks, RoomyMachineFitsTenThousandAndEveryRowHasMeaningAndFix) {
  DoctorReport r = diagnose(roomy(), 10000);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.target, 10000u);
  EXPECT_EQ(r.checks.size(), 17u);
  for (const Check& c : r.checks) {
    EXPECT_NE(c.status, Status::low) << c.name;
    EXPECT_FALSE(c.meaning.empty()) << c.name;
    EXPECT_FALSE(c.fix.empty()) << c.name;
    EXPECT_FALSE(c.value.empty()) << c.name;
  }
  EXPECT_EQ(find(r, "RLIMIT_NOFILE soft").needed, "10,100");
  EXPECT_EQ(find(r, "net.core.somaxconn").fix, "sysctl -w net.core.somaxconn=4096");
}

TEST(DoctorChecks, StockMachineIsLowForTenThousandWithTheFixForEach) {
  DoctorReport r = diagnose(stock(), 10000);
  EXPECT_FALSE(r.fits);

  const Check& soft = find(r, "RLIMIT_NOFILE soft");
  EXPECT_EQ(soft.status, Status::low);
  EXPECT_EQ(soft.value, "1,024");
  EXPECT_EQ(soft.fix,
            "ulimit -n 16384 (in the shell that starts keel), after raising the hard limit");

  const Check& hard = find(r, "RLIMIT_NOFILE hard");
  EXPECT_EQ(hard.status, Status::low);
  EXPECT_TRUE(contains(hard.fix, "systemd: LimitNOFILE=16384")) << hard.fix;
  EXPECT_TRUE(contains(hard.fix, "\"* hard nofile 16384\" in /etc/security/limits.conf"));
  EXPECT_TRUE(contains(hard.fix, "keel echo --workers 3")) << hard.fix;  // 10,000 / 3,996

  const Check& somaxconn = find(r, "net.core.somaxconn");
  EXPECT_EQ(somaxconn.status, Status::low);
  EXPECT_EQ(somaxconn.needed, "4,096");
  EXPECT_EQ(somaxconn.fix, "sysctl -w net.core.somaxconn=4096");

  const Check& syn = find(r, "net.ipv4.tcp_max_syn_backlog");
  EXPECT_EQ(syn.status, Status::low);  // syncookies are off, so the queue is all there is
  EXPECT_EQ(syn.fix, "sysctl -w net.ipv4.tcp_max_syn_backlog=4096");

  const Check& cookies = find(r, "net.ipv4.tcp_syncookies");
  EXPECT_EQ(cookies.status, Status::low);
  EXPECT_EQ(cookies.value, "0 (off)");
  EXPECT_EQ(cookies.fix, "sysctl -w net.ipv4.tcp_syncookies=1");

  // Client-side and tuning rows are information, never a verdict.
  const Check& ports = find(r, "net.ipv4.ip_local_port_range");
  EXPECT_EQ(ports.status, Status::info);
  EXPECT_EQ(ports.value, "32768 60999 (28,232 ports)");
  EXPECT_TRUE(contains(ports.meaning, "clients and load generators only"));
  EXPECT_EQ(find(r, "net.ipv4.tcp_tw_reuse").fix, "sysctl -w net.ipv4.tcp_tw_reuse=1");
  EXPECT_EQ(find(r, "net.ipv4.tcp_tw_reuse").value, "2 (loopback only)");
  EXPECT_EQ(find(r, "net.ipv4.tcp_fin_timeout").fix, "sysctl -w net.ipv4.tcp_fin_timeout=15");
  EXPECT_EQ(find(r, "net.ipv4.tcp_fin_timeout").status, Status::info);
}

TEST(DoctorChecks, StockMachineFitsAHundred) {
  DoctorInputs in = stock();
  in.tcp_syncookies = 1;
  DoctorReport r = diagnose(in, 100);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(find(r, "net.core.somaxconn").needed, "100");  // a burst of the whole target
  EXPECT_EQ(find(r, "net.core.somaxconn").status, Status::ok);
  EXPECT_EQ(find(r, "RLIMIT_NOFILE soft").fix, "ulimit -n 1024 (in the shell that starts keel)");
}

TEST(DoctorChecks, SoftLimitBelowARoomyHardLimitIsRaisedToTheHardLimitAtMost) {
  DoctorInputs in = roomy();
  in.nofile_soft = 1024;
  in.nofile_hard = 12000;
  DoctorReport r = diagnose(in, 10000);
  EXPECT_FALSE(r.fits);
  EXPECT_EQ(find(r, "RLIMIT_NOFILE soft").fix, "ulimit -n 12000 (in the shell that starts keel)");
  EXPECT_EQ(find(r, "RLIMIT_NOFILE hard").status, Status::ok);
}

TEST(DoctorChecks, HardLimitOfTwentyThousandIsEnoughForTenThousandNotThirty) {
  DoctorInputs in = roomy();
  in.nofile_soft = 20000;
  in.nofile_hard = 20000;
  EXPECT_TRUE(diagnose(in, 10000).fits);
  DoctorReport r = diagnose(in, 30000);
  EXPECT_FALSE(r.fits);
  const Check& hard = find(r, "RLIMIT_NOFILE hard");
  EXPECT_EQ(hard.status, Status::low);
  EXPECT_TRUE(contains(hard.fix, "LimitNOFILE=32768")) << hard.fix;
  EXPECT_TRUE(contains(hard.fix, "--workers 2")) << hard.fix;
  EXPECT_EQ(find(r, "connections this machine can hold").fix, "keel echo --workers 2");
}

TEST(DoctorChecks, SyncookiesCoverASmallSynBacklog) {
  DoctorInputs in = stock();
  in.tcp_syncookies = 1;
  DoctorReport r = diagnose(in, 10000);
  const Check& syn = find(r, "net.ipv4.tcp_max_syn_backlog");
  EXPECT_EQ(syn.status, Status::ok);
  EXPECT_TRUE(contains(syn.meaning, "syncookies are on")) << syn.meaning;
}

TEST(DoctorChecks, SystemFileLimitsCountTheFilesAlreadyOpen) {
  DoctorInputs in = roomy();
  in.nr_open = 8192;
  in.file_max = 12000;
  in.files_in_use = 5000;
  DoctorReport r = diagnose(in, 10000);
  const Check& nr_open = find(r, "fs.nr_open");
  EXPECT_EQ(nr_open.status, Status::low);
  EXPECT_EQ(nr_open.fix, "sysctl -w fs.nr_open=16384");
  const Check& file_max = find(r, "fs.file-max");
  EXPECT_EQ(file_max.status, Status::low);
  EXPECT_EQ(file_max.value, "12,000 (5,000 in use)");
  EXPECT_EQ(file_max.needed, "15,100");
  EXPECT_EQ(file_max.fix, "sysctl -w fs.file-max=16384");
  EXPECT_EQ(r.capacity, 7000u);  // files left, fewer than memory allows
}

TEST(DoctorChecks, PortRangeSaysWhatAClientMachineCanOpen) {
  DoctorInputs in = stock();
  DoctorReport r_few = diagnose(in, 50000);
  const Check& few = find(r_few, "net.ipv4.ip_local_port_range");
  EXPECT_EQ(few.status, Status::info);
  EXPECT_TRUE(contains(few.meaning, "opens at most 28,232")) << few.meaning;
  EXPECT_EQ(few.fix, "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"");
  DoctorReport r_beyond = diagnose(in, 100000);
  const Check& beyond = find(r_beyond, "net.ipv4.ip_local_port_range");
  EXPECT_TRUE(contains(beyond.fix, "several server ports or addresses")) << beyond.fix;
  DoctorReport r_enough = diagnose(in, 10000);
  const Check& enough = find(r_enough, "net.ipv4.ip_local_port_range");
  EXPECT_TRUE(contains(enough.meaning, "enough for 10,000")) << enough.meaning;
}

TEST(DoctorChecks, MemoryAndCapacityFromTheMeasuredCost) {
  DoctorInputs in = roomy();
  in.mem_available_bytes = kGiB;
  in.kernel_cost = {3584, true, "measured here"};
  DoctorReport ok = diagnose(in, 100000);  // 100,000 x 4 KiB = 391 MiB
  EXPECT_EQ(ok.bytes_per_connection, 3584u + kKeelBytesPerIdleConnection);
  EXPECT_EQ(ok.capacity, kGiB / 4096);
  EXPECT_EQ(find(ok, "memory").status, Status::ok);
  EXPECT_EQ(find(ok, "memory").needed, "390.6 MiB");
  EXPECT_TRUE(
      contains(find(ok, "memory").meaning, "3.5 KiB in the kernel (measured: measured here)"));
  EXPECT_EQ(find(ok, "connections this machine can hold").value, "~262,144");

  DoctorReport low = diagnose(in, 1000000);
  EXPECT_FALSE(low.fits);
  EXPECT_EQ(find(low, "memory").status, Status::low);
  EXPECT_EQ(find(low, "connections this machine can hold").status, Status::info);

  in.kernel_cost = KernelCost{};  // not measured: the documented estimate
  in.kernel_cost.how = "documented figure";
  DoctorReport est = diagnose(in, 1000);
  EXPECT_EQ(est.bytes_per_connection,
            kEstimatedKernelBytesPerConnection + kKeelBytesPerIdleConnection);
  EXPECT_TRUE(contains(find(est, "memory").meaning, "(estimate: documented figure)"));
}

TEST(DoctorChecks, UnreadableValuesAreInformationNotVerdicts) {
  DoctorInputs in;  // nothing could be read
  DoctorReport r = diagnose(in, 10000);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.capacity, 0u);
  for (const Check& c : r.checks) {
    EXPECT_EQ(c.status, Status::info) << c.name;
    if (c.name != "connections this machine can hold") {
      EXPECT_EQ(c.value, "unreadable") << c.name;
    }
  }
}

TEST(DoctorChecks, StatusAndNumberText) {
  EXPECT_STREQ(status_text(Status::ok), "ok");
  EXPECT_STREQ(status_text(Status::low), "LOW");
  EXPECT_STREQ(status_text(Status::info), "info");
  EXPECT_EQ(with_commas(0), "0");
  EXPECT_EQ(with_commas(999), "999");
  EXPECT_EQ(with_commas(1000), "1,000");
  EXPECT_EQ(with_commas(28232), "28,232");
  EXPECT_EQ(with_commas(100000000), "100,000,000");
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(4096), "4.0 KiB");
  EXPECT_EQ(human_bytes(4194304), "4.0 MiB");
  EXPECT_EQ(human_bytes(16 * kGiB), "16.0 GiB");
}

TEST(DoctorChecks, UnlimitedOpenFilesFit) {
  DoctorInputs in = roomy();
  in.nofile_soft = UINT64_MAX;
  in.nofile_hard = UINT64_MAX;
  DoctorReport r = diagnose(in, 10000);
  EXPECT_EQ(find(r, "RLIMIT_NOFILE soft").value, "unlimited");
  EXPECT_EQ(find(r, "RLIMIT_NOFILE hard").status, Status::ok);
}

}  // namespace
}  // namespace keel::cli
