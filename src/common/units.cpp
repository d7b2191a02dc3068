// SPDX-License-Identifier: Apache-2.0
#include "common/units.h"

#include <spdlog/fmt/fmt.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace rabbit {

std::string format_bytes(uint64_t bytes) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = double(bytes);
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        ++u;
    }
    if (u == 0) return fmt::format("{} B", bytes);
    if (v < 10) return fmt::format("{:.2f} {}", v, units[u]);
    if (v < 100) return fmt::format("{:.1f} {}", v, units[u]);
    return fmt::format("{:.0f} {}", v, units[u]);
}

std::string format_rate(double bps) {
    if (!(bps >= 0) || !std::isfinite(bps)) return "-";
    return format_bytes(uint64_t(bps)) + "/s";
}

std::string format_duration(double s) {
    if (!(s >= 0) || !std::isfinite(s)) return "-";
    if (s < 60) return fmt::format("{:.1f}s", s);
    if (s < 3600) return fmt::format("{}m{:02}s", int(s) / 60, int(s) % 60);
    return fmt::format("{}h{:02}m", int(s) / 3600, (int(s) % 3600) / 60);
}

std::optional<uint64_t> parse_size(const std::string& text) {
    size_t i = 0;
    while (i < text.size() && (std::isdigit((unsigned char)text[i]) || text[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    std::string number = text.substr(0, i), suffix = text.substr(i);
    if (number.find('.') != number.rfind('.')) return std::nullopt;
    char* end = nullptr;
    double v = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size()) return std::nullopt;
    for (auto& ch : suffix) ch = char(std::toupper((unsigned char)ch));
    double mult;
    if (suffix.empty() || suffix == "B") mult = 1;
    else {
        const char* powers = "KMGT";
        const char* p = suffix.size() >= 1 ? std::strchr(powers, suffix[0]) : nullptr;
        if (!p || !*p) return std::nullopt;
        int e = int(p - powers) + 1;
        std::string rest = suffix.substr(1);
        if (rest.empty() || rest == "IB") mult = std::pow(1024.0, e);
        else if (rest == "B") mult = std::pow(1000.0, e);
        else return std::nullopt;
    }
    double bytes = v * mult;
    if (!(bytes >= 0) || bytes >= 1.8e19) return std::nullopt;
    return uint64_t(bytes + 0.5);
}

} // namespace rabbit
