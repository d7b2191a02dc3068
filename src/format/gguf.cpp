// SPDX-License-Identifier: Apache-2.0
#include "format/gguf.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/hash.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

namespace rabbit {

namespace {

constexpr uint64_t k_max_key = 65535;      // the specification's bound on a key's length
constexpr uint64_t k_max_tensor_name = 1024; // GGML's is 64; generous, but not a gigabyte
constexpr int k_max_depth = 8;               // nested arrays
constexpr uint32_t k_max_dims = 4;

size_t scalar_size(GgufType t) {
    switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
    case GgufType::string: case GgufType::array: return 0;
    }
    return 0;
}

bool is_signed(GgufType t) { return t == GgufType::i8 || t == GgufType::i16 || t == GgufType::i32 || t == GgufType::i64; }

std::optional<int64_t> int_of(GgufType t, uint64_t bits) {
    const size_t n = scalar_size(t);
    if (t == GgufType::f32 || t == GgufType::f64 || n == 0) return std::nullopt;
    if (is_signed(t)) {
        const unsigned shift = unsigned(64 - 8 * n);
        return int64_t(bits << shift) >> shift; // sign-extend
    }
    if (bits > uint64_t(INT64_MAX)) return std::nullopt;
    return int64_t(bits);
}

std::optional<double> number_of(GgufType t, uint64_t bits) {
    if (t == GgufType::f32) { // the shortest decimal that reads back as this float: 1e-05, not 9.99999975e-06
        float f;
        uint32_t b = uint32_t(bits);
        std::memcpy(&f, &b, 4);
        char buf[32];
        for (int digits = 1; digits <= 9; ++digits) {
            std::snprintf(buf, sizeof buf, "%.*g", digits, double(f));
            if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
        }
        return double(f);
    }
    if (t == GgufType::f64) {
        double d;
        std::memcpy(&d, &bits, 8);
        return d;
    }
    if (t == GgufType::u64) return double(bits);
    auto i = int_of(t, bits);
    if (!i) return std::nullopt;
    return double(*i);
}

uint64_t load_le(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

} // namespace

const char* gguf_type_name(GgufType t) {
    switch (t) {
    case GgufType::u8: return "u8";
    case GgufType::i8: return "i8";
    case GgufType::u16: return "u16";
    case GgufType::i16: return "i16";
    case GgufType::u32: return "u32";
    case GgufType::i32: return "i32";
    case GgufType::f32: return "f32";
    case GgufType::boolean: return "bool";
    case GgufType::string: return "string";
    case GgufType::array: return "array";
    case GgufType::u64: return "u64";
    case GgufType::i64: return "i64";
    case GgufType::f64: return "f64";
    }
    return "?";
}

std::optional<int64_t> GgufValue::as_int() const { return int_of(type, bits); }
std::optional<double> GgufValue::as_number() const { return number_of(type, bits); }
std::optional<bool> GgufValue::as_bool() const {
    if (type != GgufType::boolean) return std::nullopt;
    return bits != 0;
}
const std::string* GgufValue::as_string() const { return type == GgufType::string ? &str : nullptr; }

std::optional<int64_t> GgufValue::int_at(uint64_t i) const {
    const size_t n = scalar_size(elem);
    if (type != GgufType::array || n == 0 || i >= count) return std::nullopt;
    return int_of(elem, load_le(reinterpret_cast<const uint8_t*>(raw.data()) + i * n, n));
}

std::optional<double> GgufValue::number_at(uint64_t i) const {
    const size_t n = scalar_size(elem);
    if (type != GgufType::array || n == 0 || i >= count) return std::nullopt;
    return number_of(elem, load_le(reinterpret_cast<const uint8_t*>(raw.data()) + i * n, n));
}

// Reads a GGUF header front to back over bytes it may not trust: every length and count is
// checked against what is left before anything is allocated for it.
class GgufParser {
public:
    GgufParser(const uint8_t* data, uint64_t size, const std::string& path) : p_(data), size_(size), path_(path) {}

    GgufFile parse() {
        GgufFile f;
        f.path_ = path_;
        f.file_size_ = size_;
        if (size_ < 4 || std::memcmp(p_, "GGUF", 4) != 0) throw bad("does not start with the GGUF magic");
        pos_ = 4;
        f.version_ = uint32_t(u(4, "version"));
        if (f.version_ == 1) throw unsupported(path_, "is GGUF version 1, which rabbit does not read (versions 2 and 3)");
        if (f.version_ != 2 && f.version_ != 3)
            throw bad("has GGUF version " + std::to_string(f.version_) + "; expected 2 or 3");
        const uint64_t n_tensors = u(8, "tensor count");
        const uint64_t n_kv = u(8, "metadata count");
        // Each pair takes at least 13 bytes, each tensor info at least 28: a count beyond
        // what the file can hold is refused before anything is sized by it.
        if (n_kv > left() / 13) throw bad("claims " + std::to_string(n_kv) + " metadata pairs, more than the file holds");
        for (uint64_t i = 0; i < n_kv; ++i) read_kv(f);
        read_alignment(f);
        if (n_tensors > left() / 28) throw bad("claims " + std::to_string(n_tensors) + " tensors, more than the file holds");
        for (uint64_t i = 0; i < n_tensors; ++i) read_tensor_info(f);
        const uint64_t a = f.alignment_;
        f.data_start_ = pos_ + (a - pos_ % a) % a;
        place_tensors(f);
        f.header_hash_ = hash_bytes(p_, size_t(std::min(f.data_start_, size_)));
        return f;
    }

private:
    Error bad(const std::string& what) const { return bad_input(path_, what); }
    uint64_t left() const { return size_ - pos_; }

    void need(uint64_t n, const std::string& what) const {
        if (n > left())
            throw bad("is truncated: " + what + " at byte " + std::to_string(pos_) + " runs past the end (" +
                      std::to_string(size_) + " bytes)");
    }
    uint64_t u(size_t n, const std::string& what) {
        need(n, what);
        uint64_t v = load_le(p_ + pos_, n);
        pos_ += n;
        return v;
    }
    std::string str(uint64_t max_len, const std::string& what) {
        const uint64_t len = u(8, what + " length");
        if (len > max_len) throw bad(what + " is " + std::to_string(len) + " bytes long, over the limit of " + std::to_string(max_len));
        need(len, what);
        std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
        pos_ += len;
        return s;
    }
    GgufType type(const std::string& what) {
        const uint64_t t = u(4, what + " type");
        if (t > uint64_t(GgufType::f64)) throw bad(what + " has value type " + std::to_string(t) + "; GGUF has types 0 to 12");
        return GgufType(t);
    }

    GgufValue value(GgufType t, const std::string& what, int depth) {
        GgufValue v;
        v.type = t;
        if (t == GgufType::string) {
            v.str = str(left(), what);
        } else if (t == GgufType::array) {
            if (depth >= k_max_depth) throw bad(what + " nests arrays more than " + std::to_string(k_max_depth) + " deep");
            v.elem = type(what + " element");
            v.count = u(8, what + " element count");
            const size_t es = scalar_size(v.elem);
            // Strings take at least 8 bytes (their length), arrays 12 (type and count).
            const uint64_t min_size = es ? es : v.elem == GgufType::string ? 8 : 12;
            if (v.count > left() / min_size)
                throw bad(what + " claims " + std::to_string(v.count) + " elements, more than the file holds");
            if (es) {
                v.raw.assign(reinterpret_cast<const char*>(p_ + pos_), size_t(v.count * es));
                pos_ += v.count * es;
            } else {
                v.items.reserve(size_t(v.count));
                for (uint64_t i = 0; i < v.count; ++i) v.items.push_back(value(v.elem, what, depth + 1));
            }
        } else {
            v.bits = u(scalar_size(t), what);
            if (t == GgufType::boolean && v.bits > 1) throw bad(what + " is a bool of value " + std::to_string(v.bits));
        }
        return v;
    }

    void read_kv(GgufFile& f) {
        std::string key = str(k_max_key, "a metadata key");
        const std::string what = "metadata '" + key + "'";
        GgufType t = type(what);
        GgufValue v = value(t, what, 0);
        if (!f.kv_index_.emplace(key, f.kv_.size()).second) throw bad("holds " + what + " twice");
        f.kv_.emplace_back(std::move(key), std::move(v));
    }

    void read_alignment(GgufFile& f) {
        const GgufValue* a = f.find("general.alignment");
        if (!a) return;
        auto n = a->as_int();
        if (a->type != GgufType::u32 || !n || *n == 0 || (*n & (*n - 1)) != 0)
            throw bad("general.alignment must be a u32 power of two");
        f.alignment_ = uint64_t(*n);
    }

    void read_tensor_info(GgufFile& f) {
        GgufTensorInfo t;
        t.name = str(k_max_tensor_name, "a tensor name");
        const std::string what = "tensor '" + t.name + "'";
        const uint64_t n_dims = u(4, what + " dimension count");
        if (n_dims == 0 || n_dims > k_max_dims)
            throw bad(what + " has " + std::to_string(n_dims) + " dimensions; GGUF allows 1 to 4");
        for (uint64_t d = 0; d < n_dims; ++d) {
            t.ne.push_back(u(8, what + " dimension"));
            if (t.ne.back() == 0) throw bad(what + " has a dimension of 0"); // no weight is empty
        }
        t.shape.assign(t.ne.rbegin(), t.ne.rend());
        t.ggml_type = uint32_t(u(4, what + " type"));
        auto dt = dtype_from_ggml(t.ggml_type);
        if (!dt) {
            const std::string name = ggml_type_name(t.ggml_type);
            if (name.rfind("type ", 0) == 0) throw bad(what + " has GGML " + name + ", which GGML does not define");
            throw unsupported(path_, what + " has type " + name + ", which rabbit does not read " +
                                         "(F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K)");
        }
        t.dtype = *dt;
        if (!shape_fits_blocks(t.shape, t.dtype))
            throw bad(what + " has rows of " + std::to_string(t.ne[0]) + " elements, not a whole number of " +
                      ggml_type_name(t.ggml_type) + " blocks (" + std::to_string(dtype_block(t.dtype)) + ")");
        auto nbytes = shape_bytes(t.shape, t.dtype);
        if (!nbytes) throw bad(what + " has a shape whose size overflows 64 bits");
        t.nbytes = *nbytes;
        t.offset = u(8, what + " offset"); // relative to the data section until place_tensors
        if (!f.tensor_index_.emplace(t.name, f.tensors_.size()).second) throw bad("holds " + what + " twice");
        f.tensors_.push_back(std::move(t));
    }

    // Each tensor aligned and inside the file, once the data section's start is known.
    void place_tensors(GgufFile& f) const {
        const uint64_t data_bytes = f.data_start_ <= size_ ? size_ - f.data_start_ : 0;
        for (auto& t : f.tensors_) {
            const std::string what = "tensor '" + t.name + "'";
            if (t.offset % f.alignment_ != 0)
                throw bad(what + " starts at data offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
                          std::to_string(f.alignment_));
            if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset)
                throw bad("is truncated: " + what + " (" + std::to_string(t.nbytes) + " bytes at data offset " +
                          std::to_string(t.offset) + ") runs past the end of the file");
            t.offset += f.data_start_;
        }
    }

    const uint8_t* p_;
    uint64_t size_;
    const std::string& path_;
    uint64_t pos_ = 0;
};

GgufFile GgufFile::parse(const uint8_t* data, uint64_t size, const std::string& path) {
    return GgufParser(data, size, path).parse();
}

GgufFile GgufFile::open(const std::string& path) {
    if (!path_exists(path)) throw bad_input(path, "no such file");
    if (is_directory(path)) throw bad_input(path, "is a directory, not a GGUF file");
    MappedFile m(path); // the header is parsed in place; the tensor data is never touched
    return parse(m.data(), m.size(), path);
}

const GgufValue* GgufFile::find(const std::string& key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

namespace {

Error wrong_type(const GgufFile& f, const std::string& key, const GgufValue& v, const char* expected) {
    std::string got = gguf_type_name(v.type);
    if (v.type == GgufType::array) got += " of " + std::string(gguf_type_name(v.elem));
    return bad_input(f.path(), "metadata '" + key + "' is " + got + "; expected " + expected);
}

} // namespace

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (!v->as_string()) throw wrong_type(*this, key, *v, "a string");
    return v->str;
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    auto i = v->as_int();
    if (!i || v->type == GgufType::boolean) throw wrong_type(*this, key, *v, "an integer");
    return i;
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    auto d = v->as_number();
    if (!d || v->type == GgufType::boolean) throw wrong_type(*this, key, *v, "a number");
    return d;
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    auto b = v->as_bool();
    if (!b) throw wrong_type(*this, key, *v, "a bool");
    return b;
}

std::optional<std::vector<std::string>> GgufFile::get_strings(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::array || v->elem != GgufType::string) throw wrong_type(*this, key, *v, "an array of strings");
    std::vector<std::string> out;
    out.reserve(v->items.size());
    for (const auto& s : v->items) out.push_back(s.str);
    return out;
}

std::optional<std::vector<double>> GgufFile::get_floats(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::array || !scalar_size(v->elem) || v->elem == GgufType::boolean)
        throw wrong_type(*this, key, *v, "an array of numbers");
    std::vector<double> out(size_t(v->count));
    for (uint64_t i = 0; i < v->count; ++i) out[i] = *v->number_at(i);
    return out;
}

std::optional<std::vector<int64_t>> GgufFile::get_ints(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type != GgufType::array || v->elem == GgufType::f32 || v->elem == GgufType::f64 || !scalar_size(v->elem))
        throw wrong_type(*this, key, *v, "an array of integers");
    std::vector<int64_t> out(size_t(v->count));
    for (uint64_t i = 0; i < v->count; ++i) {
        auto x = v->int_at(i);
        if (!x) throw bad_input(path_, "metadata '" + key + "' holds an integer over 2^63");
        out[i] = *x;
    }
    return out;
}

std::string GgufFile::need_string(const std::string& key) const {
    auto s = get_string(key);
    if (!s) throw bad_input(path_, "has no metadata '" + key + "'");
    return *s;
}

int64_t GgufFile::need_int(const std::string& key) const {
    auto i = get_int(key);
    if (!i) throw bad_input(path_, "has no metadata '" + key + "'");
    return *i;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

} // namespace rabbit

// --- split sets ----------------------------------------------------------------------------

namespace rabbit {

namespace {

std::string part_name(const std::string& prefix, uint64_t no, uint64_t count) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "-%05llu-of-%05llu.gguf", static_cast<unsigned long long>(no),
                  static_cast<unsigned long long>(count));
    return prefix + buf;
}

// "DIR/NAME-00002-of-00003.gguf" -> "DIR/NAME", or nullopt when the path has no such tail.
std::optional<std::string> split_prefix(const std::string& path) {
    const size_t tail = std::strlen("-00001-of-00003.gguf");
    if (path.size() <= tail) return std::nullopt;
    const std::string t = path.substr(path.size() - tail);
    auto digits = [&](size_t from) {
        for (size_t i = from; i < from + 5; ++i)
            if (t[i] < '0' || t[i] > '9') return false;
        return true;
    };
    if (t[0] != '-' || !digits(1) || t.compare(6, 4, "-of-") != 0 || !digits(10) || t.compare(15, 5, ".gguf") != 0)
        return std::nullopt;
    return path.substr(0, path.size() - tail);
}

// split.no and split.count of a part, as gguf-split writes them (u16).
std::pair<int64_t, int64_t> split_keys(const GgufFile& f) {
    const int64_t no = f.get_int("split.no").value_or(0);
    const int64_t count = f.get_int("split.count").value_or(1);
    if (count < 1 || count > 99999 || no < 0 || no >= count)
        throw bad_input(f.path(), "has split.no " + std::to_string(no) + " and split.count " + std::to_string(count) +
                                      "; expected 0 <= split.no < split.count");
    return {no, count};
}

} // namespace

std::pair<const GgufFile*, const GgufTensorInfo*> GgufSet::find_tensor(const std::string& name) const {
    for (const auto& p : parts)
        if (const GgufTensorInfo* t = p.find_tensor(name)) return {&p, t};
    return {nullptr, nullptr};
}

GgufSet open_gguf_set(const std::string& path) {
    GgufSet set;
    GgufFile given = GgufFile::open(path);
    const auto [no, count] = split_keys(given);
    if (count == 1) {
        set.parts.push_back(std::move(given));
        return set;
    }
    auto prefix = split_prefix(path);
    if (!prefix)
        throw bad_input(path, "is part " + std::to_string(no + 1) + " of a " + std::to_string(count) +
                                  "-part split set, but its name does not end in -NNNNN-of-NNNNN.gguf");
    for (int64_t i = 0; i < count; ++i) {
        const std::string p = part_name(*prefix, uint64_t(i + 1), uint64_t(count));
        if (i == no) {
            set.parts.push_back(std::move(given));
            continue;
        }
        if (!path_exists(p))
            throw bad_input(p, "no such file: part " + std::to_string(i + 1) + " of the " + std::to_string(count) +
                                   "-part split set " + path + " belongs to");
        set.parts.push_back(GgufFile::open(p));
        const auto [pno, pcount] = split_keys(set.parts.back());
        if (pno != i || pcount != count)
            throw bad_input(p, "says it is part " + std::to_string(pno + 1) + " of " + std::to_string(pcount) +
                                   "; its name says part " + std::to_string(i + 1) + " of " + std::to_string(count));
    }
    std::set<std::string> names;
    uint64_t total = 0;
    for (const auto& part : set.parts)
        for (const auto& t : part.tensors()) {
            if (!names.insert(t.name).second)
                throw bad_input(part.path(), "holds tensor '" + t.name + "', which an earlier part of its split set holds too");
            ++total;
        }
    if (auto want = set.first().get_int("split.tensors.count"); want && uint64_t(*want) != total)
        throw bad_input(set.first().path(), "says its split set holds " + std::to_string(*want) + " tensors; its " +
                                                std::to_string(count) + " parts hold " + std::to_string(total));
    return set;
}

bool looks_like_gguf(const std::string& path) {
    if (!path_exists(path) || is_directory(path)) return false;
    if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) return true;
    try {
        InputFile f(path);
        char magic[4] = {};
        if (f.size() < 4) return false;
        f.read_at(magic, 4, 0);
        return std::memcmp(magic, "GGUF", 4) == 0;
    } catch (const Error&) {
        return false;
    }
}

} // namespace rabbit
