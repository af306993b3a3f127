// SHA-256 for the files service: whole-file and prefix hashes (HASH, PUT_READY, PUT_DONE) and
// the running hash of an upload, over OpenSSL's EVP API.
// Thread safety: an object is used by one thread at a time; copies are independent objects.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of the services' headers

namespace keel::files {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  // A copy carries on from the same state: the hash of a prefix can be forked off a running
  // hash (PUT_READY's hash of the part file's first L bytes, then the rest of the upload).
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);
  // A moved-from Sha256 may only be destroyed or assigned to.
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // The digest of everything updated so far. Once: afterwards the object may only be
  // destroyed or assigned to (copy it first to go on hashing).
  Digest finish();

  static Digest of(std::string_view bytes);

 private:
  evp_md_ctx_st* ctx_;
  bool finished_ = false;
};

// 64 lowercase hex digits.
std::string to_hex(const Digest& digest);
// Exactly 64 hex digits, either case; false (and digest untouched) for anything else.
bool from_hex(std::string_view hex, Digest& digest);

}  // namespace keel::files
