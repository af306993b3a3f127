#include "keel/operator.h"
#include "keel/service.h"

namespace keel {

const OperatorHooks& operator_hooks(const Service& service) noexcept {
  struct Defaults final : OperatorHooks {};
  static const Defaults defaults;
  if (auto* hooks = dynamic_cast<const OperatorHooks*>(&service)) return *hooks;
  return defaults;
}

}  // namespace keel
