// SPDX-License-Identifier: Apache-2.0
#include "engine/tree_rows.h"

#include "common/error.h"

#include <algorithm>
#include <string>

namespace rabbit {

void TreeRows::add(size_t pos, const int64_t* parents, size_t n) {
    if (!open()) base_ = pos;
    RABBIT_CHECK(pos == end(), "a draft tree's rows must follow one another");
    for (size_t i = 0; i < n; ++i) {
        const int64_t p = parents[i];
        RABBIT_CHECK(p == -1 || (p >= int64_t(base_) && p < int64_t(pos + i)),
                     "a draft tree token's parent must be -1 or an earlier row of the tree, not " + std::to_string(p));
        parent_.push_back(p);
        position_.push_back(p < 0 ? base_ : position(size_t(p)) + 1);
    }
}

void TreeRows::path(size_t row, std::vector<size_t>& out) const {
    out.clear();
    for (int64_t r = int64_t(row); r >= 0; r = parent_[size_t(r) - base_]) out.push_back(size_t(r));
    std::reverse(out.begin(), out.end());
}

void TreeRows::cut(size_t rows) {
    if (!open()) return;
    if (rows <= base_) return close();
    if (rows < end()) parent_.resize(rows - base_), position_.resize(rows - base_);
}

bool TreeRows::check_keep(size_t base, const std::vector<size_t>& rows, size_t cache_len) {
    RABBIT_CHECK(base + (rows.empty() ? 0 : rows.back() + 1) <= cache_len, "keep_rows past the end of the cache");
    RABBIT_CHECK(!open() || base == base_, "keep_rows from the first row of the draft tree");
    bool moves = false;
    for (size_t i = 0; i < rows.size(); ++i) {
        moves = moves || rows[i] != i;
        if (!open()) {
            RABBIT_CHECK(rows[i] == i, "keep_rows moves rows of a draft tree only");
            continue;
        }
        const int64_t want = i == 0 ? -1 : int64_t(base + rows[i - 1]);
        RABBIT_CHECK((i > 0 || rows[0] == 0) && rows[i] < parent_.size() && parent_[rows[i]] == want,
                     "keep_rows keeps a path of the draft tree from its first root, each row the child of the one before");
    }
    close();
    return moves;
}

} // namespace rabbit
