// The concurrency models by name, and one place that builds an engine for a model, so the CLI
// and the tests choose a model without naming a concrete engine class.
// Thread safety: free functions; make_engine from the owning thread.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "keel/engine/engine.h"
#include "keel/net/loop_pool.h"
#include "keel/net/tcp_server.h"

namespace keel {

enum class Model {
  reactor,    // event loops (the pool's threads); tens of thousands of connections
  threads,    // a thread per connection doing its own I/O
  processes,  // a process per connection (services with connections_independent() only)
};

const char* to_string(Model model) noexcept;
std::optional<Model> parse_model(std::string_view text) noexcept;

// Builds the engine for model. pool drives the reactor (the other models ignore it); pool and
// service outlive the engine. Throws Error when the service cannot run under model.
std::unique_ptr<Engine> make_engine(Model model, LoopPool& pool, ServerOptions options,
                                    Service& service);

}  // namespace keel
