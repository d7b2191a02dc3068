// SPDX-License-Identifier: Apache-2.0
// A fake Hugging Face hub on 127.0.0.1, for tests and for scripts/hub_cache_check.sh: the model
// info API (with blobs=true's sizes and LFS sha256), the tree API, file resolution
// (/ORG/NAME/resolve/REV/PATH: LFS files redirect to localhost:PORT/lfs/SHA256, git files are served with
// their git blob sha1 as ETag), byte ranges, and faults to inject: dropped connections, wrong
// bytes, a refused token, a slow link. Plain sockets, one thread per connection, every answer
// "Connection: close". Our own code: a test double, not a web server.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rabbit::fakehub {

struct RepoFile {
    std::string path;
    std::string content;
    bool lfs = false;
};

// What the hub calls the file's ETag: the LFS sha256, or git's blob sha1.
std::string etag_of(const RepoFile& f);

struct Repo {
    std::string id;     // ORG/NAME
    std::string commit; // 40 hex; "main" resolves to it
    std::vector<RepoFile> files;
    std::string token;  // non-empty: gated, every request needs "Authorization: Bearer TOKEN"
};

// Faults, settable while the server runs.
struct Faults {
    std::atomic<int> drops{0};             // the next N file bodies stop after drop_after bytes
    std::atomic<uint64_t> drop_after{0};
    std::atomic<int> corrupt{0};           // the next N LFS bodies have one byte flipped
    std::atomic<uint64_t> bytes_per_second{0}; // a slow link (0: full speed)
    std::atomic<int> unavailable{0};       // the next N requests answer 503
};

// Loads DIR's files (recursively) as a repo; files ending in .safetensors, .gguf, .bin or over
// 1 MiB are LFS files, as the hub's .gitattributes makes them.
Repo repo_from_directory(const std::string& id, const std::string& dir);
// A commit hash derived from the repo's files (stable between runs).
std::string commit_of(const Repo& repo);

// One answer: status, headers, body.
struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool is_file = false; // a file's bytes: drops and the slow link apply
    bool lfs = false;     // an LFS file's bytes: corruption applies
};

class FakeHub {
public:
    // PORT 0: an ephemeral port.
    explicit FakeHub(uint16_t port = 0);
    ~FakeHub();
    FakeHub(const FakeHub&) = delete;
    FakeHub& operator=(const FakeHub&) = delete;

    void add_repo(Repo repo);
    uint16_t port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    Faults& faults() { return faults_; }

    // Every request line and Authorization header seen (for the tests' token checks).
    std::vector<std::string> requests() const;
    uint64_t body_bytes_served() const { return served_; }

private:
    void accept_loop();
    void serve(int fd);
    Response route(const std::string& method, const std::string& target, const std::map<std::string, std::string>& headers);
    void send_body(int fd, const std::string& head, const std::string& body, bool is_file);

    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
    mutable std::mutex mutex_;
    std::map<std::string, Repo> repos_;
    std::vector<std::string> log_;
    std::vector<std::thread> workers_;
    Faults faults_;
    std::atomic<uint64_t> served_{0};
};

} // namespace rabbit::fakehub
