// SPDX-License-Identifier: Apache-2.0
#include "op_table.h"

#include <cstdio>

namespace rabbit::test {

Output got(std::string name, const std::vector<float>& v) { return {std::move(name), {v.begin(), v.end()}}; }

Output want_close(std::string name, std::vector<double> v, Tol tol) { return {std::move(name), std::move(v), tol}; }

Output want_exact(std::string name, const std::vector<float>& v) {
    Output o{std::move(name), {v.begin(), v.end()}};
    o.exact = true;
    return o;
}

namespace {

std::vector<float> narrow(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

} // namespace

void require_outputs_match(const Outputs& kernel, const Outputs& reference) {
    REQUIRE(!kernel.empty());
    for (const Output& k : kernel) {
        INFO("output \"" << k.name << "\"");
        const Output* want = nullptr;
        for (const Output& r : reference)
            if (r.name == k.name) want = &r;
        REQUIRE(want != nullptr); // a runner's output the reference does not give
        if (want->exact) require_same(narrow(k.values), narrow(want->values));
        else require_close(narrow(k.values), want->values, want->tol);
    }
}

namespace {

// A test case whose body is a closure (TEST_CASE's is a plain function).
class ClosureInvoker : public Catch::ITestInvoker {
public:
    explicit ClosureInvoker(std::function<void()> body) : body_(std::move(body)) {}
    void invoke() const override { body_(); }

private:
    std::function<void()> body_;
};

std::vector<std::string>& listing() {
    static std::vector<std::string> lines;
    return lines;
}

} // namespace

void register_test(const std::string& name, const std::string& tags, std::function<void()> body) {
    // Catch copies the name and tags; its registry owns the invoker.
    Catch::AutoReg(new ClosureInvoker(std::move(body)), Catch::SourceLineInfo("tests/test_ops.cpp", 0), Catch::StringRef(),
                   Catch::NameAndTags{Catch::StringRef(name), Catch::StringRef(tags)});
}

void list_row(const std::string& line) { listing().push_back(line); }

uint32_t seed_of(const std::string& text) { // FNV-1a: the same inputs on every platform
    uint32_t h = 2166136261u;
    for (unsigned char c : text) h = (h ^ c) * 16777619u;
    return h;
}

void timing_case(Backend b, const std::string& what) {
#ifdef RABBIT_HAVE_CUDA
    if (b == Backend::cuda) timing_start_case(what);
#else
    (void)b;
    (void)what;
#endif
}

void timing_done(Backend b, const std::string& title) {
#ifdef RABBIT_HAVE_CUDA
    if (b == Backend::cuda) timing_print(title);
#else
    (void)b;
    (void)title;
#endif
}

} // namespace rabbit::test

TEST_CASE("the op table: each row's backends and what they leave out", "[.ops-table]") {
    for (const std::string& line : rabbit::test::listing()) std::printf("%s\n", line.c_str());
}
