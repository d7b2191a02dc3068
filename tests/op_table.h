// SPDX-License-Identifier: Apache-2.0
// The op table's machinery (after llama.cpp's test-backend-ops): a row is an op with its
// cases (shapes and dtypes, in named groups), a way to draw fresh random inputs for a case,
// its plain-loop reference (tests/reference.h) and a runner per backend that has the op. Each
// group becomes one test case per backend: "cpu: <op> <group>" tagged [kernels] and
// "gpu: <op> <group>" tagged [gpu] (the emulated device in the CI build, a real GPU there;
// skipped visibly without one). Every case runs the kernel on its inputs and compares each
// output the runner returns with the reference's output of that name.
#pragma once

#include "gpu.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace rabbit::test {

// One output of an op, a kernel's or the reference's. The reference's says how it compares:
// within `tol`, or bit for bit (`exact`; NaN only against NaN).
struct Output {
    std::string name;           // "out", "residual", "k cache", "ids"
    std::vector<double> values; // f32 results (ids too) widened exactly, or the reference's
    Tol tol{1e-5, 1e-4, false};
    bool exact = false;
};
using Outputs = std::vector<Output>;

Output got(std::string name, const std::vector<float>& v);                   // a kernel's
Output want_close(std::string name, std::vector<double> v, Tol tol);         // the reference's
Output want_exact(std::string name, const std::vector<float>& v);            // the reference's
template <typename I>
std::vector<float> as_floats(const std::vector<I>& ids) { // ids (< 2^24) for an Output
    return std::vector<float>(ids.begin(), ids.end());
}

// Each output the kernel returned against the reference's of the same name.
void require_outputs_match(const Outputs& kernel, const Outputs& reference);

// The kernel of one backend for one case of a row.
template <typename Case, typename Data>
struct Runner {
    Outputs (*run)(const Case&, const Data&) = nullptr; // null: this backend has no such kernel
    const char* note = "";                              // what it leaves out and why, or why there is none
    bool (*takes)(const Case&) = nullptr;               // the cases it runs; null: every one
};

template <typename Case>
struct Group {
    std::string label; // "" for a row of one group; else part of the test cases' names
    std::vector<Case> cases;
};

template <typename Case, typename Data>
struct OpRow {
    std::string name;
    std::vector<Group<Case>> groups;
    std::string (*describe)(const Case&);
    Data (*draw)(const Case&, std::mt19937&);           // fresh random inputs, never zeros
    Outputs (*reference)(const Case&, const Data&);     // through tests/reference.h
    Runner<Case, Data> cpu, cuda;
};

enum class Backend { cpu, cuda };

// Registers a Catch2 test case that runs `body` (the table registers its rows at start-up,
// as TEST_CASE does).
void register_test(const std::string& name, const std::string& tags, std::function<void()> body);
// The table's listing (`rabbit_tests "[.ops-table]"`): a line per row and backend.
void list_row(const std::string& line);
uint32_t seed_of(const std::string& text);
void timing_case(Backend b, const std::string& what);
void timing_done(Backend b, const std::string& title);

template <typename Case, typename Data>
void check_group(const OpRow<Case, Data>& row, const Group<Case>& group, Backend backend, const std::string& title) {
    if (backend == Backend::cuda && !gpu_available()) return;
    const Runner<Case, Data>& runner = backend == Backend::cpu ? row.cpu : row.cuda;
    std::mt19937 rng(seed_of(title));
    size_t ran = 0;
    for (const Case& c : group.cases) {
        if (runner.takes && !runner.takes(c)) continue;
        ++ran;
        const std::string what = row.describe(c);
        INFO(what);
        timing_case(backend, what);
        const Data data = row.draw(c, rng);
        require_outputs_match(runner.run(c, data), row.reference(c, data));
    }
    REQUIRE(ran > 0); // a group the backend takes nothing of is a mistake in the table
    timing_done(backend, title);
}

// One test case per group and backend with a runner.
template <typename Case, typename Data>
void register_row(const OpRow<Case, Data>& r) {
    const auto row = std::make_shared<const OpRow<Case, Data>>(r);
    for (Backend b : {Backend::cpu, Backend::cuda}) {
        const Runner<Case, Data>& runner = b == Backend::cpu ? row->cpu : row->cuda;
        const char* prefix = b == Backend::cpu ? "cpu: " : "gpu: ";
        size_t cases = 0;
        for (const Group<Case>& g : row->groups)
            for (const Case& c : g.cases) cases += !runner.takes || runner.takes(c);
        list_row(prefix + row->name + ": " + (runner.run ? std::to_string(cases) + " cases" : std::string("no kernel")) +
                 (*runner.note ? std::string("; ") + runner.note : std::string()));
        if (!runner.run) continue;
        for (size_t i = 0; i < row->groups.size(); ++i) {
            const auto& cs = row->groups[i].cases;
            if (runner.takes && std::none_of(cs.begin(), cs.end(), runner.takes)) continue;
            const std::string title = prefix + row->name + (row->groups[i].label.empty() ? "" : " " + row->groups[i].label);
            register_test(title, b == Backend::cpu ? "[kernels][ops]" : "[gpu][ops]",
                          [row, i, b, title] { check_group(*row, row->groups[i], b, title); });
        }
    }
}

} // namespace rabbit::test
