// SPDX-License-Identifier: Apache-2.0
#include "common/dtype.h"

#include "common/error.h"

namespace rabbit {

namespace {

struct DTypeInfo {
    DType type;
    const char* st_name; // safetensors (the quantized types: their name in capitals, never read)
    const char* name;    // rabbit
    size_t size;         // bytes of a block
    size_t block = 1;    // elements in a block
    int ggml = -1;       // GGML type id, -1 for none
};

// Block sizes and GGML ids from the GGUF specification (ggml.h's ggml_type).
constexpr DTypeInfo k_dtypes[] = {
    {DType::f32, "F32", "f32", 4, 1, 0},    {DType::f16, "F16", "f16", 2, 1, 1},
    {DType::bf16, "BF16", "bf16", 2, 1, 30}, {DType::f64, "F64", "f64", 8, 1, 28},
    {DType::f8_e4m3, "F8_E4M3", "f8_e4m3", 1}, {DType::f8_e5m2, "F8_E5M2", "f8_e5m2", 1},
    {DType::i64, "I64", "i64", 8, 1, 27},   {DType::i32, "I32", "i32", 4, 1, 26},
    {DType::i16, "I16", "i16", 2, 1, 25},   {DType::i8, "I8", "i8", 1, 1, 24},
    {DType::u64, "U64", "u64", 8},          {DType::u32, "U32", "u32", 4},
    {DType::u16, "U16", "u16", 2},          {DType::u8, "U8", "u8", 1},
    {DType::boolean, "BOOL", "bool", 1},
    {DType::q8_0, "Q8_0", "q8_0", 34, 32, 8},  {DType::q4_0, "Q4_0", "q4_0", 18, 32, 2},
    {DType::q4_1, "Q4_1", "q4_1", 20, 32, 3},  {DType::q5_0, "Q5_0", "q5_0", 22, 32, 6},
    {DType::q5_1, "Q5_1", "q5_1", 24, 32, 7},  {DType::q2_k, "Q2_K", "q2_k", 84, 256, 10},
    {DType::q3_k, "Q3_K", "q3_k", 110, 256, 11}, {DType::q4_k, "Q4_K", "q4_k", 144, 256, 12},
    {DType::q5_k, "Q5_K", "q5_k", 176, 256, 13}, {DType::q6_k, "Q6_K", "q6_k", 210, 256, 14},
};

// GGML's names for the ids it has had, for the message that refuses a type rabbit does not keep.
constexpr const char* k_ggml_names[] = {
    "F32",     "F16",    "Q4_0",    "Q4_1",   "Q4_2",   "Q4_3", "Q5_0",  "Q5_1", "Q8_0",  "Q8_1",
    "Q2_K",    "Q3_K",   "Q4_K",    "Q5_K",   "Q6_K",   "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
    "IQ4_NL",  "IQ3_S",  "IQ2_S",   "IQ4_XS", "I8",     "I16",  "I32",   "I64",  "F64",   "IQ1_M",
    "BF16",    "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8",
    "IQ4_NL_8_8", "MXFP4",
};

const DTypeInfo& info(DType t) {
    for (const auto& d : k_dtypes)
        if (d.type == t) return d;
    RABBIT_CHECK(false, "unknown DType value " + std::to_string(int(t)));
    __builtin_unreachable();
}

template <typename Src, typename Dst, typename F>
void convert_loop(const void* src, void* dst, size_t n, F f) {
    const Src* s = static_cast<const Src*>(src);
    Dst* d = static_cast<Dst*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = f(s[i]);
}

} // namespace

size_t dtype_size(DType t) {
    const DTypeInfo& d = info(t);
    RABBIT_CHECK(d.block == 1, std::string("element size of the block type ") + d.name);
    return d.size;
}

size_t dtype_block(DType t) { return info(t).block; }
size_t dtype_block_bytes(DType t) { return info(t).size; }

uint64_t dtype_row_bytes(DType t, uint64_t cols) {
    const DTypeInfo& d = info(t);
    RABBIT_CHECK(cols % d.block == 0, std::string("a row of ") + std::to_string(cols) + " " + d.name +
                                          " elements is not whole blocks of " + std::to_string(d.block));
    return cols / d.block * d.size;
}

bool shape_fits_blocks(const std::vector<uint64_t>& shape, DType t) {
    const size_t block = info(t).block;
    if (block == 1) return true;
    return !shape.empty() && shape.back() % block == 0;
}

std::optional<DType> dtype_from_ggml(uint32_t id) {
    for (const auto& d : k_dtypes)
        if (d.ggml >= 0 && uint32_t(d.ggml) == id) {
            if (d.type == DType::f64 || (d.type >= DType::i64 && d.type <= DType::boolean)) return std::nullopt;
            return d.type;
        }
    return std::nullopt;
}

uint32_t dtype_ggml_id(DType t) {
    const DTypeInfo& d = info(t);
    RABBIT_CHECK(d.ggml >= 0, std::string("GGUF has no type ") + d.name);
    return uint32_t(d.ggml);
}

std::string ggml_type_name(uint32_t id) {
    if (id < sizeof(k_ggml_names) / sizeof(k_ggml_names[0])) return k_ggml_names[id];
    return "type " + std::to_string(id);
}

uint64_t shape_numel(const std::vector<uint64_t>& shape) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    return n;
}

std::optional<uint64_t> shape_bytes(const std::vector<uint64_t>& shape, DType t) {
    const DTypeInfo& info_t = info(t);
    if (!shape_fits_blocks(shape, t)) return std::nullopt;
    // Counted in blocks: the last dimension divided by the block size.
    uint64_t bytes = info_t.size;
    for (size_t i = 0; i < shape.size(); ++i) {
        const uint64_t d = i + 1 == shape.size() ? shape[i] / info_t.block : shape[i];
        if (d == 0) return 0;
        if (bytes > UINT64_MAX / d) {
            // Overflow, unless a later dimension is zero.
            for (uint64_t e : shape)
                if (e == 0) return 0;
            return std::nullopt;
        }
        bytes *= d;
    }
    return bytes;
}

bool is_float_weight_dtype(DType t) { return t == DType::f32 || t == DType::f16 || t == DType::bf16; }
bool is_quant_dtype(DType t) { return info(t).block > 1; }
bool is_weight_dtype(DType t) { return is_float_weight_dtype(t) || is_quant_dtype(t); }

std::optional<DType> dtype_from_safetensors(std::string_view name) {
    for (const auto& d : k_dtypes)
        if (d.block == 1 && name == d.st_name) return d.type;
    return std::nullopt;
}

const char* dtype_safetensors_name(DType t) { return info(t).st_name; }

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const auto& d : k_dtypes)
        if (name == d.name) return d.type;
    return std::nullopt;
}

const char* dtype_name(DType t) { return info(t).name; }

float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24 is exact in f32.
        float f = float(mant) * 5.9604644775390625e-8f;
        std::memcpy(&bits, &f, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((x >> 13) & 0x3ffu)); // NaN, quiet
    if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00u); // >= 65520 rounds to infinity
    if (x < 0x38800000u) {
        // Below the smallest normal f16 (2^-14): subnormal or zero.
        if (x <= 0x33000000u) return sign; // <= 2^-25 rounds to (signed) zero
        const uint32_t e = x >> 23;
        const uint32_t m = (x & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e; // 14..24
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) ++r;
        return uint16_t(sign | r);
    }
    uint32_t r = (x >> 13) - (112u << 10);
    const uint32_t rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
    return uint16_t(sign | r);
}

void convert_elements(const void* src, DType st, void* dst, DType dt, size_t n) {
    RABBIT_CHECK(is_float_weight_dtype(st) && is_float_weight_dtype(dt),
                 std::string("conversion ") + dtype_name(st) + " -> " + dtype_name(dt));
    if (st == dt) {
        std::memcpy(dst, src, n * dtype_size(st));
        return;
    }
    if (st == DType::f32 && dt == DType::bf16) return convert_loop<float, uint16_t>(src, dst, n, f32_to_bf16);
    if (st == DType::f32 && dt == DType::f16) return convert_loop<float, uint16_t>(src, dst, n, f32_to_f16);
    if (st == DType::bf16 && dt == DType::f32) return convert_loop<uint16_t, float>(src, dst, n, bf16_to_f32);
    if (st == DType::f16 && dt == DType::f32) return convert_loop<uint16_t, float>(src, dst, n, f16_to_f32);
    if (st == DType::bf16 && dt == DType::f16)
        return convert_loop<uint16_t, uint16_t>(src, dst, n, [](uint16_t v) { return f32_to_f16(bf16_to_f32(v)); });
    // f16 -> bf16
    return convert_loop<uint16_t, uint16_t>(src, dst, n, [](uint16_t v) { return f32_to_bf16(f16_to_f32(v)); });
}

} // namespace rabbit
