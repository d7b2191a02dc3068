// SPDX-License-Identifier: Apache-2.0
#include "cli/option_checks.h"

#include "common/error.h"
#include "common/units.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <cstdlib>
#include <optional>

namespace rabbit {

namespace {

// The text as a number, when all of it is one; nullopt leaves it to CLI11's conversion.
std::optional<double> number_in(const std::string& text) {
    if (text.empty()) return std::nullopt;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || std::isnan(v)) return std::nullopt;
    return v;
}

// " (1 to 16)" for a limit, nothing without one.
std::string upto(double lo, double max) { return max > 0 ? fmt::format(" ({} to {})", lo, max) : std::string(); }

} // namespace

OptionValueError::OptionValueError(const std::string& message)
    : CLI::ParseError("OptionValueError", message, int(ExitCode::usage)) {}

CLI::Option* check_each(CLI::Option* option, std::function<std::string(const std::string&)> problem) {
    const std::string name = option->get_name();
    return option->check(CLI::Validator(
        [name, problem](std::string& value) {
            const std::string p = problem(value);
            if (!p.empty()) throw OptionValueError(name + " " + value + ": " + p);
            return std::string();
        },
        ""));
}

CLI::Option* positive(CLI::Option* option, double max) {
    return check_each(option, [max](const std::string& text) -> std::string {
        const auto v = number_in(text);
        if (!v) return {};
        if (*v <= 0) return "expected a positive number" + upto(1, max);
        if (max > 0 && *v > max) return fmt::format("expected 1 to {}", max);
        return {};
    });
}

CLI::Option* zero_or_positive(CLI::Option* option, const std::string& zero, double max) {
    return check_each(option, [zero, max](const std::string& text) -> std::string {
        const auto v = number_in(text);
        if (!v) return {};
        if (*v < 0) return "expected 0 (" + zero + ") or a positive number" + upto(0, max);
        if (max > 0 && *v > max) return fmt::format("expected 0 ({}) to {}", zero, max);
        return {};
    });
}

CLI::Option* non_negative(CLI::Option* option, double max) {
    return check_each(option, [max](const std::string& text) -> std::string {
        const auto v = number_in(text);
        if (!v) return {};
        if (*v < 0) return max > 0 ? fmt::format("expected 0 to {}", max) : "expected 0 or a positive number";
        if (max > 0 && *v > max) return fmt::format("expected 0 to {}", max);
        return {};
    });
}

CLI::Option* fraction(CLI::Option* option, double max, const std::string& zero) {
    return check_each(option, [max, zero](const std::string& text) -> std::string {
        const auto v = number_in(text);
        if (!v) return {};
        if (*v < 0 || *v > max) return fmt::format("expected a number from 0 ({}) to {}", zero, max);
        return {};
    });
}

CLI::Option* positive_real(CLI::Option* option, const std::string& one, double max) {
    return check_each(option, [one, max](const std::string& text) -> std::string {
        const auto v = number_in(text);
        if (!v) return {};
        const std::string what = "expected a number above 0" + (one.empty() ? "" : " (1: " + one + ")");
        if (*v <= 0) return max > 0 ? what + fmt::format(", at most {}", max) : what;
        if (max > 0 && *v > max) return fmt::format("expected at most {}", max);
        return {};
    });
}

CLI::Option* size_option(CLI::Option* option, const std::string& zero) {
    return check_each(option, [zero](const std::string& text) -> std::string {
        if (!text.empty() && text[0] == '-')
            return zero.empty() ? "expected a size above 0, such as 4G, not a negative one"
                                : "expected a size such as 4G (0: " + zero + "), not a negative one";
        const auto v = parse_size(text);
        if (!v) return "expected a size such as 4G, 512M or 4096";
        if (*v == 0 && zero.empty()) return "expected a size above 0, such as 4G";
        return {};
    });
}

} // namespace rabbit
