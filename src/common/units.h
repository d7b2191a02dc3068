// SPDX-License-Identifier: Apache-2.0
// Human-readable sizes, rates and durations, and the size syntax of the command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rabbit {

// 1536 -> "1.5 KiB", 15200000000 -> "14.2 GiB". Binary units, as memory budgets are.
std::string format_bytes(uint64_t bytes);
// Bytes per second -> "1.23 GiB/s".
std::string format_rate(double bytes_per_second);
// Seconds -> "1m40s", "2h05m", "12.3s".
std::string format_duration(double seconds);

// "4G", "4GiB", "512M", "1.5G", "4096": K, M, G, T (with optional "iB") are powers of 1024;
// "KB", "MB", "GB", "TB" are powers of 1000. nullopt when malformed.
std::optional<uint64_t> parse_size(const std::string& text);

} // namespace rabbit
