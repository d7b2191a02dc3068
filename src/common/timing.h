// SPDX-License-Identifier: Apache-2.0
// Wall-clock intervals and the one statistic every measurement here reports.
#pragma once

#include <chrono>
#include <vector>

namespace rabbit {

using Clock = std::chrono::steady_clock;

// Seconds from t0 to now.
inline double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The median of the values (the mean of the middle two for an even count); 0 for none.
double median(std::vector<double> values);

} // namespace rabbit
