// SPDX-License-Identifier: Apache-2.0
#include "common/error.h"
#include "common/file_io.h"
#include "format/safetensors.h"
#include "format/safetensors_writer.h"
#include "helpers.h"

#include <catch2/catch.hpp>

using namespace rabbit;
using Catch::Contains;

namespace {

// An in-memory safetensors file: length prefix, header JSON, data bytes.
std::string st_bytes(const std::string& json, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
    std::string out(8, '\0');
    uint64_t n = claimed_len == UINT64_MAX ? json.size() : claimed_len;
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
    return out + json + std::string(data_bytes, '\x11');
}

SafetensorsHeader parse(const std::string& file) {
    return parse_safetensors(reinterpret_cast<const uint8_t*>(file.data()), file.size(), file.size(), "w.safetensors");
}

int exit_code_of(const std::string& file) {
    try {
        parse(file);
    } catch (const Error& e) {
        return int(e.code());
    }
    return 0;
}

} // namespace

TEST_CASE("a valid header parses with every field", "[safetensors]") {
    std::vector<SafetensorsSpec> specs = {{"a", DType::f32, {3, 5}}, {"b", DType::bf16, {7}}, {"scalar", DType::f16, {}}};
    std::string h = safetensors_header_bytes(specs, {{"format", "pt"}, {"alias", "a"}});
    REQUIRE((h.size() - 8) % 8 == 0); // padded like the reference writer
    std::string file = h + std::string(60 + 14 + 2, '\0');
    SafetensorsHeader st = parse(file);
    REQUIRE(st.tensors.size() == 3);
    REQUIRE(st.data_start == h.size());
    REQUIRE(st.metadata.at("alias") == "a");
    const TensorEntry* a = st.find("a");
    REQUIRE(a);
    REQUIRE(a->dtype == DType::f32);
    REQUIRE(a->shape == std::vector<uint64_t>{3, 5});
    REQUIRE(a->begin == 0);
    REQUIRE(a->end == 60);
    REQUIRE(st.find("b")->begin == 60);
    REQUIRE(st.find("scalar")->shape.empty());
    REQUIRE(st.find("scalar")->nbytes() == 2);
}

TEST_CASE("malformed safetensors headers are refused with the reason and the file", "[safetensors]") {
    const std::string ok = R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
    REQUIRE_NOTHROW(parse(st_bytes(ok, 16)));

    SECTION("shorter than the length prefix") {
        REQUIRE_THROWS_WITH(parse(std::string(5, '\0')), Contains("w.safetensors: truncated: 5 bytes"));
    }
    SECTION("header length past the end") {
        REQUIRE_THROWS_WITH(parse(st_bytes(ok, 16, 1000)), Contains("header length 1000 runs past the end of the file"));
    }
    SECTION("header length absurd") {
        REQUIRE_THROWS_WITH(parse(st_bytes(ok, 16, 0xffffffffffffull)), Contains("runs past the end"));
    }
    SECTION("empty header") { REQUIRE_THROWS_WITH(parse(st_bytes("", 16)), Contains("too short")); }
    SECTION("not JSON") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32",)", 16)), Contains("is not valid JSON"));
    }
    SECTION("not an object") { REQUIRE_THROWS_WITH(parse(st_bytes("[1, 2]   ", 0)), Contains("does not start with '{'")); }
    SECTION("unknown dtype is unsupported, not corrupt") {
        std::string f = st_bytes(R"({"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1);
        REQUIRE_THROWS_WITH(parse(f), Contains("tensor 't' has dtype 'F4'"));
        REQUIRE(exit_code_of(f) == int(ExitCode::unsupported));
    }
    SECTION("shape does not match the bytes") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 16)),
                            Contains("tensor 't': shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 16] hold 16"));
    }
    SECTION("dtype does not match the bytes") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}})", 16)),
                            Contains("needs 8 bytes"));
    }
    SECTION("shape product overflows") {
        REQUIRE_THROWS_WITH(
            parse(st_bytes(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", 16)),
            Contains("more than 2^64"));
    }
    SECTION("range outside the data section") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}})", 16)),
                            Contains("run past the end of the data section (16 bytes)"));
    }
    SECTION("offsets reversed") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 16)),
                            Contains("end before they begin"));
    }
    SECTION("overlapping tensors") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                           16)),
                            Contains("tensors 'a' and 'b' overlap"));
    }
    SECTION("duplicate names") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                           16)),
                            Contains("'a' appears twice"));
    }
    SECTION("missing fields and wrong types") {
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8)), Contains("has no dtype"));
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8)), Contains("has no shape"));
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32","shape":[2]}})", 8)), Contains("has no data_offsets"));
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
                            Contains("must be a non-negative integer"));
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8)),
                            Contains("two numbers"));
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"t":[1]})", 8)), Contains("tensor 't' must be an object"));
        REQUIRE_THROWS_WITH(parse(st_bytes(R"({"__metadata__":{"k":1}})", 0)), Contains("must be a string"));
    }
    SECTION("all of these are bad input") { REQUIRE(exit_code_of(st_bytes(ok, 16, 1000)) == int(ExitCode::bad_input)); }
}

TEST_CASE("headers are read from files, truncation included", "[safetensors]") {
    test::TempDir dir;
    const std::string path = dir / "m.safetensors";
    std::string h = safetensors_header_bytes({{"x", DType::bf16, {4, 4}}}, {});
    test::write_file(path, h + std::string(32, '\x01'));
    {
        InputFile f(path);
        SafetensorsHeader st = read_safetensors_header(f);
        REQUIRE(st.find("x")->nbytes() == 32);
        REQUIRE(st.header_hash != 0);
    }
    test::write_file(path, h + std::string(31, '\x01'));
    InputFile f(path);
    REQUIRE_THROWS_WITH(read_safetensors_header(f), Contains(path + ": tensor 'x' data_offsets [0, 32] run past the end"));
    test::write_file(path, h.substr(0, 20));
    InputFile g(path);
    REQUIRE_THROWS_WITH(read_safetensors_header(g), Contains("runs past the end of the file (20 bytes)"));
}

TEST_CASE("the writer streams data and refuses short or long input", "[safetensors]") {
    test::TempDir dir;
    {
        SafetensorsWriter w(dir / "a.safetensors", {{"t", DType::f32, {2}}});
        float v[2] = {1, 2};
        w.append(v, 8);
        w.commit();
        InputFile f(dir / "a.safetensors");
        REQUIRE(read_safetensors_header(f).find("t")->nbytes() == 8);
    }
    {
        SafetensorsWriter w(dir / "b.safetensors", {{"t", DType::f32, {2}}});
        float v[1] = {1};
        w.append(v, 4);
        REQUIRE_THROWS(w.commit());
    }
    REQUIRE(!test::exists(dir / "b.safetensors")); // never committed: no file under the final name
    REQUIRE(!test::exists(dir / "b.safetensors.tmp"));
}
