// SPDX-License-Identifier: Apache-2.0
// `rabbit pull` against the fake hub (tools/fakehub) on 127.0.0.1: the cache it leaves is the
// served files, byte for byte, in huggingface_hub's layout; it survives dropped connections,
// kills and wrong bytes; it refuses what it must, in one line with an exit code; --split gives
// the split of the finished download within about one shard of extra disk.
#include "hub_helpers.h"

#include "common/file_io.h"
#include "hub/digest.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>
#include <sys/wait.h>
#include <thread>

namespace rabbit::test {

using Catch::Contains;

namespace {

uint64_t total_bytes(const fakehub::Repo& r) {
    uint64_t n = 0;
    for (const auto& f : r.files) n += f.content.size();
    return n;
}

// The split of the download equals the reference split, but for the record of the shards it
// deleted (--delete-original's, in the manifest).
void check_same_split(const std::string& split, const std::string& reference) {
    std::map<std::string, std::string> a = tree_contents(split), b = tree_contents(reference);
    REQUIRE(a.count("manifest.json") == 1);
    REQUIRE(b.count("manifest.json") == 1);
    const std::string ma = a["manifest.json"], mb = b["manifest.json"];
    a.erase("manifest.json");
    b.erase("manifest.json");
    CHECK(a == b);
    const size_t cut = ma.find(",\n  \"deleted_sources\"");
    REQUIRE(cut != std::string::npos);
    CHECK(ma.substr(0, cut) == mb.substr(0, mb.rfind(']') + 1));
}

uint64_t largest_file(const fakehub::Repo& r) {
    uint64_t n = 0;
    for (const auto& f : r.files) n = std::max<uint64_t>(n, f.content.size());
    return n;
}

} // namespace

TEST_CASE("pull: the cache is the served files, in huggingface_hub's layout; a rerun fetches nothing", "[hub]") {
    HubFixture fx;
    const fakehub::Repo& repo = fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 3));
    const RunResult r = run_rabbit({"pull", "acme/tiny"}, fx.env());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out == fx.hf_cache() + "/models--acme--tiny/snapshots/" + repo.commit + "\n");
    const std::vector<std::string> problems = cache_problems(fx.hf_cache(), repo);
    for (const auto& p : problems) UNSCOPED_INFO(p);
    CHECK(problems.empty());
    const uint64_t served = fx.hub.body_bytes_served();
    CHECK(served >= total_bytes(repo));
    const RunResult again = run_rabbit({"pull", "acme/tiny"}, fx.env());
    REQUIRE(again.exit_code == 0);
    CHECK(fx.hub.body_bytes_served() - served < 4096); // the API's JSON only
    // A commit names the same snapshot; an unknown revision is the hub's 404.
    const RunResult by_commit = run_rabbit({"pull", "acme/tiny@" + repo.commit}, fx.env());
    CHECK(by_commit.exit_code == 0);
    CHECK(by_commit.out == r.out);
    const RunResult no_rev = run_rabbit({"pull", "acme/tiny@v9"}, fx.env());
    CHECK(no_rev.exit_code == 7);
    CHECK_THAT(no_rev.err, Contains("no revision 'v9'"));
    // And -m finds it: inspect, tokenize-free (no tokenizer in a generated model), split.
    CHECK(run_rabbit({"inspect", "acme/tiny"}, fx.env()).exit_code == 0);
    const RunResult sp = run_rabbit({"split", "acme/tiny", "-o", fx.tmp / "split"}, fx.env());
    INFO(sp.err);
    CHECK(sp.exit_code == 0);
}

TEST_CASE("pull --include takes only the files its globs match", "[hub]") {
    HubFixture fx;
    fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 2));
    const RunResult r = run_rabbit({"pull", "acme/tiny", "--include", "*.json"}, fx.env());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const std::string snap = r.out.substr(0, r.out.size() - 1);
    CHECK(path_exists(snap + "/config.json"));
    CHECK(path_exists(snap + "/model.safetensors.index.json"));
    CHECK_FALSE(path_exists(snap + "/model-00001-of-00002.safetensors"));
}

TEST_CASE("pull ORG/NAME:QUANT takes the GGUF of that tag and no other weights", "[hub]") {
    HubFixture fx;
    TempDir repo;
    std::ofstream(repo / "README.md") << "a GGUF repo";
    std::ofstream(repo / "m-Q4_K_M.gguf") << std::string(70000, 'q');
    std::ofstream(repo / "m-Q8_0.gguf") << std::string(90000, '8');
    fx.serve("acme/m-GGUF", repo.path());
    const RunResult r = run_rabbit({"pull", "acme/m-GGUF:Q8_0"}, fx.env());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Contains("/m-Q8_0.gguf\n"));
    const std::string snap = r.out.substr(0, r.out.rfind('/'));
    CHECK(path_exists(snap + "/README.md"));
    CHECK_FALSE(path_exists(snap + "/m-Q4_K_M.gguf"));
    const RunResult none = run_rabbit({"pull", "acme/m-GGUF"}, fx.env());
    CHECK(none.exit_code == 3);
    CHECK_THAT(none.err, Contains("several .gguf") && Contains("m-Q4_K_M.gguf"));
}

TEST_CASE("pull survives dropped connections and a 503, resuming with range requests", "[hub]") {
    HubFixture fx;
    const fakehub::Repo& repo = fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 2));
    fx.hub.faults().drop_after = largest_file(repo) / 3;
    fx.hub.faults().drops = 3;
    fx.hub.faults().unavailable = 1;
    const RunResult r = run_rabbit({"pull", "acme/tiny"}, fx.env());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(fx.hub.faults().drops == 0);
    CHECK(cache_problems(fx.hf_cache(), repo).empty());
    bool ranged = false;
    for (const std::string& q : fx.hub.requests()) ranged |= q.find("/lfs/") != std::string::npos;
    CHECK(ranged);
    // Resumed, not restarted: the bytes served stay well under twice the repo.
    CHECK(fx.hub.body_bytes_served() < total_bytes(repo) * 2);
}

TEST_CASE("pull: a wrong checksum deletes the download, exits 3, and the next run fetches it again", "[hub]") {
    HubFixture fx;
    const fakehub::Repo& repo = fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 1));
    fx.hub.faults().corrupt = 1;
    const RunResult bad = run_rabbit({"pull", "acme/tiny"}, fx.env());
    CHECK(bad.exit_code == 3);
    CHECK_THAT(bad.err, Contains("checksum mismatch") && Contains("deleted") && Contains("model.safetensors"));
    CHECK(std::count(bad.err.begin(), bad.err.end(), '\n') >= 1);
    CHECK(tree_contents(fx.hf_cache() + "/models--acme--tiny/blobs").size() == 2); // the two json files, nothing partial
    const RunResult good = run_rabbit({"pull", "acme/tiny"}, fx.env());
    INFO(good.err);
    REQUIRE(good.exit_code == 0);
    CHECK(cache_problems(fx.hf_cache(), repo).empty());
}

TEST_CASE("pull: unknown repo, gated repo, no network, pickle-only repo: one line, exit code", "[hub]") {
    HubFixture fx;
    const std::string secret = "hf_SECRETsecret0123456789";
    fx.serve("acme/gated", make_served_model(fx.tmp, "src", 1), secret);
    TempDir pickles;
    std::ofstream(pickles / "config.json") << "{}";
    std::ofstream(pickles / "pytorch_model.bin") << "not really a pickle";
    fx.serve("acme/pickles", pickles.path());
    auto env = fx.env();

    const RunResult unknown = run_rabbit({"pull", "acme/nothing"}, env);
    CHECK(unknown.exit_code == 7);
    CHECK_THAT(unknown.err, Contains("no such repo") && Contains("404"));

    const RunResult gated = run_rabbit({"pull", "acme/gated"}, env);
    CHECK(gated.exit_code == 7);
    CHECK_THAT(gated.err, Contains("gated") && Contains("HF_TOKEN"));

    env["HF_TOKEN"] = "hf_wrong";
    const RunResult wrong = run_rabbit({"pull", "acme/gated"}, env);
    CHECK(wrong.exit_code == 7);
    CHECK_THAT(wrong.err, Contains("no access"));

    env["HF_TOKEN"] = secret;
    const RunResult ok = run_rabbit({"-v", "-v", "pull", "acme/gated"}, env);
    INFO(ok.err);
    CHECK(ok.exit_code == 0);
    CHECK(ok.out.find(secret) == std::string::npos);
    CHECK(ok.err.find(secret) == std::string::npos);
    CHECK(ok.err.find("SECRET") == std::string::npos);
    // It did reach the hub with it.
    bool sent = false;
    for (const std::string& q : fx.hub.requests()) sent |= q.find("Bearer " + secret) != std::string::npos;
    CHECK(sent);
    CHECK(cache_problems(fx.hf_cache(), fx.served["acme/gated"]).empty());

    const RunResult pickle = run_rabbit({"pull", "acme/pickles"}, env);
    CHECK(pickle.exit_code == 4);
    CHECK_THAT(pickle.err, Contains("pickle") && Contains("runs code"));

    env["HF_HUB_OFFLINE"] = "1";
    const RunResult off = run_rabbit({"pull", "acme/gated"}, env);
    CHECK(off.exit_code == 7);
    CHECK_THAT(off.err, Contains("HF_HUB_OFFLINE"));
    env.erase("HF_HUB_OFFLINE");

    env["HF_ENDPOINT"] = "http://127.0.0.1:1"; // nothing listens there
    const RunResult offline = run_rabbit({"pull", "acme/gated"}, env);
    CHECK(offline.exit_code == 7);
    CHECK_THAT(offline.err, Contains("cannot reach the hub"));
    for (const RunResult* r : {&unknown, &gated, &wrong, &pickle, &offline}) {
        CHECK(r->err.find(secret) == std::string::npos);
        CHECK(std::count(r->err.begin(), r->err.end(), '\n') == 1);
    }
}

TEST_CASE("pull on a full disk: one line, exit 5, and the next run resumes", "[hub]") {
    HubFixture fx;
    const fakehub::Repo& repo = fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 1));
    auto env = fx.env();
    env["RABBIT_FAULT"] = "free-bytes=4096";
    const RunResult small = run_rabbit({"pull", "acme/tiny"}, env);
    CHECK(small.exit_code == 5);
    CHECK_THAT(small.err, Contains("the download needs") && Contains("free"));
    env["RABBIT_FAULT"] = "enospc-after=" + std::to_string(largest_file(repo) / 2);
    const RunResult full = run_rabbit({"pull", "acme/tiny"}, env);
    CHECK(full.exit_code == 5);
    CHECK_THAT(full.err, Contains("ENOSPC") && Contains("run again to resume"));
    CHECK(full.err.find("error: ") == full.err.rfind("error: ")); // one error line
    const uint64_t before = fx.hub.body_bytes_served();
    const RunResult r = run_rabbit({"pull", "acme/tiny"}, fx.env());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(cache_problems(fx.hf_cache(), repo).empty());
    CHECK(fx.hub.body_bytes_served() - before < total_bytes(repo)); // resumed, not fetched again
}

TEST_CASE("pull killed at random points, then run again, ends byte-identical", "[hub]") {
    HubFixture fx;
    const fakehub::Repo& repo = fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 3));
    const uint64_t total = total_bytes(repo);
    fx.hub.faults().bytes_per_second = total * 2; // about half a second for the whole repo
    std::mt19937_64 rng(Catch::rngSeed());
    int kills = 0;
    for (int round = 0; round < 4; ++round) {
        const uint64_t at = fx.hub.body_bytes_served() + 1 + rng() % (total / 2);
        kills += kill_after_bytes(spawn_rabbit({"pull", "acme/tiny"}, fx.env()), fx.hub, at);
    }
    CHECK(kills >= 1);
    fx.hub.faults().bytes_per_second = 0;
    const RunResult r = run_rabbit({"pull", "acme/tiny"}, fx.env());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(cache_problems(fx.hf_cache(), repo).empty());
}

TEST_CASE("pull --split gives the split of the finished download, within one shard of extra disk", "[hub][split]") {
    HubFixture fx;
    const fakehub::Repo& repo = fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 4));
    // The split of the whole download, the ordinary way.
    const RunResult whole = run_rabbit({"split", fx.tmp / "src", "-o", fx.tmp / "reference"});
    REQUIRE(whole.exit_code == 0);
    uint64_t shard = 0;
    for (const auto& f : repo.files)
        if (f.path.find(".safetensors") != std::string::npos && f.path.find(".json") == std::string::npos)
            shard = std::max<uint64_t>(shard, f.content.size());
    // Peak disk, sampled while it runs (a sample can miss a peak, never invent one).
    std::atomic<bool> done{false};
    std::atomic<uint64_t> peak{0};
    std::thread sampler([&] {
        while (!done) {
            peak = std::max<uint64_t>(peak, disk_usage(fx.rabbit_cache()) + disk_usage(fx.hf_cache()));
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    fx.hub.faults().bytes_per_second = total_bytes(repo) * 4;
    const RunResult r = run_rabbit({"pull", "acme/tiny", "--split"}, fx.env());
    done = true;
    sampler.join();
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const std::string split = r.out.substr(0, r.out.size() - 1);
    check_same_split(split, fx.tmp / "reference");
    const uint64_t split_bytes = disk_usage(split);
    INFO("peak " << peak << ", largest shard " << shard << ", split " << split_bytes);
    CHECK(peak <= 2 * shard + split_bytes + (1u << 20));
    CHECK(peak < total_bytes(repo) + split_bytes);
    // No shard is left anywhere; the small files stay in the Hugging Face cache.
    CHECK_FALSE(path_exists(fx.rabbit_cache() + "/downloads"));
    for (const auto& f : repo.files)
        if (f.lfs) CHECK_FALSE(path_exists(fx.hf_cache() + "/models--acme--tiny/blobs/" + sha256_hex(f.content)));
    // -m ORG/NAME now takes the split.
    const RunResult inspect = run_rabbit({"inspect", "acme/tiny"}, fx.env());
    INFO(inspect.err);
    CHECK(inspect.exit_code == 0);
}

TEST_CASE("pull --split killed at random points, then run again, gives the same split", "[hub][split]") {
    HubFixture fx;
    const fakehub::Repo& repo = fx.serve("acme/tiny", make_served_model(fx.tmp, "src", 3));
    REQUIRE(run_rabbit({"split", fx.tmp / "src", "-o", fx.tmp / "reference"}).exit_code == 0);
    const uint64_t total = total_bytes(repo);
    fx.hub.faults().bytes_per_second = total * 2;
    std::mt19937_64 rng(Catch::rngSeed() + 1);
    int kills = 0;
    for (int round = 0; round < 4; ++round) {
        const uint64_t at = fx.hub.body_bytes_served() + 1 + rng() % (total / 2);
        kills += kill_after_bytes(spawn_rabbit({"pull", "acme/tiny", "--split"}, fx.env()), fx.hub, at);
    }
    CHECK(kills >= 1);
    fx.hub.faults().bytes_per_second = 0;
    const RunResult r = run_rabbit({"pull", "acme/tiny", "--split"}, fx.env());
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    check_same_split(r.out.substr(0, r.out.size() - 1), fx.tmp / "reference");
}

TEST_CASE("run -m ORG/NAME with no copy: refused without --yes off a terminal, downloaded and split with it", "[hub][cli]") {
    HubFixture fx;
    if (!have_shared()) {
        WARN("SKIPPED: ../shared is absent (tinystories-656k)");
        return;
    }
    fx.serve("roneneldan/tinystories-656k", tinystories_dir());
    const RunResult no = run_rabbit({"run", "-m", "roneneldan/tinystories-656k", "-p", "Once", "-n", "4"}, fx.env());
    CHECK(no.exit_code == 3);
    CHECK_THAT(no.err, Contains("rabbit pull roneneldan/tinystories-656k") && Contains("--yes"));
    const RunResult yes = run_rabbit({"--yes", "run", "-m", "roneneldan/tinystories-656k", "-p", "Once", "-n", "4", "--raw"}, fx.env());
    INFO(yes.err);
    REQUIRE(yes.exit_code == 0);
    const RunResult local = run_rabbit({"run", "-m", tinystories_dir(), "-p", "Once", "-n", "4", "--raw"}, fx.env());
    REQUIRE(local.exit_code == 0);
    CHECK(yes.out == local.out);
}

} // namespace rabbit::test
