#include "keel/engine/factory.h"

#include "keel/engine/processes.h"
#include "keel/engine/reactor.h"
#include "keel/engine/threads.h"
#include "keel/error.h"

namespace keel {

const char* to_string(Model model) noexcept {
  switch (model) {
    case Model::reactor: return "reactor";
    case Model::threads: return "threads";
    case Model::processes: return "processes";
  }
  return "?";
}

std::optional<Model> parse_model(std::string_view text) noexcept {
  for (Model m : {Model::reactor, Model::threads, Model::processes})
    if (text == to_string(m)) return m;
  return std::nullopt;
}

std::unique_ptr<Engine> make_engine(Model model, LoopPool& pool, ServerOptions options,
                                    Service& service) {
  switch (model) {
    case Model::reactor: return std::make_unique<ReactorEngine>(pool, std::move(options), service);
    case Model::threads:
      return std::make_unique<ThreadsEngine>(ThreadsOptions::from(options), service);
    case Model::processes: return std::make_unique<ProcessesEngine>(std::move(options), service);
  }
  throw Error("unknown model");
}

}  // namespace keel
