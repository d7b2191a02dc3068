// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/bpe.h"

#include "common/error.h"
#include "common/hash.h"
#include "common/json_read.h"
#include "common/utf8.h"

#include <spdlog/fmt/fmt.h>

#include <queue>

namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::object;

namespace {

constexpr size_t k_cache_capacity = 10000; // words, as the reference
constexpr size_t k_cache_max_word = 256;   // bytes; longer words are not cached

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

} // namespace

// ---- StringIdMap ---------------------------------------------------------------------------

void StringIdMap::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap > slots_.size()) {
        std::vector<Slot> old;
        old.swap(slots_);
        slots_.assign(cap, Slot{});
        for (const auto& s : old)
            if (s.id >= 0) slots_[probe(std::string_view(arena_).substr(s.offset, s.length),
                                        hash_bytes(arena_.data() + s.offset, s.length))] = s;
    }
}

size_t StringIdMap::probe(std::string_view key, uint64_t h) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = size_t(h) & mask;; i = (i + 1) & mask) {
        const Slot& s = slots_[i];
        if (s.id < 0) return i;
        if (s.length == key.size() && std::string_view(arena_).substr(s.offset, s.length) == key) return i;
    }
}

void StringIdMap::grow() { reserve(slots_.empty() ? 16 : slots_.size()); }

bool StringIdMap::insert(std::string_view key, int32_t id) {
    if ((count_ + 1) * 2 > slots_.size()) reserve((count_ + 1) * 2);
    const size_t i = probe(key, hash_bytes(key.data(), key.size()));
    Slot& s = slots_[i];
    if (s.id >= 0) {
        s.id = id;
        return false;
    }
    s.offset = uint32_t(arena_.size());
    s.length = uint32_t(key.size());
    s.id = id;
    arena_.append(key);
    ++count_;
    return true;
}

std::optional<int32_t> StringIdMap::find(std::string_view key) const {
    if (slots_.empty()) return std::nullopt;
    const Slot& s = slots_[probe(key, hash_bytes(key.data(), key.size()))];
    if (s.id < 0) return std::nullopt;
    return s.id;
}

// ---- BpeModel ------------------------------------------------------------------------------

const std::string* BpeModel::id_to_token(int32_t id) const {
    if (id < 0 || size_t(id) >= vocab_r_.size() || !has_id_[size_t(id)]) return nullptr;
    return &vocab_r_[size_t(id)];
}

namespace {

// model.<key> as a string, or nullopt when it is missing or null.
std::optional<std::string> model_string(object m, const char* key, const std::string& file) {
    auto e = json_field(m, key);
    if (!e || e->is_null()) return std::nullopt;
    return json_to_string(*e, file, std::string("model.") + key);
}

// model.<key> as a boolean, false when it is missing or null.
bool model_flag(object m, const char* key, const std::string& file) {
    auto e = json_field(m, key);
    return e && !e->is_null() && json_to_bool(*e, file, std::string("model.") + key);
}

// The options rabbit does not implement, refused unless set to their neutral values.
void refuse_unsupported_options(object m, const std::string& file) {
    if (auto d = json_field(m, "dropout"); d && !d->is_null() && json_to_double(*d, file, "model.dropout") != 0.0)
        throw unsupported(file, "BPE dropout is not supported (it makes encoding random)");
    if (auto p = model_string(m, "continuing_subword_prefix", file); p && !p->empty())
        throw unsupported(file, "BPE continuing_subword_prefix '" + *p + "' is not supported");
    if (auto s = model_string(m, "end_of_word_suffix", file); s && !s->empty())
        throw unsupported(file, "BPE end_of_word_suffix '" + *s + "' is not supported");
}

// model.vocab into the string -> id map and its reverse (by_id[id], has_id[id]).
void read_vocab(object m, const std::string& file, StringIdMap& vocab_map, std::vector<std::string>& by_id,
                std::vector<bool>& has_id) {
    auto vocab_el = json_field(m, "vocab");
    if (!vocab_el) throw bad_input(file, "model has no vocab");
    object vocab = json_to_object(*vocab_el, file, "model.vocab");
    vocab_map.reserve(vocab.size());
    int32_t max_id = -1;
    for (auto kv : vocab) {
        const uint64_t id = json_to_uint(kv.value, file, "model.vocab entry '" + std::string(kv.key) + "'");
        if (id > 0x7fffffff) throw bad_input(file, "model.vocab id " + std::to_string(id) + " is too large");
        vocab_map.insert(kv.key, int32_t(id));
        max_id = std::max(max_id, int32_t(id));
    }
    by_id.assign(size_t(max_id + 1), std::string());
    has_id.assign(size_t(max_id + 1), false);
    for (auto kv : vocab) {
        const auto id = size_t(json_to_uint(kv.value, file, "model.vocab"));
        by_id[id] = std::string(kv.key); // several strings with one id: the last wins, as the reference
        has_id[id] = true;
    }
}

// The two tokens of merge number rank + 1: the legacy string "a b" or the pair ["a", "b"].
std::pair<std::string, std::string> merge_tokens(element entry, uint32_t rank, const std::string& file) {
    if (entry.is_string()) {
        // The legacy form "a b": exactly one space.
        std::string line = json_to_string(entry, file, "model.merges entry");
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
            throw bad_input(file, "merge " + std::to_string(rank + 1) + " ('" + line + "') is not two tokens separated by one space");
        return {line.substr(0, sp), line.substr(sp + 1)};
    }
    auto pair = json_to_array(entry, file, "model.merges entry");
    if (pair.size() != 2) throw bad_input(file, "merge " + std::to_string(rank + 1) + " is not a pair");
    return {json_to_string(pair.at(0).value(), file, "model.merges entry"),
            json_to_string(pair.at(1).value(), file, "model.merges entry")};
}

} // namespace

void BpeModel::load(object m, const std::string& file) {
    BpeModel& bpe = *this;
    refuse_unsupported_options(m, file);
    bpe.byte_fallback_ = model_flag(m, "byte_fallback", file);
    bpe.fuse_unk_ = model_flag(m, "fuse_unk", file);
    bpe.ignore_merges_ = model_flag(m, "ignore_merges", file);

    read_vocab(m, file, bpe.vocab_, bpe.vocab_r_, bpe.has_id_);

    if (auto unk = model_string(m, "unk_token", file)) {
        // The reference loads such a file and fails only when a character needs the unk.
        auto id = bpe.vocab_.find(*unk);
        if (id) bpe.unk_id_ = *id;
        else bpe.missing_unk_ = file + ": unk_token '" + *unk + "' is not in the vocabulary";
    }
    for (int b = 0; b < 256; ++b) {
        auto id = bpe.vocab_.find(fmt::format("<0x{:02X}>", b));
        bpe.byte_ids_[size_t(b)] = id ? *id : -1;
    }

    auto merges_el = json_field(m, "merges");
    if (!merges_el) throw bad_input(file, "model has no merges");
    auto merges = json_to_array(*merges_el, file, "model.merges");
    bpe.merges_.reserve(merges.size());
    uint32_t rank = 0;
    std::string joined;
    for (auto entry : merges) {
        const auto [a, b] = merge_tokens(entry, rank, file);
        auto ia = bpe.vocab_.find(a), ib = bpe.vocab_.find(b);
        joined = a + b;
        auto inew = bpe.vocab_.find(joined);
        if (!ia || !ib || !inew)
            throw bad_input(file, "merge " + std::to_string(rank + 1) + " ('" + a + "', '" + b + "') names a token not in the vocabulary ('" +
                                      (!ia ? a : !ib ? b : joined) + "')");
        bpe.merges_[pair_key(*ia, *ib)] = Merge{rank, *inew}; // a repeated pair keeps its last rank
        ++rank;
    }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_)
        if (auto id = vocab_.find(word)) {
            out.push_back(*id);
            return;
        }
    if (word.size() < k_cache_max_word) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto it = cache_.find(std::string(word));
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t before = out.size();
    merge_word(word, out);
    if (word.size() < k_cache_max_word) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        if (cache_.size() < k_cache_capacity) cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + long(before), out.end()));
    }
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
    struct Symbol {
        int32_t id;
        int prev, next; // -1: none
        bool alive;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(w.size());
    auto add = [&](int32_t id) {
        const int n = int(symbols.size());
        if (n > 0) symbols.back().next = n;
        symbols.push_back({id, n - 1, -1, true});
    };
    int32_t unk = -1; // a pending unk, fused over consecutive unknown characters
    for (size_t i = 0; i < w.size();) {
        const size_t b = i;
        size_t len = utf8_sequence_length(w, i);
        if (len == 0) len = 1; // the pipeline only passes valid UTF-8
        i += len;
        const std::string_view ch = w.substr(b, len);
        if (auto id = vocab_.find(ch)) {
            if (unk >= 0) {
                add(unk);
                unk = -1;
            }
            add(*id);
            continue;
        }
        if (byte_fallback_) {
            bool all = true;
            for (unsigned char c : ch) all &= byte_ids_[c] >= 0;
            if (all) {
                // As the reference: bytes go in without flushing a pending unk first.
                for (unsigned char c : ch) add(byte_ids_[c]);
                continue;
            }
        }
        if (!missing_unk_.empty()) throw Error(ExitCode::bad_input, missing_unk_ + ", and the text needs it");
        if (unk_id_) {
            if (unk >= 0 && !fuse_unk_) add(unk);
            if (unk < 0 || !fuse_unk_) unk = *unk_id_;
        }
    }
    if (unk >= 0) add(unk);

    // Lowest rank first; among equal ranks the leftmost.
    struct Candidate {
        uint32_t rank;
        int pos;
        int32_t new_id;
        bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate> queue;
    auto consider = [&](int left) {
        const int right = symbols[size_t(left)].next;
        if (right < 0) return;
        auto it = merges_.find(pair_key(symbols[size_t(left)].id, symbols[size_t(right)].id));
        if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
    };
    for (int k = 0; k + 1 < int(symbols.size()); ++k) consider(k);
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[size_t(top.pos)];
        if (!left.alive || left.next < 0) continue;
        Symbol& right = symbols[size_t(left.next)];
        // Stale: the pair changed since this entry was queued.
        auto it = merges_.find(pair_key(left.id, right.id));
        if (it == merges_.end() || it->second.new_id != top.new_id) continue;
        left.id = top.new_id;
        right.alive = false;
        left.next = right.next;
        if (right.next >= 0) symbols[size_t(right.next)].prev = top.pos;
        if (left.prev >= 0) consider(left.prev);
        consider(top.pos);
    }
    for (const auto& s : symbols)
        if (s.alive) out.push_back(s.id);
}

} // namespace rabbit
