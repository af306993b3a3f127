// AttachView: what `keel ctl attach` prints of a hub client's bytes. A client's text may hold
// anything, so it is shown safely on the operator's terminal, and the same on a pipe:
//   - printable ASCII and well-formed UTF-8 pass through, except as below;
//   - "\" becomes "\\", so every escape is unambiguous;
//   - control characters (C0 but newline, DEL, C1 U+0080..U+009F) become "\xHH" ("\t", "\r"
//     for tab and carriage return), bytes that are not well-formed UTF-8 become "\xHH" each,
//     and the bidirectional controls (U+202A..U+202E, U+2066..U+2069) become "\u202e" etc.;
//   - newlines stay line breaks with lines and binary framing; with length framing each frame's
//     payload is one line (a newline inside it is shown as "\n").
// A UTF-8 sequence cut between two reads is kept until its rest arrives; a length frame's
// payload is shown as it arrives, so nothing is buffered beyond 4 header bytes and 3 bytes of a
// cut sequence.
// Thread safety: a value type; one owner at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace keel::cli {

// The printable form of bytes (no state: a cut UTF-8 sequence at the end is escaped).
std::string escape_for_terminal(std::string_view bytes, bool keep_newlines = true);

class AttachView {
 public:
  enum class Framing { lines, length, binary };
  explicit AttachView(Framing framing) : framing_(framing) {}

  // The printable form of the next bytes the client sent.
  std::string feed(std::string_view bytes);
  // At the end of the session: what is pending (a cut sequence, escaped), and a final newline
  // when the last line shown has none.
  std::string finish();

 private:
  void text(std::string_view bytes, bool keep_newlines, std::string& out);

  Framing framing_;
  std::string cut_;            // the start of a UTF-8 sequence cut between two feeds
  std::string header_;         // length framing: the header bytes read so far
  uint64_t frame_left_ = 0;    // length framing: payload bytes still to come
  bool in_frame_ = false;      // length framing: inside a payload
  bool at_line_start_ = true;  // the last byte shown was a newline (or none yet)
};

}  // namespace keel::cli
