// CLI11 checks keel's flags share.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <string>
#include <utility>

#include "keel/error.h"

namespace keel::cli {

// A floating-point flag: a finite number within [low, high]. CLI::Range alone lets "nan"
// through (every comparison with NaN is false), so a timeout of nan seconds passed.
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

// A flag whose text parse() accepts; parse throws keel::Error saying what is wrong, and that
// message is the flag's error.
template <class Parse>
CLI::Validator ParsedBy(Parse parse, std::string description) {
  return CLI::Validator(
      [parse = std::move(parse)](std::string& text) {
        try {
          parse(text);
          return std::string();
        } catch (const Error& e) {
          return std::string(e.what());
        }
      },
      std::move(description));
}

}  // namespace keel::cli
