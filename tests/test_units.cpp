// SPDX-License-Identifier: Apache-2.0
#include "common/system.h"
#include "common/units.h"

#include <catch2/catch.hpp>

#include <unistd.h>

using namespace rabbit;

TEST_CASE("sizes parse in binary and decimal units", "[units]") {
    REQUIRE(parse_size("4096") == 4096u);
    REQUIRE(parse_size("4G") == 4ull << 30);
    REQUIRE(parse_size("4g") == 4ull << 30);
    REQUIRE(parse_size("4GiB") == 4ull << 30);
    REQUIRE(parse_size("4GB") == 4000000000ull);
    REQUIRE(parse_size("512M") == 512ull << 20);
    REQUIRE(parse_size("1.5K") == 1536u);
    REQUIRE(parse_size("2T") == 2ull << 40);
    REQUIRE(parse_size("100B") == 100u);
    REQUIRE(!parse_size(""));
    REQUIRE(!parse_size("G"));
    REQUIRE(!parse_size("4X"));
    REQUIRE(!parse_size("-4G"));
    REQUIRE(!parse_size("1.2.3G"));
    REQUIRE(!parse_size("4Gx"));
    REQUIRE(!parse_size("99999999999T"));
}

TEST_CASE("sizes, rates and durations print for people", "[units]") {
    REQUIRE(format_bytes(0) == "0 B");
    REQUIRE(format_bytes(1023) == "1023 B");
    REQUIRE(format_bytes(1536) == "1.50 KiB");
    REQUIRE(format_bytes(15ull << 30) == "15.0 GiB");
    REQUIRE(format_bytes(140ull << 30) == "140 GiB");
    REQUIRE(format_rate(2.0 * (1 << 30)) == "2.00 GiB/s");
    REQUIRE(format_duration(12.34) == "12.3s");
    REQUIRE(format_duration(100) == "1m40s");
    REQUIRE(format_duration(7500) == "2h05m");
}

TEST_CASE("available memory is known and no more than the machine has", "[units]") {
    const uint64_t avail = available_memory();
    const uint64_t total = uint64_t(::sysconf(_SC_PHYS_PAGES)) * uint64_t(::sysconf(_SC_PAGESIZE));
    INFO("available " << avail << " of " << total);
    REQUIRE(avail > 0);
    REQUIRE(avail <= total);
}
