// SPDX-License-Identifier: Apache-2.0
// The bookkeeping of a draft tree in a KV cache (Engine::forward_tree), shared by the engines:
// where the tree begins, each row's parent and RoPE position, each row's path, and the checks
// on what forward_tree and keep_rows are given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rabbit {

class TreeRows {
public:
    bool open() const { return !parent_.empty(); }
    size_t base() const { return base_; } // the tree's first row; the rows before it are a plain sequence
    size_t end() const { return base_ + parent_.size(); }

    // n tokens at rows [pos, pos + n), pos the cache's length (opening a tree there if none is
    // open). parents as forward_tree takes them; a bad one is an internal error.
    void add(size_t pos, const int64_t* parents, size_t n);
    size_t position(size_t row) const { return position_[row - base_]; } // row in [base, end)
    // The tree's rows that `row` attends to, from its root down to itself.   out [depth + 1]
    void path(size_t row, std::vector<size_t>& out) const;
    // The cache cut back to `rows` positions (truncate); the tree goes if nothing of it is left.
    void cut(size_t rows);
    void close() { parent_.clear(), position_.clear(); }
    // keep_rows' arguments checked against the tree (or, with none open, the rows kept in
    // place): rows increasing from 0 and, in a tree, each the child of the one before; then
    // the tree is closed. Returns whether any row moves.
    bool check_keep(size_t base, const std::vector<size_t>& rows, size_t cache_len);

private:
    size_t base_ = 0;
    std::vector<int64_t> parent_;  // [end - base] the parent row, -1 for a root
    std::vector<size_t> position_; // [end - base]
};

} // namespace rabbit
