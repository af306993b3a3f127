// A CLI11 check for a floating-point flag: a finite number within [low, high]. CLI::Range alone
// lets "nan" through (every comparison with NaN is false), so a timeout of nan seconds passed.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <string>

namespace keel::cli {

inline CLI::Validator FiniteRange(double low, double high) {
  CLI::Validator range = CLI::Range(low, high);
  return CLI::Validator(
      [range](std::string& text) mutable {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value))
          return "Value " + text + " is not a finite number";
        return range(text);
      },
      range.get_description());
}

}  // namespace keel::cli
