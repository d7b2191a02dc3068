// SPDX-License-Identifier: Apache-2.0
#include "model/rope_scaling.h"

#include "common/error.h"
#include "common/json_read.h"
#include "common/json_writer.h"

#include <cmath>
#include <optional>

namespace rabbit {

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

std::vector<double> read_factors(element e, const std::string& file, const std::string& what) {
    std::vector<double> v;
    for (auto x : json_to_array(e, file, what)) v.push_back(json_to_double(x, file, what + " entry"));
    return v;
}

bool positive(double x) { return x > 0 && std::isfinite(x); }

} // namespace

const char* rope_type_name(RopeScaling::Type t) {
    switch (t) {
    case RopeScaling::Type::none: return "default";
    case RopeScaling::Type::linear: return "linear";
    case RopeScaling::Type::llama3: return "llama3";
    case RopeScaling::Type::yarn: return "yarn";
    case RopeScaling::Type::dynamic: return "dynamic";
    case RopeScaling::Type::longrope: return "longrope";
    }
    return "?";
}

RopeScaling parse_rope_scaling(object o, const std::string& file, const std::string& where) {
    RopeScaling rs;
    std::string type;
    if (auto t = json_value(o, "rope_type")) type = json_to_string(*t, file, where + ".rope_type");
    else if (auto t2 = json_value(o, "type")) type = json_to_string(*t2, file, where + ".type");
    else throw bad_input(file, where + " names no rope_type");

    // transformers 5 derives a missing yarn factor or original context from
    // max_position_embeddings; rabbit asks for them, since Qwen's model cards always give both.
    auto need = [&](const char* key) {
        auto e = json_value(o, key);
        if (!e) throw bad_input(file, where + " of type " + type + " needs '" + key + "'");
        return *e;
    };
    auto number = [&](const char* key) { return json_to_double(need(key), file, where + "." + key); };
    // transformers reads beta_fast, beta_slow, mscale and mscale_all_dim with `or`: 0 is unset.
    auto optional_number = [&](const char* key, double fallback) {
        auto e = json_value(o, key);
        return e ? json_to_double(*e, file, where + "." + key) : fallback;
    };
    auto original = [&] {
        return json_to_uint(need("original_max_position_embeddings"), file, where + ".original_max_position_embeddings");
    };
    if (type == "default") return rs;
    if (type == "linear" || type == "dynamic") {
        rs.type = type == "linear" ? RopeScaling::Type::linear : RopeScaling::Type::dynamic;
        rs.factor = number("factor");
        return rs;
    }
    if (type == "llama3") {
        rs.type = RopeScaling::Type::llama3;
        rs.factor = number("factor");
        rs.low_freq_factor = number("low_freq_factor");
        rs.high_freq_factor = number("high_freq_factor");
        rs.original_max_position_embeddings = original();
        return rs;
    }
    if (type == "yarn") {
        rs.type = RopeScaling::Type::yarn;
        rs.factor = number("factor");
        rs.original_max_position_embeddings = original();
        rs.beta_fast = optional_number("beta_fast", 0.0);
        rs.beta_slow = optional_number("beta_slow", 0.0);
        if (rs.beta_fast == 0) rs.beta_fast = 32.0;
        if (rs.beta_slow == 0) rs.beta_slow = 1.0;
        rs.mscale = optional_number("mscale", 0.0);
        rs.mscale_all_dim = optional_number("mscale_all_dim", 0.0);
        rs.attention_factor = optional_number("attention_factor", 0.0);
        if (auto t = json_value(o, "truncate")) rs.truncate = json_to_bool(*t, file, where + ".truncate");
        return rs;
    }
    if (type == "longrope") {
        rs.type = RopeScaling::Type::longrope;
        rs.factor = optional_number("factor", 0.0); // 0: max_position_embeddings / the original
        rs.original_max_position_embeddings = original();
        rs.attention_factor = optional_number("attention_factor", 0.0);
        rs.short_factor = read_factors(need("short_factor"), file, where + ".short_factor");
        rs.long_factor = read_factors(need("long_factor"), file, where + ".long_factor");
        return rs;
    }
    throw unsupported(file, "RoPE scaling type '" + type +
                                "' is not supported (rabbit supports default, linear, llama3, yarn, dynamic and longrope)");
}

void validate_rope_scaling(const RopeScaling& s, const std::string& file, uint32_t head_dim) {
    using Type = RopeScaling::Type;
    if (s.type == Type::none) return;
    const std::string name = rope_type_name(s.type);
    if (!positive(s.factor) && !(s.type == Type::longrope && s.factor == 0))
        throw bad_input(file, "rope scaling factor must be a positive number");
    if ((s.type == Type::llama3 || s.type == Type::yarn || s.type == Type::longrope) && s.original_max_position_embeddings == 0)
        throw bad_input(file, name + " RoPE scaling needs original_max_position_embeddings > 0");
    if (s.type == Type::llama3 && (!(s.low_freq_factor > 0) || !(s.high_freq_factor > s.low_freq_factor)))
        throw bad_input(file, "llama3 RoPE scaling needs 0 < low_freq_factor < high_freq_factor");
    if (s.type == Type::dynamic && head_dim <= 2) throw bad_input(file, "dynamic RoPE scaling needs head_dim > 2");
    if (s.type == Type::yarn && !(positive(s.beta_fast) && positive(s.beta_slow)))
        throw bad_input(file, "yarn RoPE scaling needs positive beta_fast and beta_slow");
    if (!(s.attention_factor >= 0 && std::isfinite(s.attention_factor)))
        throw bad_input(file, name + " RoPE scaling needs a non-negative attention_factor");
    if (s.type == Type::longrope) {
        for (const auto* f : {&s.short_factor, &s.long_factor}) {
            if (f->size() != head_dim / 2)
                throw bad_input(file, "longrope short_factor and long_factor need head_dim / 2 = " + std::to_string(head_dim / 2) +
                                          " values each, not " + std::to_string(f->size()));
            for (double x : *f)
                if (!positive(x)) throw bad_input(file, "longrope short_factor and long_factor must be positive numbers");
        }
    }
}

void write_rope_scaling(JsonWriter& w, const RopeScaling& s) {
    using Type = RopeScaling::Type;
    if (s.type == Type::none) {
        w.null();
        return;
    }
    w.begin_object().member("type", rope_type_name(s.type)).member("factor", s.factor);
    if (s.type == Type::llama3) w.member("low_freq_factor", s.low_freq_factor).member("high_freq_factor", s.high_freq_factor);
    if (s.type == Type::llama3 || s.type == Type::yarn || s.type == Type::longrope)
        w.member("original_max_position_embeddings", s.original_max_position_embeddings);
    if (s.type == Type::yarn) {
        w.member("beta_fast", s.beta_fast).member("beta_slow", s.beta_slow);
        w.member("mscale", s.mscale).member("mscale_all_dim", s.mscale_all_dim).member("truncate", s.truncate);
    }
    if (s.type == Type::yarn || s.type == Type::longrope) w.member("attention_factor", s.attention_factor);
    if (s.type == Type::longrope) {
        for (const auto& [key, v] : {std::pair{"short_factor", &s.short_factor}, std::pair{"long_factor", &s.long_factor}}) {
            w.key(key).begin_array(true);
            for (double x : *v) w.value(x);
            w.end_array();
        }
    }
    w.end_object();
}

} // namespace rabbit
