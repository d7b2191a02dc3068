// SPDX-License-Identifier: Apache-2.0
// The BPE model of tokenizer.json: a vocabulary, merge ranks, byte fallback, unk, and
// ignore_merges. A word's characters become symbols, then the lowest-ranked adjacent pair is
// merged until none is left (leftmost first among equal ranks), as the reference does.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rabbit {

// A hash map from strings to token ids, looked up by string_view without allocating.
class StringIdMap {
public:
    void reserve(size_t n);
    // False when the key was already there (its id is then replaced).
    bool insert(std::string_view key, int32_t id);
    std::optional<int32_t> find(std::string_view key) const;
    size_t size() const { return count_; }

private:
    struct Slot {
        uint32_t offset = 0, length = 0; // into arena_
        int32_t id = -1;                 // -1: empty
    };
    size_t probe(std::string_view key, uint64_t h) const;
    void grow();

    std::string arena_;
    std::vector<Slot> slots_;
    size_t count_ = 0;
};

class BpeModel {
public:
    // From the "model" object of tokenizer.json. Throws bad_input/unsupported naming `file`.
    void load(simdjson::dom::object model, const std::string& file);

    // Appends the ids of one pre-tokenized word.
    void tokenize(std::string_view word, std::vector<int32_t>& out) const;

    std::optional<int32_t> token_to_id(std::string_view token) const { return vocab_.find(token); }
    // The vocabulary string of an id, or nullptr.
    const std::string* id_to_token(int32_t id) const;
    size_t vocab_size() const { return vocab_.size(); }
    int32_t max_id() const { return int32_t(vocab_r_.size()) - 1; }

private:
    void merge_word(std::string_view word, std::vector<int32_t>& out) const;

    struct Merge {
        uint32_t rank;
        int32_t new_id;
    };
    StringIdMap vocab_;
    std::vector<std::string> vocab_r_; // by id; "" where no token has that id
    std::vector<bool> has_id_;
    std::unordered_map<uint64_t, Merge> merges_; // (left id << 32 | right id)
    std::optional<int32_t> unk_id_;
    std::string missing_unk_; // set when unk_token names no vocabulary entry
    bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
    std::array<int32_t, 256> byte_ids_{}; // "<0xXX>" tokens for byte fallback, -1 when absent

    // Words seen before, as the reference caches them (bounded).
    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

} // namespace rabbit
