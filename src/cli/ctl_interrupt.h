// Ctrl-C for keel ctl's long-running commands (console, watch): SIGINT becomes a readable
// descriptor, so a command waiting in poll(2) can stop cleanly instead of the process dying.
// Thread safety: install() and clear() from the main thread; the handler is async-signal-safe.
#pragma once

namespace keel::cli {

// Installs the SIGINT handler once (idempotent) and returns the descriptor that becomes readable
// on each Ctrl-C; -1 if it could not be set up (Ctrl-C then ends the process as usual).
int interrupt_fd();
// Forgets Ctrl-Cs seen so far (the descriptor stops being readable).
void clear_interrupts();

}  // namespace keel::cli
