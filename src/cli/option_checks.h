// SPDX-License-Identifier: Apache-2.0
// Checks of option values that name the option and the value in their message, e.g.
// "--ctx -5: expected 0 (the model's maximum) or a positive number". CLI11 converts "-5" to an
// unsigned type by wrapping it (18446744073709551611), so every numeric option says here what
// it accepts; the checks read the text before that conversion. A value that is no number at all
// is left to CLI11's conversion, which names the option and the text.
//
// A failed check is a CLI::ParseError (not a CLI::ValidationError, which CLI11 would prefix with
// the option's name again): main reports it as one line with the usage exit code, as it does
// CLI11's own errors. Vector options with ->delimiter(',') are checked item by item. The tools
// (rabbit-genmodel, rabbit-tokbench) use the same checks.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace rabbit {

class OptionValueError : public CLI::ParseError {
public:
    explicit OptionValueError(const std::string& message);
};

// A whole number of at least 1 (and at most `max`, when it is not 0).
CLI::Option* positive(CLI::Option* option, double max = 0);
// A whole number of at least 0, where 0 means `zero` ("auto", "off", "no warm-up"), at most
// `max` when it is not 0.
CLI::Option* zero_or_positive(CLI::Option* option, const std::string& zero, double max = 0);
// Any number from 0 to `max` (0: no limit) where 0 is an ordinary value (a seed, a GPU number).
CLI::Option* non_negative(CLI::Option* option, double max = 0);
// A real number from 0 to `max`; `zero` says what 0 means ("greedy", "off").
CLI::Option* fraction(CLI::Option* option, double max, const std::string& zero);
// A real number above 0, at most `max` when it is not 0; `one` says what 1 means (or nothing).
CLI::Option* positive_real(CLI::Option* option, const std::string& one = "", double max = 0);
// A size such as 4G (common/units.h's parse_size); `zero` says what 0 means, or refuses it
// when empty.
CLI::Option* size_option(CLI::Option* option, const std::string& zero);

// A check of each value: `problem` returns what is wrong with it ("expected cpu or cuda"), or
// nothing; the message is "OPTION VALUE: PROBLEM".
CLI::Option* check_each(CLI::Option* option, std::function<std::string(const std::string&)> problem);

} // namespace rabbit
