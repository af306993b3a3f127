#include "cli/transfer_progress.h"

#include <cstdio>

namespace keel::cli {

TransferProgress::TransferProgress(std::string label, uint64_t total, uint64_t start, bool enabled)
    : label_(std::move(label)), total_(total), start_(start), enabled_(enabled) {}

double TransferProgress::seconds() const {
  return std::chrono::duration<double>(Clock::now() - began_).count();
}

std::string TransferProgress::bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string TransferProgress::duration_text(double seconds) {
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

void TransferProgress::update(uint64_t done) {
  if (!enabled_) return;
  Clock::time_point now = Clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  draw(done);
}

void TransferProgress::draw(uint64_t done) {
  double elapsed = seconds();
  double moved = static_cast<double>(done - std::min(done, start_));
  double rate = elapsed > 0 ? moved / elapsed : 0;
  int percent = total_ ? static_cast<int>(static_cast<double>(done) * 100 / total_) : 100;
  std::string eta = rate > 0 && done < total_
                        ? duration_text(static_cast<double>(total_ - done) / rate)
                        : std::string("-:--");
  std::fprintf(stderr, "\r\033[K%s %3d%% %s / %s  %s/s  ETA %s", label_.c_str(), percent,
               bytes_text(static_cast<double>(done)).c_str(),
               bytes_text(static_cast<double>(total_)).c_str(), bytes_text(rate).c_str(),
               eta.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void TransferProgress::finish() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace keel::cli
