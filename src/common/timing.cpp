// SPDX-License-Identifier: Apache-2.0
#include "common/timing.h"

#include <algorithm>

namespace rabbit {

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace rabbit
