#include "services/files/sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <utility>

namespace keel::files {
namespace {

// SHA-256 over a live context fails only if OpenSSL itself is broken (no default provider):
// no input can cause it, and carrying on would hand out wrong digests, so it is fatal, like
// the event loop's impossible epoll failures.
[[noreturn]] void openssl_failed(const char* operation) {
  char reason[256] = "no OpenSSL error queued";
  if (unsigned long code = ERR_get_error()) ERR_error_string_n(code, reason, sizeof reason);
  std::fprintf(stderr, "keel: SHA-256 %s: %s\n", operation, reason);
  std::abort();
}

EVP_MD_CTX* new_context() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) throw std::bad_alloc();
  return ctx;
}

}  // namespace

Sha256::Sha256() : ctx_(new_context()) {
  if (EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) openssl_failed("init");
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(ctx_);
}

Sha256::Sha256(const Sha256& other) : ctx_(new_context()), finished_(other.finished_) {
  if (EVP_MD_CTX_copy_ex(ctx_, other.ctx_) != 1) openssl_failed("copy");
}

Sha256& Sha256::operator=(const Sha256& other) {
  if (this == &other) return *this;
  if (!ctx_) ctx_ = new_context();
  if (EVP_MD_CTX_copy_ex(ctx_, other.ctx_) != 1) openssl_failed("copy");
  finished_ = other.finished_;
  return *this;
}

Sha256::Sha256(Sha256&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), finished_(other.finished_) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  std::swap(ctx_, other.ctx_);
  std::swap(finished_, other.finished_);
  return *this;
}

void Sha256::update(const void* data, size_t size) {
  assert(ctx_ && !finished_);
  if (size == 0) return;
  if (EVP_DigestUpdate(ctx_, data, size) != 1) openssl_failed("update");
}

Digest Sha256::finish() {
  assert(ctx_ && !finished_);
  Digest digest;
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest.data(), &length) != 1 || length != digest.size())
    openssl_failed("finish");
  finished_ = true;
  return digest;
}

Digest Sha256::of(std::string_view bytes) {
  Digest digest;
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != digest.size())
    openssl_failed("digest");
  return digest;
}

std::string to_hex(const Digest& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * digest.size());
  for (uint8_t byte : digest) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0xf]);
  }
  return hex;
}

bool from_hex(std::string_view hex, Digest& digest) {
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() != 2 * digest.size()) return false;
  Digest parsed;
  for (size_t i = 0; i < parsed.size(); ++i) {
    int high = value(hex[2 * i]), low = value(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    parsed[i] = static_cast<uint8_t>(high << 4 | low);
  }
  digest = parsed;
  return true;
}

}  // namespace keel::files
