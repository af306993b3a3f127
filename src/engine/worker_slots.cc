#include "engine/worker_slots.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "keel/error.h"

namespace keel {

struct WorkerSlots::Header {
  static constexpr uint64_t kMagic = 0x6b65656c776f726bULL;  // "keelwork"
  uint64_t magic;
  uint64_t count;
  uint64_t supervisor_pid;
  uint64_t endpoints_bytes;
  char endpoints[4096];  // to_string() of each endpoint, '\n' after each
};

// Slots start on a cache line of their own: a worker's refresh never shares a line with the
// header every reader looks at.
size_t WorkerSlots::slots_offset() noexcept {
  return (sizeof(Header) + 63) / 64 * 64;
}

WorkerSlots WorkerSlots::create(size_t count, const std::vector<Endpoint>& endpoints) {
  std::string text;
  for (const Endpoint& ep : endpoints) text += ep.to_string() + "\n";
  if (text.size() > sizeof(Header::endpoints))
    throw Error("workers: too many endpoints to hand to the worker processes");
  int memfd = ::memfd_create("keel-workers", MFD_CLOEXEC);
  if (memfd < 0) throw_system_error("memfd_create", "keel-workers", errno);
  // Above the descriptors a spawn sets up (0..kWorkerSlotsFd): dup2 onto kWorkerSlotsFd must
  // be a real copy, which clears close-on-exec, never a no-op that keeps it.
  int fd = ::fcntl(memfd, F_DUPFD_CLOEXEC, 10);
  int err = errno;
  ::close(memfd);
  if (fd < 0) throw_system_error("fcntl F_DUPFD_CLOEXEC", "keel-workers", err);

  WorkerSlots t;
  t.fd_ = fd;
  t.mapped_bytes_ = slots_offset() + count * sizeof(WorkerSlot);
  if (::ftruncate(fd, static_cast<off_t>(t.mapped_bytes_)) != 0)
    throw_system_error("ftruncate", "keel-workers", errno);
  void* p = ::mmap(nullptr, t.mapped_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_system_error("mmap", "keel-workers", errno);
  t.header_ = new (p) Header{};
  t.header_->magic = Header::kMagic;
  t.header_->count = count;
  t.header_->supervisor_pid = static_cast<uint64_t>(::getpid());
  t.header_->endpoints_bytes = text.size();
  std::memcpy(t.header_->endpoints, text.data(), text.size());
  for (size_t i = 0; i < count; ++i)
    new (static_cast<char*>(p) + slots_offset() + i * sizeof(WorkerSlot)) WorkerSlot{};
  return t;
}

WorkerSlots WorkerSlots::attach(int fd) {
  WorkerSlots t;
  t.fd_ = fd;
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < static_cast<off_t>(slots_offset()))
    throw Error("worker: descriptor " + std::to_string(fd) +
                " is not a keel workers table (was this process started by keel --workers?)");
  t.mapped_bytes_ = static_cast<size_t>(size);
  void* p = ::mmap(nullptr, t.mapped_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_system_error("mmap", "keel-workers", errno);
  t.header_ = static_cast<Header*>(p);
  if (t.header_->magic != Header::kMagic ||
      slots_offset() + t.header_->count * sizeof(WorkerSlot) > t.mapped_bytes_ ||
      t.header_->endpoints_bytes > sizeof(Header::endpoints))
    throw Error("worker: descriptor " + std::to_string(fd) + " holds no valid workers table");
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // nothing this worker might run needs it
  return t;
}

WorkerSlots::WorkerSlots(WorkerSlots&& other) noexcept
    : header_(std::exchange(other.header_, nullptr)),
      mapped_bytes_(std::exchange(other.mapped_bytes_, 0)),
      fd_(std::exchange(other.fd_, -1)) {}

WorkerSlots& WorkerSlots::operator=(WorkerSlots&& other) noexcept {
  if (this != &other) {
    this->~WorkerSlots();
    new (this) WorkerSlots(std::move(other));
  }
  return *this;
}

WorkerSlots::~WorkerSlots() {
  if (header_) ::munmap(header_, mapped_bytes_);
  if (fd_ >= 0) ::close(fd_);
}

size_t WorkerSlots::size() const noexcept {
  return header_ ? header_->count : 0;
}

WorkerSlot& WorkerSlots::slot(size_t index) const {
  if (index >= size()) throw Error("worker slot " + std::to_string(index) + " out of range");
  char* base = reinterpret_cast<char*>(header_) + slots_offset();
  return *std::launder(reinterpret_cast<WorkerSlot*>(base + index * sizeof(WorkerSlot)));
}

pid_t WorkerSlots::supervisor_pid() const noexcept {
  return header_ ? static_cast<pid_t>(header_->supervisor_pid) : 0;
}

std::vector<Endpoint> WorkerSlots::endpoints() const {
  std::vector<Endpoint> out;
  if (!header_) return out;
  std::string_view text(header_->endpoints, header_->endpoints_bytes);
  while (!text.empty()) {
    size_t end = text.find('\n');
    out.push_back(Endpoint::parse(text.substr(0, end)));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  return out;
}

void bind_worker_to_supervisor(const WorkerSlots& slots) {
  // SIGTERM rather than SIGKILL: an orphaned worker drains its clients like a stopped one.
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) throw_system_error("prctl", "PDEATHSIG", errno);
  // The supervisor may have died before the line above took effect.
  if (::getppid() != slots.supervisor_pid()) throw Error("worker: the supervisor has gone");
}

}  // namespace keel
