// FilesService's per-connection state and the reply frames its two halves (files_service.cc:
// requests and downloads; files_upload.cc: uploads) build. Private to the service.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "services/files/files_service.h"

namespace keel::files {

struct FilesService::Session {
  enum class Phase {
    request,      // waiting for a request frame
    upload_data,  // taking the upload's raw bytes
    upload_end,   // waiting for PUT_END
    hashing,      // a HASH (or a resumed PUT's prefix) is computed; reading is paused
    closing,      // a bad request was answered: the rest is discarded
  };
  std::mutex mutex;  // on_data against a hash finishing on a pool thread
  Phase phase = Phase::request;
  bool holds_transfer = false;
  bool transfer_is_get = false;  // a GET's slot ends at the next request
  // The upload in progress (phase upload_data or upload_end, or hashing its prefix).
  std::optional<FileRoot::Upload> upload;
  uint64_t upload_size = 0;
  uint64_t received = 0;  // bytes in the part file
  bool replace = false;
  Sha256 hash;  // of the part file's bytes so far
};

inline std::string error_frame(ErrorCode code, std::string message) {
  Reply e;
  e.type = Type::error;
  e.code = code;
  e.message = std::move(message);
  std::string out;
  append_reply(out, e);
  return out;
}

inline std::string error_frame(const Failure& f) {
  return error_frame(f.code, f.message);
}

inline std::string reply_frame(const Reply& r) {
  std::string out;
  append_reply(out, r);
  return out;
}

}  // namespace keel::files
