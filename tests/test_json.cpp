// SPDX-License-Identifier: Apache-2.0
#include "common/error.h"
#include "common/json_read.h"
#include "common/json_writer.h"

#include <catch2/catch.hpp>

using namespace rabbit;

TEST_CASE("the JSON writer produces JSON that reads back", "[json]") {
    for (bool pretty : {true, false}) {
        JsonWriter w(pretty);
        w.begin_object();
        w.member("text", std::string("quote \" backslash \\ newline \n tab \t bell \x07 utf8 \xe4\xbd\xa0"));
        w.member("int", int64_t(-5));
        w.member("big", uint64_t(18446744073709551615ull));
        w.member("float", 1e-6);
        w.member("whole", 10000.0);
        w.member("flag", true);
        w.key("nothing").null();
        w.key("shape").begin_array(true).value(uint64_t(3)).value(uint64_t(4)).end_array();
        w.key("empty").begin_array().end_array();
        w.key("nested").begin_array().begin_object().member("a", 1).end_object().end_array();
        w.key("obj").begin_object().end_object();
        w.end_object();

        JsonDocument doc(w.str(), "test");
        auto o = doc.root_object();
        REQUIRE(json_to_string(*json_field(o, "text"), "t", "text") ==
                "quote \" backslash \\ newline \n tab \t bell \x07 utf8 \xe4\xbd\xa0");
        REQUIRE(json_to_int(*json_field(o, "int"), "t", "int") == -5);
        REQUIRE(json_to_uint(*json_field(o, "big"), "t", "big") == 18446744073709551615ull);
        REQUIRE(json_to_double(*json_field(o, "float"), "t", "float") == 1e-6);
        REQUIRE(json_to_double(*json_field(o, "whole"), "t", "whole") == 10000.0);
        REQUIRE(json_to_bool(*json_field(o, "flag"), "t", "flag"));
        REQUIRE(json_field(o, "nothing")->is_null());
        REQUIRE(json_to_array(*json_field(o, "shape"), "t", "shape").size() == 2);
        REQUIRE(!json_field(o, "absent"));
    }
}

TEST_CASE("JSON reading reports the file and the field", "[json]") {
    REQUIRE_THROWS_WITH(JsonDocument("{\"a\": ", "conf.json"), Catch::Contains("conf.json: is not valid JSON"));
    JsonDocument doc("{\"a\": \"x\", \"n\": -1, \"f\": 1.5}", "conf.json");
    auto o = doc.root_object();
    REQUIRE_THROWS_WITH(json_to_uint(*json_field(o, "a"), "conf.json", "'a'"),
                        Catch::Contains("conf.json: 'a' must be a non-negative integer, got \"x\""));
    REQUIRE_THROWS_AS(json_to_uint(*json_field(o, "n"), "conf.json", "'n'"), Error);
    REQUIRE_THROWS_AS(json_to_uint(*json_field(o, "f"), "conf.json", "'f'"), Error);
    JsonDocument arr("[1]", "list.json");
    REQUIRE_THROWS_WITH(arr.root_object(), Catch::Contains("list.json: the top level must be an object"));
}
